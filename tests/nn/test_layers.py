"""Every layer of minillm/nn/layers.py: backward against float64 central finite differences,
the float32 (C kernel) path against float64, and the cross-entropy's ignore index, loss
mask, normalizer and in-place contract. RoPE is checked with the attention layer
(tests/nn/test_attention.py), which applies it.

    python -m pytest tests/nn/test_layers.py
"""
import numpy as np
import pytest

from gradcheck import assert_grad_close, numeric_grad
from minillm import clib
from minillm.nn import layers as L


def upstream(rng, shape):
    return rng.standard_normal(shape)


# ---- embedding ---------------------------------------------------------------------------

def test_embedding_backward_matches_finite_differences(rng):
    V, C = 11, 13
    idx = np.array([[3, 5, 3, 0, 10, 3, 7], [5, 5, 1, 2, 3, 9, 10]])   # repeats on purpose
    w = rng.standard_normal((V, C))
    R = upstream(rng, (2, 7, C))
    out, cache = L.embedding_forward(idx, w)
    assert np.array_equal(out, w[idx])
    dw = L.embedding_backward(R, cache)
    assert_grad_close(dw, numeric_grad(lambda: float((L.embedding_forward(idx, w)[0] * R).sum()), w))


def test_embedding_backward_adds_into_given_dweight(rng):
    idx = np.array([[1, 1, 4]])
    dout = rng.standard_normal((1, 3, 5)).astype(np.float32)
    base = rng.standard_normal((6, 5)).astype(np.float32)
    given = base.copy()
    result = L.embedding_backward(dout, L.embedding_forward(idx, base)[1], dweight=given)
    assert result is given
    expected = base.copy()
    expected[1] += dout[0, 0] + dout[0, 1]
    expected[4] += dout[0, 2]
    np.testing.assert_allclose(given, expected, rtol=1e-6)


# ---- linear ------------------------------------------------------------------------------

def test_linear_backward_matches_finite_differences(rng):
    x, w = rng.standard_normal((2, 7, 13)), rng.standard_normal((9, 13))
    R = upstream(rng, (2, 7, 9))
    y, cache = L.linear_forward(x, w)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-12)
    dx, dw = L.linear_backward(R, cache)
    loss = lambda: float((L.linear_forward(x, w)[0] * R).sum())
    assert_grad_close(dx, numeric_grad(loss, x))
    assert_grad_close(dw, numeric_grad(loss, w))


def test_linear_float32_runs_the_kernels_like_float64(rng):
    x, w = rng.standard_normal((2, 7, 13)), rng.standard_normal((9, 13))
    R = upstream(rng, (2, 7, 9))
    y64, c64 = L.linear_forward(x, w)
    dx64, dw64 = L.linear_backward(R, c64)
    f32 = lambda a: a.astype(np.float32)
    y32, c32 = L.linear_forward(f32(x), f32(w))
    acc = np.ones((9, 13), np.float32)
    dx32, dw32 = L.linear_backward(f32(R), c32, dw=acc)
    assert dw32 is acc  # accumulated in place
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx32, dx64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw32, dw64 + 1, rtol=1e-5, atol=1e-5)


# ---- RMSNorm -----------------------------------------------------------------------------

def test_rmsnorm_forward_is_the_formula(rng):
    x, w = rng.standard_normal((2, 7, 13)), rng.standard_normal(13)
    y, _ = L.rmsnorm_forward(x, w, eps=1e-5)
    np.testing.assert_allclose(y, x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-5) * w, rtol=1e-12)


def test_rmsnorm_backward_matches_finite_differences(rng):
    x, w = rng.standard_normal((2, 7, 13)), rng.standard_normal(13)
    R = upstream(rng, (2, 7, 13))
    dx, dw = L.rmsnorm_backward(R, L.rmsnorm_forward(x, w)[1])
    loss = lambda: float((L.rmsnorm_forward(x, w)[0] * R).sum())
    assert_grad_close(dx, numeric_grad(loss, x))
    assert_grad_close(dw, numeric_grad(loss, w))


# ---- SwiGLU ------------------------------------------------------------------------------

def test_swiglu_forward_and_backward(rng):
    gu = rng.standard_normal((2, 7, 2 * 9)) * 3
    g, u = gu[..., :9], gu[..., 9:]
    a, cache = L.swiglu_forward(gu)
    np.testing.assert_allclose(a, g / (1 + np.exp(-g)) * u, rtol=1e-12)
    R = upstream(rng, a.shape)
    dgu = L.swiglu_backward(R, cache)
    assert_grad_close(dgu, numeric_grad(lambda: float((L.swiglu_forward(gu)[0] * R).sum()), gu))


def test_swiglu_extreme_gates_stay_finite():
    gu = np.array([[-1000.0, 0.0, 1000.0, 2.0, 2.0, 2.0]], dtype=np.float32)
    with np.errstate(all="raise"):
        a, cache = L.swiglu_forward(gu)
        dgu = L.swiglu_backward(np.ones_like(a), cache)
    np.testing.assert_allclose(a, [[0.0, 0.0, 2000.0]])
    assert np.isfinite(dgu).all()


# ---- cross-entropy -----------------------------------------------------------------------

def nll_rows(logits, targets):
    """Reference per-row negative log-likelihood in float64."""
    z = logits - logits.max(1, keepdims=True)
    return np.log(np.exp(z).sum(1)) - z[np.arange(len(targets)), np.maximum(targets, 0)]


def test_cross_entropy_value_with_ignore_and_mask(rng):
    logits = rng.standard_normal((7, 11)) * 4
    targets = np.array([3, -1, 0, 10, -1, 5, 5])
    mask = np.array([1.0, 1.0, 0.0, 0.5, 1.0, 2.0, 1.0])
    loss, _ = L.cross_entropy_forward(logits.copy(), targets, mask)
    w = (targets >= 0) * mask
    assert loss == pytest.approx((w * nll_rows(logits, targets)).sum() / w.sum(), rel=1e-12)
    loss_plain, _ = L.cross_entropy_forward(logits.copy(), targets)
    assert loss_plain == pytest.approx(nll_rows(logits, targets)[targets >= 0].mean(), rel=1e-12)


def test_cross_entropy_backward_matches_finite_differences_in_place(rng):
    logits = rng.standard_normal((7, 11)) * 4
    targets = np.array([3, -1, 0, 10, -1, 5, 5])
    mask = np.array([1.0, 1.0, 0.0, 0.5, 1.0, 2.0, 1.0])
    buf = logits.copy()
    loss, cache = L.cross_entropy_forward(buf, targets, mask)
    dlogits = L.cross_entropy_backward(2.5, cache)
    assert dlogits is buf                                               # in place, no copy
    num = numeric_grad(lambda: 2.5 * L.cross_entropy_forward(logits.copy(), targets, mask)[0], logits)
    assert_grad_close(dlogits, num)
    assert not dlogits[[1, 2, 4]].any()                                 # ignored rows: zero grad


def test_cross_entropy_normalizer_and_nothing_counted(rng):
    logits = rng.standard_normal((4, 5))
    targets = np.array([1, 2, 3, 4])
    half1, _ = L.cross_entropy_forward(logits[:2].copy(), targets[:2], normalizer=4)
    half2, _ = L.cross_entropy_forward(logits[2:].copy(), targets[2:], normalizer=4)
    whole, _ = L.cross_entropy_forward(logits.copy(), targets)
    assert half1 + half2 == pytest.approx(whole, rel=1e-12)
    buf = logits.copy()
    loss, cache = L.cross_entropy_forward(buf, np.full(4, -1))
    assert loss == 0.0 and not L.cross_entropy_backward(1.0, cache).any()
    with pytest.raises(ValueError, match="-1"):
        L.cross_entropy_forward(logits.copy(), np.array([1, -2, 0, 0]))


def test_cross_entropy_survives_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 0.0, 1000.0]], dtype=np.float32)
    loss, cache = L.cross_entropy_forward(logits, np.array([2, 2]))
    assert loss == pytest.approx(1000.0, rel=1e-6)                     # (2000 + 0) / 2
    assert np.isfinite(L.cross_entropy_backward(1.0, cache)).all()


# ---- the LM head fused with the loss -----------------------------------------------------

@pytest.mark.parametrize("chunk_rows", [None, 1, 4, 100])
def test_lm_head_loss_matches_unfused(rng, chunk_rows):
    N, C, V = 13, 9, 11
    x, w = rng.standard_normal((N, C)), rng.standard_normal((V, C))
    targets = rng.integers(0, V, N)
    targets[[2, 7]] = -1
    mask = rng.random(N)
    loss, cache = L.lm_head_loss_forward(x, w, targets, mask, chunk_rows=chunk_rows)
    dx, dw = L.lm_head_loss_backward(1.0, cache)
    logits, head = L.linear_forward(x, w)
    ref_loss, ce = L.cross_entropy_forward(logits, targets, mask)
    ref_dx, ref_dw = L.linear_backward(L.cross_entropy_backward(1.0, ce), head)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-10, atol=1e-12)
    eval_loss, eval_cache = L.lm_head_loss_forward(x, w, targets, mask, grad=False, chunk_rows=chunk_rows)
    assert eval_cache is None and eval_loss == pytest.approx(loss, rel=1e-12)


def test_lm_head_loss_backward_matches_finite_differences(rng):
    N, C, V = 7, 5, 11
    x, w = rng.standard_normal((N, C)), rng.standard_normal((V, C))
    targets = np.array([1, -1, 10, 0, 3, 3, 7])
    loss_of = lambda: L.lm_head_loss_forward(x, w, targets, chunk_rows=3, grad=False)[0]
    dx, dw = L.lm_head_loss_backward(0.5, L.lm_head_loss_forward(x, w, targets, chunk_rows=3)[1])
    assert_grad_close(dx, 0.5 * numeric_grad(loss_of, x))
    assert_grad_close(dw, 0.5 * numeric_grad(loss_of, w))


def test_lm_head_loss_float32_matches_float64(rng):
    N, C, V = 37, 13, 29
    x, w = rng.standard_normal((N, C)), rng.standard_normal((V, C))
    targets = rng.integers(-1, V, N)
    loss64, (dx64, dw64) = L.lm_head_loss_forward(x, w, targets, chunk_rows=8)
    loss32, (dx32, dw32) = L.lm_head_loss_forward(x.astype(np.float32), w.astype(np.float32),
                                                  targets, chunk_rows=8)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(dx32, dx64, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dw32, dw64, rtol=1e-4, atol=1e-6)


# ---- threads --------------------------------------------------------------------------

def test_results_do_not_depend_on_the_thread_count(rng):
    if not clib.c_available():
        pytest.skip(f"thread count comes from the C kernels, not loaded: {clib.load_error()}")
    x, w = rng.standard_normal((300, 130)).astype(np.float32), rng.standard_normal(130).astype(np.float32)
    gu = rng.standard_normal((300, 2 * 150)).astype(np.float32)
    targets = rng.integers(-1, 500, 300)

    def run_all():
        y, nc = L.rmsnorm_forward(x, w)
        a, sc = L.swiglu_forward(gu)
        loss, (dlogits,) = L.cross_entropy_forward(np.tile(x, (1, 4)).copy(), targets)
        return [y, *L.rmsnorm_backward(y, nc), a, L.swiglu_backward(a, sc), np.float32(loss),
                dlogits]
    before = clib.get_num_threads()
    try:
        clib.set_num_threads(1)
        one = run_all()
        clib.set_num_threads(3)
        three = run_all()
    finally:
        clib.set_num_threads(before)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)
