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
import importlib.util
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from minillm.common import MAX_THREADS, parse_threads

_state = {"loaded": False, "lib": None, "ffi": None, "error": None, "path": None}


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
    _state["ffi"], _state["lib"] = module.ffi, module.lib
    _state["path"] = module.__file__
    if threads:
        set_num_threads(threads)
    return _state["ffi"], _state["lib"]


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
