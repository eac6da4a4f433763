"""The C matmul (csrc/matmul.c, called through minillm/nn/kernels/matmul.py) against its NumPy
twin, the NumPy lines of minillm/nn/layers.py's linear_forward and linear_backward; the rule
that picks between them (kernels.fast) and the wrappers' argument checks.

    python -m pytest tests/nn/kernels/test_matmul.py -q

Tolerance. The reference is computed in float64 from the same float32 inputs, so it is
exact to ~1e-16. Any float32 evaluation of a sum of k products, in any order, with or
without FMA, satisfies |ours - exact| <= gamma(k) * (|A| @ |B|) elementwise, where
gamma(k) = k u / (1 - k u) and u = 2^-24 (Higham, Accuracy and Stability of Numerical
Algorithms, 3.1). So the tests use rtol = gamma(k + 1) relative to |A| @ |B| (one more term
for the value dW already held) and atol = 0: a bound a correct kernel cannot exceed, yet
about 1e-5 relative for k = 257, far below the error of one missed term, one wrong index
or one skipped tail (test_tolerance_catches_one_missed_term shows it).
"""
import numpy as np
import pytest

from minillm import clib
from minillm.nn import kernels as K
from minillm.nn import layers as L
from minillm.nn.kernels import matmul as KM

needs_c = pytest.mark.skipif(not clib.c_available(), reason="C kernels not built (these tests "
                             "compare C with NumPy; tests/test_clib.py checks that)")

U = 2.0 ** -24
# distinct odd sizes around the kernel's blocks: micro-tile 14 x 32 (AVX-512), depth
# block 256, column block 512, the few-rows paths (forward N <= 15, backward N <= 14)
NS = (1, 2, 3, 5, 7, 8, 9, 13, 14, 15, 17, 31, 33, 65, 129)
CS = (1, 3, 13, 17, 31, 33, 64, 127, 257)
OCS = (1, 2, 7, 16, 17, 31, 33, 65, 129, 255, 529)


def bound(a, b, k, extra=0.0):
    """gamma(k + 1) * (|A| @ |B| + |extra|): the rigorous float32 error bound."""
    g = (k + 1) * U / (1 - (k + 1) * U)
    return g * (np.abs(np.asarray(a, np.float64)) @ np.abs(np.asarray(b, np.float64))
                + np.abs(extra))


def assert_within(ours, exact, tol, what):
    err = np.abs(ours.astype(np.float64) - exact)
    worst = np.unravel_index(np.argmax(err - tol), err.shape) if err.size else ()
    assert np.all(err <= tol), (f"{what}: error {err[worst]:.3g} > bound {tol[worst]:.3g} "
                                f"at {worst}")


def f64(a):
    return np.asarray(a, np.float64)


def twin_forward(inp, w):
    """The NumPy twin, in float64 (so it takes its NumPy lines): linear_forward's x @ w.T."""
    return L.linear_forward(f64(inp), f64(w))[0]


def twin_backward(dout, inp, w):
    """(dx, dw) of linear_backward's NumPy lines, in float64."""
    return L.linear_backward(f64(dout), (f64(inp), f64(w)))


def check_forward(rng, N, C, OC):
    inp = rng.standard_normal((N, C), dtype=np.float32)                  # (N, C)
    w = rng.standard_normal((OC, C), dtype=np.float32)                   # (OC, C)
    out = KM.matmul_forward(inp, w)                                       # (N, OC)
    ref = twin_forward(inp, w)
    assert_within(out, ref, bound(inp, w.T, C), f"forward N={N} C={C} OC={OC}")


def check_backward_input(rng, N, C, OC):
    dout = rng.standard_normal((N, OC), dtype=np.float32)                # (N, OC)
    w = rng.standard_normal((OC, C), dtype=np.float32)                   # (OC, C)
    dinp = KM.matmul_backward_input(dout, w)                              # (N, C)
    ref, _ = twin_backward(dout, np.zeros((N, C)), w)
    assert_within(dinp, ref, bound(dout, w, OC), f"backward_input N={N} C={C} OC={OC}")


def check_backward_weight(rng, N, C, OC):
    dout = rng.standard_normal((N, OC), dtype=np.float32)                # (N, OC)
    inp = rng.standard_normal((N, C), dtype=np.float32)                  # (N, C)
    dw0 = rng.standard_normal((OC, C), dtype=np.float32)                 # (OC, C), nonzero
    dw = KM.matmul_backward_weight(dout, inp, dweight=dw0.copy())         # += dout^T inp
    ref = dw0 + twin_backward(dout, inp, np.zeros((OC, C)))[1]
    assert_within(dw, ref, bound(dout.T, inp, N, extra=dw0), f"backward_weight N={N} C={C} OC={OC}")


CHECKS = {"forward": check_forward, "backward_input": check_backward_input,
          "backward_weight": check_backward_weight}


@pytest.fixture
def one_thread():
    """Run the kernels on one thread (restored afterwards).

    Results do not depend on the thread count (test_one_and_two_threads_agree_exactly), and
    one thread keeps the many small calls below from fighting NumPy's BLAS threads for the
    cores. The thread split itself is covered by the two-thread tests."""
    before = clib.get_num_threads()
    clib.set_num_threads(1)
    yield
    clib.set_num_threads(before)


@needs_c
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("op", list(CHECKS))
@pytest.mark.parametrize("N", NS)
def test_matches_reference_on_odd_shapes(op, N):
    rng = np.random.default_rng(N)
    for C in CS:
        for OC in OCS:
            if N * C * OC <= 3_000_000:   # bigger ones: test_matches_reference_on_a_large_shape
                CHECKS[op](rng, N, C, OC)


@needs_c
@pytest.mark.parametrize("op", list(CHECKS))
def test_matches_reference_on_a_large_shape(op):
    # several depth blocks (256) and column blocks (512), each with a ragged tail; as many
    # threads as the machine has
    CHECKS[op](np.random.default_rng(7), 1031, 515, 1043)


@needs_c
@pytest.mark.parametrize("OC, C", [(288, 288), (768, 288), (32000, 288), (301, 771)])
def test_decoding_shapes(OC, C):
    # N = 1 is the inference hot path (a matrix-vector product); batched decoding N = 3
    rng = np.random.default_rng(OC)
    check_forward(rng, 1, C, OC)
    if OC < 32000:   # (the big one is slow to check; the backward is not on this path)
        check_forward(rng, 3, C, OC)
        check_backward_input(rng, 1, C, OC)
        check_backward_weight(rng, 1, C, OC)


@needs_c
def test_batched_leading_dims(rng):
    inp = rng.standard_normal((2, 7, 13), dtype=np.float32)              # (B, T, C)
    w = rng.standard_normal((17, 13), dtype=np.float32)                  # (OC, C)
    dout = rng.standard_normal((2, 7, 17), dtype=np.float32)             # (B, T, OC)
    dx_ref, dw_ref = twin_backward(dout, inp, w)
    np.testing.assert_allclose(KM.matmul_forward(inp, w), twin_forward(inp, w), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(KM.matmul_backward_input(dout, w), dx_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(KM.matmul_backward_weight(dout, inp), dw_ref, rtol=1e-5, atol=1e-5)


@needs_c
def test_backward_weight_accumulates(rng):
    dout = rng.standard_normal((33, 17), dtype=np.float32)               # (N, OC)
    inp = rng.standard_normal((33, 31), dtype=np.float32)                # (N, C)
    dw = np.full((17, 31), 3.0, dtype=np.float32)                        # (OC, C)
    once = KM.matmul_backward_weight(dout, inp)
    KM.matmul_backward_weight(dout, inp, dweight=dw)
    KM.matmul_backward_weight(dout, inp, dweight=dw)
    np.testing.assert_allclose(dw, 3.0 + 2.0 * once, rtol=1e-5, atol=1e-4)


@needs_c
def test_outputs_are_overwritten(rng):
    inp = rng.standard_normal((9, 13), dtype=np.float32)                 # (N, C)
    w = rng.standard_normal((17, 13), dtype=np.float32)                  # (OC, C)
    out = np.full((9, 17), np.nan, dtype=np.float32)                     # garbage in out
    dinp = np.full((9, 13), np.nan, dtype=np.float32)
    KM.matmul_forward(inp, w, out=out)
    KM.matmul_backward_input(out, w, dinp=dinp)
    np.testing.assert_allclose(out, inp @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dinp, out @ w, rtol=1e-5, atol=1e-4)


@needs_c
def test_empty_reductions():
    # C = 0: out is all zeros; OC = 0: dinp is zeros; N = 0: dW is left as it was
    assert np.array_equal(KM.matmul_forward(np.zeros((5, 0), np.float32), np.zeros((3, 0), np.float32)),
                          np.zeros((5, 3), np.float32))
    dinp = np.full((5, 4), np.nan, dtype=np.float32)
    KM.matmul_backward_input(np.zeros((5, 0), np.float32), np.zeros((0, 4), np.float32), dinp=dinp)
    assert np.array_equal(dinp, np.zeros((5, 4), np.float32))
    dw = np.full((3, 4), 2.0, dtype=np.float32)
    KM.matmul_backward_weight(np.zeros((0, 3), np.float32), np.zeros((0, 4), np.float32), dweight=dw)
    assert np.array_equal(dw, np.full((3, 4), 2.0, dtype=np.float32))


# Each shape does more than 2^18 multiply-adds, so two threads really split it: by columns
# (odd sliver counts), by rows (a single sliver; dW with OC > C), the decoding paths.
@needs_c
@pytest.mark.parametrize("N, C, OC", [(1, 1031, 301), (5, 64, 1029), (257, 129, 65),
                                      (130, 33, 700), (1000, 31, 31),
                                      (45, 1024, 2048)])   # rows 4 KB apart: A packed (AVX-512)
def test_one_and_two_threads_agree_exactly(N, C, OC):
    # Every output element is summed in the same order whatever the thread split, so the
    # results are bitwise identical (training runs reproduce across thread counts).
    rng = np.random.default_rng(N)
    inp = rng.standard_normal((N, C), dtype=np.float32)                  # (N, C)
    w = rng.standard_normal((OC, C), dtype=np.float32)                   # (OC, C)
    dout = rng.standard_normal((N, OC), dtype=np.float32)                # (N, OC)
    before = clib.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            clib.set_num_threads(threads)
            results.append((KM.matmul_forward(inp, w), KM.matmul_backward_input(dout, w),
                            KM.matmul_backward_weight(dout, inp, dweight=np.ones((OC, C), np.float32))))
    finally:
        clib.set_num_threads(before)
    for one, two in zip(*results):
        assert np.array_equal(one, two)
    check_forward(rng, N, C, OC)      # and the two-thread results are right, too
    check_backward_input(rng, N, C, OC)
    check_backward_weight(rng, N, C, OC)


@needs_c
def test_tolerance_catches_one_missed_term(rng):
    # The bound must be tight enough to fail a kernel that drops the last term of the sum.
    inp = rng.standard_normal((13, 257), dtype=np.float32)               # (N, C)
    w = rng.standard_normal((33, 257), dtype=np.float32)                 # (OC, C)
    exact = inp.astype(np.float64) @ w.T.astype(np.float64)              # (N, OC)
    missed = (inp[:, :-1] @ w[:, :-1].T).astype(np.float64)              # (N, OC)
    tol = bound(inp, w.T, 257)
    assert np.mean(np.abs(missed - exact) > tol) > 0.9
    assert np.all(np.abs(KM.matmul_forward(inp, w) - exact) <= tol)


# ---- the wrappers' rule and argument checks ----------------------------------------------

@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 4), np.float32), "last dimension"),
    ([[0.0] * 5] * 3, "numpy array"),
])
def test_matmul_rejects_bad_input(bad, message):
    w = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match=message):
        KM.matmul_forward(bad, w)


def test_fast_is_the_one_rule(rng):
    # C when the library is loaded and every array is float32 and C-contiguous; None skipped
    x = rng.standard_normal((5, 3), dtype=np.float32)
    loaded = clib.c_available()
    assert K.fast(x, None, x) == loaded
    assert not K.fast(x, x.astype(np.float64))                           # float64: NumPy
    assert not K.fast(np.asfortranarray(x))                              # not C-contiguous


def test_other_dtypes_and_layouts_run_the_numpy_lines(rng):
    # anything but float32 C-contiguous runs the layer's NumPy lines, which keep the
    # input's dtype (float64 stays float64 for the finite-difference checks)
    x = rng.standard_normal((5, 3))                                      # (N, C) float64
    w = rng.standard_normal((2, 3))                                      # (OC, C)
    out, cache = L.linear_forward(x, w)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, x @ w.T)
    xt = rng.standard_normal((3, 5), dtype=np.float32).T                 # (5, 3) not contiguous
    np.testing.assert_allclose(L.linear_forward(xt, w.astype(np.float32))[0],
                               xt @ w.T.astype(np.float32), rtol=1e-6)
    dw = np.ones((2, 3))
    _, dw_out = L.linear_backward(out, cache, dw=dw)
    assert dw_out is dw
    np.testing.assert_allclose(dw, 1.0 + out.T @ x, rtol=1e-12)


@needs_c
def test_wrappers_take_only_float32_c_contiguous_arrays(rng):
    x = rng.standard_normal((5, 3))
    with pytest.raises(ValueError, match="float32"):
        KM.matmul_forward(x, np.zeros((2, 3), np.float32))
    xt = rng.standard_normal((3, 5), dtype=np.float32).T
    with pytest.raises(ValueError, match="C-contiguous"):
        KM.matmul_backward_weight(xt, xt)
    out = np.zeros((5, 2), np.float32)
    out.setflags(write=False)
    with pytest.raises(ValueError, match="writable"):
        KM.matmul_forward(x.astype(np.float32), np.zeros((2, 3), np.float32), out=out)


@needs_c
def test_output_must_not_alias_input(rng):
    x = rng.standard_normal((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="overlap"):
        KM.matmul_forward(x, x.copy(), out=x)
    with pytest.raises(ValueError, match="overlap"):
        KM.matmul_backward_weight(x, x.copy(), dweight=x)
