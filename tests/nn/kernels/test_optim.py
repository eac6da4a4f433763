"""The optimizer kernels (csrc/optim.c, called through minillm/nn/kernels/optim.py) against
their NumPy twins in minillm/nn/optim.py (adamw_update, sum_squares, grad_store with
use_c=False): the AdamW update bit for bit, the sums of squares to rounding, and the
wrappers' argument checks.

    python -m pytest tests/nn/kernels/test_optim.py
"""
import math

import numpy as np
import pytest

from minillm import clib
from minillm.nn import optim as O
from minillm.nn.kernels import optim as KO

needs_c = pytest.mark.skipif(not clib.c_available(),
                             reason=f"C kernels not loaded: {clib.load_error()}")


# Sizes: odd, below and above the C code's thread threshold (2^15 values) and its update
# blocks (2^14); n_decay cuts through the middle of a block and of an 8-wide vector.

SIZES = [(1, 1), (13, 0), (13, 13), (45, 19), (3 * 16384 + 37, 16384 + 11), (70001, 70001)]
COEFS = O.AdamWCoefs(b1=0.9, b2=0.95, g1=0.1 * 0.7, g2=0.05 * 0.49, eps_hat=1e-8 * 0.2236,
                      step_size=1e-2 * 0.2236 / 0.1, decay=1 - 1e-2 * 0.1)


def _buffers(n, seed):
    rng = np.random.default_rng(seed)
    p, m, g = (rng.standard_normal(n).astype(np.float32) for _ in range(3))    # (n,) each
    v = (rng.standard_normal(n) ** 2).astype(np.float32)                       # (n,)
    return p, m, v, g


@needs_c
@pytest.mark.parametrize("n,n_decay", SIZES)
def test_adamw_update_c_matches_numpy_bit_for_bit(n, n_decay):
    """Tolerance 0: the C update does the twin's float32 operations in the same order
    (no FMA; sqrt and divide are correctly rounded in both)."""
    c_bufs, ref_bufs = _buffers(n, 0), _buffers(n, 0)
    for _ in range(2):
        KO.adamw_update(*c_bufs, n_decay, COEFS)
        O.adamw_update(*ref_bufs, n_decay, COEFS, use_c=False)
    for name, a, b in zip("pmv", c_bufs, ref_bufs):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}, n={n}, n_decay={n_decay}")
    # the mask: values below n_decay update as if all decayed, the others as if none did
    runs = {}
    for d in (n, 0):
        bufs = _buffers(n, 0)
        for _ in range(2):
            KO.adamw_update(*bufs, d, COEFS)
        runs[d] = bufs[0]
    np.testing.assert_array_equal(c_bufs[0][:n_decay], runs[n][:n_decay])
    np.testing.assert_array_equal(c_bufs[0][n_decay:], runs[0][n_decay:])
    assert not np.array_equal(runs[n], runs[0])      # the decay factor did act


def test_adamw_update_numpy_works_in_float64():
    p, m, v, g = (a.astype(np.float64) for a in _buffers(45, 1))
    p0, m0, v0 = p.copy(), m.copy(), v.copy()
    O.adamw_update(p, m, v, g, 19, COEFS, use_c=False)
    m1 = 0.9 * m0 + COEFS.g1 * g
    v1 = 0.95 * v0 + COEFS.g2 * g * g
    d = np.where(np.arange(45) < 19, COEFS.decay, 1.0)
    np.testing.assert_allclose(p, p0 * d - COEFS.step_size * m1 / (np.sqrt(v1) + COEFS.eps_hat),
                               rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(m, m1, rtol=1e-15)


@needs_c
@pytest.mark.parametrize("n", [1, 7, 13, 4095, 4097, 70001, 1_000_003])
def test_sum_squares_and_grad_store_match_numpy(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)                      # (n,)
    exact = math.fsum((x.astype(np.float64) ** 2).tolist())
    assert KO.sum_squares(x) == pytest.approx(exact, rel=1e-12)        # double adds
    assert O.sum_squares(x, use_c=False) == pytest.approx(exact, rel=1e-5)  # float32 dots
    dst, dst_ref = np.empty_like(x), np.empty_like(x)
    KO.grad_store(dst, x, False)
    assert O.grad_store(dst_ref, x, False, use_c=False) is None        # NumPy: sums at the step
    np.testing.assert_array_equal(dst, x)
    y = rng.standard_normal(n).astype(np.float32)                      # (n,)
    s = KO.grad_store(dst, y, True)
    O.grad_store(dst_ref, y, True, use_c=False)
    np.testing.assert_array_equal(dst, dst_ref)                        # one float add: exact
    assert s == KO.sum_squares(dst)                                    # the same blocks
    assert s == pytest.approx(O.sum_squares(dst_ref, use_c=False), rel=1e-5)
    assert O.grad_store(dst_ref, y, True, use_c=True) == KO.grad_store(dst, y, True)


@needs_c
def test_sum_squares_does_not_depend_on_alignment():
    """Lanes are fixed by index, not address: a resumed run (new allocations) sums alike."""
    x = np.random.default_rng(2).standard_normal(100_003).astype(np.float32)   # (n,)
    want = KO.sum_squares(x)
    for shift in range(1, 8):
        buf = np.empty(x.size + 8, np.float32)                             # (n + 8,)
        buf[shift:shift + x.size] = x
        assert KO.sum_squares(buf[shift:shift + x.size]) == want, shift


@needs_c
def test_kernels_refuse_overlap_and_bad_sizes():
    p, m, v, g = _buffers(13, 3)
    with pytest.raises(ValueError, match="float32"):
        KO.sum_squares(g.astype(np.float64))
    with pytest.raises(ValueError, match="overlap"):
        KO.adamw_update(p, m, v, p, 0, COEFS)
    with pytest.raises(ValueError, match="n_decay"):
        KO.adamw_update(p, m, v, g, 14, COEFS)
    with pytest.raises(ValueError, match="shape"):
        KO.grad_store(p, g[:7], False)
