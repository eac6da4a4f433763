"""The C kernel library (csrc/, compiled through cffi into minillm._kernels): loading it,
its runtime facts, and the argument checks every wrapper runs before C sees a pointer.

The wrapper modules (minillm/nn/kernels/*.py for the model, minillm/tokenizer/fast.py for
BPE) call `_load()` to reach the C functions; the code that calls them runs its NumPy twin
instead when the library is not there (the model's layers ask minillm.nn.kernels.fast).
MINILLM_NO_C=1 disables the extension, MINILLM_THREADS sets the kernels' OpenMP threads
(default: all cores; at most MAX_THREADS), MINILLM_KERNELS_PATH loads a build from another
directory (the sanitizer build of csrc/build.py). `minillm info` prints what is in use.

Read next: minillm/nn/layers.py, the first layers with their NumPy math and C calls.
"""
import ctypes
import importlib.util
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from minillm.common import MAX_THREADS, parse_threads

_state = {"loaded": False, "lib": None, "ffi": None, "error": None, "path": None, "peak": None}

# The CPU flags (as /proc/cpuinfo names them) each SIMD level of the build needs. The build
# uses -march=native (or MINILLM_MARCH), so a library copied to an older CPU would die of
# an illegal instruction at its first vector op; checking at load turns that into a warning.
NEEDS = {"avx512": ("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"),
         "avx2": ("avx2", "fma"), "scalar": ()}


def _load():
    """Load the extension once; return (ffi, lib) or (None, None)."""
    if _state["loaded"]:
        return _state["ffi"], _state["lib"]
    threads = os.environ.get("MINILLM_THREADS")
    if threads:
        threads = parse_threads(threads)  # before anything loads: a bad value stays an error
    _state["loaded"] = True
    if os.environ.get("MINILLM_NO_C") == "1":
        _state["error"] = "MINILLM_NO_C=1"
        return None, None
    # subtle: between parallel regions libgomp's idle threads spin-wait (300k spins by
    # default). On a quiet machine that saves a wake-up per kernel call; when another
    # process holds a core, the spinning starves the thread with work (training steps
    # measured 2-8x slower on 2 busy cores). 10k spins keeps the quiet-machine speed and
    # bounds the damage. libgomp reads this once, when it loads, so set it before that.
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
    _keep_freed_memory()
    try:
        override = os.environ.get("MINILLM_KERNELS_PATH")
        if override:
            module = _load_from(Path(override))
        else:
            from minillm import _kernels as module
    except ImportError as e:
        _state["error"] = f"extension not built: {e}"
        warnings.warn(f"minillm: C kernels unavailable ({e}); using the NumPy references "
                      "(slower). Reinstall with a C compiler: pip install -e .", RuntimeWarning,
                      stacklevel=3)
        return None, None
    level = module.ffi.string(module.lib.minillm_simd_level()).decode()
    flags = _cpu_flags()
    missing = sorted(set(NEEDS[level]) - flags) if flags else []
    if missing:                  # a build from another machine: its first vector op would crash
        _state["error"] = f"built for {level}, this CPU lacks {', '.join(missing)}"
        warnings.warn(f"minillm: the C kernels were built for {level} but this CPU lacks "
                      f"{', '.join(missing)}; using the NumPy references (slower). Rebuild here: "
                      "pip install -e . (or MINILLM_MARCH=x86-64-v3 pip install -e . for AVX2)",
                      RuntimeWarning, stacklevel=3)
        return None, None
    _state["ffi"], _state["lib"] = module.ffi, module.lib
    _state["path"] = module.__file__
    if threads:
        set_num_threads(threads)
    return _state["ffi"], _state["lib"]


def _keep_freed_memory():
    """Let glibc's malloc keep the memory of freed arrays for the next ones.

    subtle: a training step allocates and frees the same large activations every step
    (NumPy arrays of 1-32 MB). By default glibc gives such blocks back to the kernel when
    they are freed, and the next step's arrays then fault in fresh pages that the kernel
    must zero first: 5% of a speedrun training step (perf: clear_page_erms). Raising the
    mmap threshold to its maximum (32 MB) and the trim threshold keeps them in the heap.
    Without glibc (macOS, musl) there is no mallopt and nothing changes."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 512 << 20)


def _cpu_flags():
    """This CPU's feature flags from /proc/cpuinfo (Linux), or an empty set if unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model():
    """This CPU's model name from /proc/cpuinfo (Linux), or what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU model unknown"


def _load_from(directory):
    """Import minillm._kernels from a build directory (csrc/build.py --out DIR)."""
    candidates = sorted(directory.glob("**/_kernels*.so")) + sorted(directory.glob("**/_kernels*.pyd"))
    if not candidates:
        raise ImportError(f"no _kernels extension under {directory}")
    spec = importlib.util.spec_from_file_location("minillm._kernels", candidates[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["minillm._kernels"] = module
    return module


# ---- runtime facts ---------------------------------------------------------------------

def c_available():
    """True when the C extension is loaded (and not disabled by MINILLM_NO_C=1)."""
    return _load()[1] is not None


def load_error():
    """Why the C extension is not in use, or None."""
    _load()
    return _state["error"]


def library_path():
    _load()
    return _state["path"]


def has_openmp():
    lib = _load()[1]
    return bool(lib and lib.minillm_has_openmp())


def simd_level():
    """"avx512", "avx2" or "scalar" for the C build; "numpy" without it."""
    ffi, lib = _load()
    return ffi.string(lib.minillm_simd_level()).decode() if lib else "numpy"


def fma_peak(seconds=0.1):
    """This core's peak in GFLOP/s: the FMA probe (csrc/runtime.c, register-only vector
    FMAs on one thread) timed over about `seconds`, best of three. The yardstick of the
    benches' "% of peak". Measured once per process; None without the C library."""
    lib = _load()[1]
    if lib is None:
        return None
    if _state["peak"] is None:
        flops_per_round = 12 * 2 * lib.minillm_simd_width()
        n, dt = 100_000, 0.0
        while dt < seconds / 3:               # calibrate: a round count lasting ~seconds / 3
            n *= 4
            t = time.perf_counter()
            lib.minillm_fma_probe(n)
            dt = time.perf_counter() - t
        best = min(_timed(lib.minillm_fma_probe, n) for _ in range(3))
        _state["peak"] = n * flops_per_round / best / 1e9
    return _state["peak"]


def _timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def get_num_threads():
    lib = _load()[1]
    return lib.minillm_get_num_threads() if lib else 1


def set_num_threads(n):
    """Set the kernels' OpenMP thread count (1 <= n <= MAX_THREADS)."""
    n = int(n)
    if not 1 <= n <= MAX_THREADS:
        # subtle: libgomp segfaults when asked for far more threads than memory allows
        raise ValueError(f"thread count must be in 1..{MAX_THREADS}, got {n}")
    lib = _load()[1]
    if lib:
        lib.minillm_set_num_threads(n)


# ---- argument checks -------------------------------------------------------------------

def _check(name, a, shape=None, ndim=None):
    """Raise a one-line ValueError unless `a` is a C-contiguous float32 array of `shape`."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got {a.dtype} (use .astype(np.float32))")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")


def _check_output(name, out, shape, *inputs):
    _check(name, out, shape)
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writable")
    for other in inputs:
        if other is not None and np.may_share_memory(out, other):
            raise ValueError(f"{name} must not overlap an input array")


def _ptr(ffi, a, writable=False):
    if a.size == 0:
        return ffi.NULL
    kind = "int[]" if a.dtype == np.int32 else "float[]"
    return ffi.from_buffer(kind, a, require_writable=writable)
