"""The C library's runtime (minillm/clib.py): loading, MINILLM_NO_C and MINILLM_THREADS,
thread control, and the wrappers' NumPy fallback without the library.

The kernels' numerics and argument checks are in tests/nn/kernels/.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minillm import clib
from minillm.common import MAX_THREADS


def test_c_extension_is_loaded():
    # The suite must exercise the C kernels, not silently the references.
    if os.environ.get("MINILLM_NO_C") == "1":
        pytest.skip("MINILLM_NO_C=1 forces the NumPy references")
    assert clib.c_available(), clib.load_error()
    assert clib.simd_level() in ("avx512", "avx2", "scalar")


def test_threads_can_be_set():
    before = clib.get_num_threads()
    clib.set_num_threads(1)
    assert clib.get_num_threads() == 1 or not clib.has_openmp()
    clib.set_num_threads(before)
    with pytest.raises(ValueError):
        clib.set_num_threads(0)
    with pytest.raises(ValueError, match=f"1..{MAX_THREADS}"):
        clib.set_num_threads(100000)      # OpenMP segfaulted on the next kernel call


def test_a_kernel_call_with_too_many_threads_is_an_error_not_a_segfault():
    code = ("import numpy as np\nfrom minillm.nn.kernels import matmul\n"
            "x = np.ones((64, 64), np.float32)\nprint(matmul.matmul_forward(x, x).sum())")
    res = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, MINILLM_THREADS="100000"),
                         capture_output=True, text=True)
    assert res.returncode == 1 and "UserError: MINILLM_THREADS='100000'" in res.stderr, res.stderr


def _in_subprocess(code, **env):
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_no_c_forces_references():
    out = _in_subprocess("from minillm import clib; print(clib.c_available(), clib.simd_level())",
                         MINILLM_NO_C="1")
    assert out == "False numpy"


def test_a_build_for_a_cpu_this_one_is_not_falls_back_with_a_warning():
    # A library built with -march=native on an AVX-512 machine, copied to an AVX2 laptop,
    # must not die of an illegal instruction: the load checks the CPU's flags.
    code = ("import warnings\nfrom minillm import clib\nclib._cpu_flags = lambda: {'sse2', 'avx'}\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    ok = clib.c_available()\n"
            "print(ok, clib.simd_level(), clib.load_error(), w[0].message if w else '', sep=' | ')")
    if clib.simd_level() == "scalar":
        pytest.skip("a plain C build needs no CPU flags")
    loaded, level, error, warning = _in_subprocess(code).split(" | ")
    assert (loaded, level) == ("False", "numpy")
    assert error.startswith(f"built for {clib.simd_level()}, this CPU lacks") and "fma" in error
    assert "MINILLM_MARCH=x86-64-v3" in warning


def test_fma_peak_is_measured():
    if not clib.c_available():
        pytest.skip("no C library")
    peak = clib.fma_peak(seconds=0.03)
    assert peak == clib.fma_peak()                # measured once per process
    # one core does at least a few GFLOP/s and at most ~32 flops x 6 GHz per cycle budget
    assert 1.0 < peak < 64 * 6.0 * {"avx512": 1, "avx2": 0.5, "scalar": 1 / 16}[clib.simd_level()] * 2


@pytest.mark.slow
@pytest.mark.parametrize("march, level", [("x86-64-v3", "avx2"), ("x86-64", "scalar")])
def test_the_avx2_and_plain_c_builds_pass_the_kernel_tests(tmp_path, march, level):
    # MINILLM_MARCH builds another instruction set than this machine's (csrc/build.py): the
    # AVX2 path on an AVX-512 machine, the portable C everywhere. Each must pass the
    # kernels' own tests against their NumPy twins.
    if level == "avx2" and not {"avx2", "fma"} <= clib._cpu_flags():
        pytest.skip("this CPU has no AVX2")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, MINILLM_MARCH=march)
    subprocess.run([sys.executable, str(root / "csrc" / "build.py"), "--out", str(tmp_path)],
                   env=env, check=True, capture_output=True)
    env = dict(os.environ, MINILLM_KERNELS_PATH=str(tmp_path))
    level_seen = _in_subprocess("from minillm import clib; print(clib.simd_level())", **env)
    assert level_seen == level
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          str(root / "tests" / "nn" / "kernels"), str(root / "tests" / "generate" / "test_decode_step.py")],
                         env=env, capture_output=True, text=True, cwd=root)
    assert res.returncode == 0, res.stdout[-2000:]


def test_minillm_threads_env():
    if not clib.has_openmp():
        pytest.skip("built without OpenMP: one thread only")
    out = _in_subprocess("from minillm import clib; print(clib.get_num_threads())",
                         MINILLM_THREADS="1")
    assert out == "1"


def test_layers_run_their_numpy_lines_without_c(rng):
    # MINILLM_NO_C=1: the same layer functions run their NumPy lines, with the C path's
    # results (to rounding); calling a C wrapper raises a clear error instead.
    code = (
        "import numpy as np; from minillm.nn import layers as L\n"
        "from minillm.nn.kernels import matmul as KM\n"
        "r = np.random.default_rng(0)\n"
        "x = r.standard_normal((5, 7), dtype=np.float32)\n"
        "w = r.standard_normal((3, 7), dtype=np.float32)\n"
        "y, cache = L.linear_forward(x, w)\n"
        "dw = np.ones((3, 7), np.float32); L.linear_backward(y, cache, dw=dw)\n"
        "try:\n"
        "    KM.matmul_forward(x, w); error = 'none'\n"
        "except RuntimeError as e:\n"
        "    error = 'not-loaded' if 'not loaded' in str(e) else 'other'\n"
        "print(float(y.sum()), float(dw.sum()), error)"
    )
    *a, error_without = _in_subprocess(code, MINILLM_NO_C="1").split()
    *b, error_with = _in_subprocess(code).split()
    np.testing.assert_allclose([float(s) for s in a], [float(s) for s in b], rtol=1e-5)
    assert error_without == "not-loaded"
    assert error_with == ("none" if clib.c_available() else "not-loaded")


# ---- csrc/: the .c files call each other in one direction --------------------------------

CSRC = Path(__file__).resolve().parents[1] / "csrc"
DEFINITION = re.compile(r"^([A-Za-z_][\w \t*]*?)\b(\w+)\s*\([^;{)]*\)\s*\{", re.M)


def _calls_between_c_files():
    """{file: set of other .c files whose exported functions it calls}, by reading the
    sources: a definition is a function at the start of a line, exported unless static."""
    graph, owner, local = {}, {}, {}
    codes = {}
    for path in sorted(CSRC.glob("*.c")):
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "", path.read_text(), flags=re.S)  # no comments
        code = re.sub(r"__attribute__\s*\(\([^)]*\)\)\s*|(?<=inline)\s*\n", " ", code)
        codes[path.name] = code
        for prefix, name in DEFINITION.findall(code):
            if prefix.startswith("static"):
                local.setdefault(path.name, set()).add(name)
            else:
                owner[name] = path.name
    for f, code in codes.items():
        called = set(re.findall(r"\b(\w+)\s*\(", code)) - local.get(f, set())
        graph[f] = {owner[name] for name in called if owner.get(name, f) != f}
    return graph


def test_c_files_call_each_other_without_cycles():
    graph = _calls_between_c_files()
    assert graph["attention.c"] >= {"attention_common.c", "attention_gemm.c"}   # the reader works
    assert graph["attention_common.c"] == graph["attention_gemm.c"] == set()    # shared leaves
    done, on_path = set(), []

    def visit(f):
        assert f not in on_path, f"csrc call cycle: {' -> '.join(on_path + [f])}"
        if f in done:
            return
        on_path.append(f)
        for g in sorted(graph[f]):
            visit(g)
        on_path.pop()
        done.add(f)

    for f in graph:
        visit(f)
