"""The elementwise-layer kernels (csrc/layers.c, called through minillm/nn/kernels/layers.py)
against their NumPy twins, the NumPy lines of minillm/nn/layers.py and minillm/nn/attention.py;
their argument checks, and their independence of the thread count.

    python -m pytest tests/nn/kernels/test_layers.py -q

Tolerance. The twin runs in float64 on the same float32 inputs, so it is exact to ~1e-16.
Each check bounds |ours - twin| by k * u * scale with u = 2^-24 and `scale` the float64
magnitude the float32 arithmetic can lose accuracy against: the value itself where nothing
cancels, the sum of the absolute values of the terms where something can (a rotation's
x0 cos - x1 sin, RMSNorm's two backward terms, a softmax minus its one-hot), and k = n + 16
for a sum of n terms (the error of a float32 sum of n terms is at most about n u times the
sum of their absolute values), or 16 for a short chain of elementwise operations (our e^x
is within ~2 ulp). A wrong index, a skipped tail or a missed term breaks these by orders of
magnitude; the shapes are odd and distinct, straddle the 16-lane vectors and the
32-row blocks of RMSNorm's dweight, and the larger ones cross the size at which the
kernels go parallel.
"""
import numpy as np
import pytest

from minillm import clib
from minillm.nn import attention as A
from minillm.nn import layers as L
from minillm.nn.kernels import layers as KL
from minillm.nn.layers import rope_frequencies

# numpy_lines (tests/nn/conftest.py): L.* and A.* run their NumPy lines, KL.* the C kernels
pytestmark = [pytest.mark.skipif(not clib.c_available(), reason="C kernels not built (these "
                                 "tests compare C with NumPy; tests/test_clib.py checks that)"),
              pytest.mark.usefixtures("numpy_lines")]

U = 2.0 ** -24
SMALL_AND_PARALLEL = [(1, 1), (2, 13), (7, 33), (33, 17), (31, 5), (65, 259), (130, 129)]


def f64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


def assert_within(ours, exact, tol, what):
    assert ours.dtype == np.float32 and ours.shape == np.shape(exact), what
    err = np.abs(ours.astype(np.float64) - exact)
    worst = np.unravel_index(np.argmax(err - tol), err.shape) if err.size else ()
    assert np.all(err <= tol), f"{what}: error {err[worst]:.3g} > bound {np.asarray(tol)[worst]:.3g} at {worst}"


# ---- RMSNorm ---------------------------------------------------------------------------

@pytest.mark.parametrize("N, C", SMALL_AND_PARALLEL)
def test_rmsnorm_matches_twin(rng, N, C):
    x = (rng.standard_normal((N, C)) * rng.uniform(0.1, 10, (N, 1))).astype(np.float32)
    w = rng.standard_normal(C, dtype=np.float32)
    dy = rng.standard_normal((N, C), dtype=np.float32)
    y, rstd = KL.rmsnorm_forward(x, w, 1e-5)
    x6, w6, dy6 = f64(x, w, dy)
    y_ref, (_, _, rstd_ref) = L.rmsnorm_forward(x6, w6, 1e-5)
    assert_within(rstd, rstd_ref, (C + 16) * U * rstd_ref, f"rstd N={N} C={C}")
    assert_within(y, y_ref, (C + 16) * U * np.abs(y_ref), f"y N={N} C={C}")

    dx, dw = KL.rmsnorm_backward(dy, x, w, rstd)
    r6 = rstd.astype(np.float64)
    dx_ref, dw_ref = L.rmsnorm_backward(dy6, (x6, w6, r6))
    # dx = r dy w - x r^3 s / C: bound against both terms' magnitudes
    s_abs = np.abs(dy6 * w6 * x6).sum(axis=1)
    dx_scale = np.abs(r6[:, None] * dy6 * w6) + np.abs(x6) * (r6 ** 3 * s_abs / C)[:, None]
    assert_within(dx, dx_ref, (C + 16) * U * dx_scale, f"dx N={N} C={C}")
    dw_scale = np.abs(dy6 * x6 * r6[:, None]).sum(axis=0)
    assert_within(dw, dw_ref, (N + 16) * U * dw_scale, f"dweight N={N} C={C}")


# ---- SwiGLU ----------------------------------------------------------------------------

@pytest.mark.parametrize("N, H", SMALL_AND_PARALLEL)
def test_swiglu_matches_twin(rng, N, H):
    gu = (rng.standard_normal((N, 2 * H)) * 4).astype(np.float32)
    da = rng.standard_normal((N, H), dtype=np.float32)
    a = KL.swiglu_forward(gu)
    gu6, da6 = f64(gu, da)
    a_ref, _ = L.swiglu_forward(gu6)
    assert_within(a, a_ref, 16 * U * np.abs(a_ref), f"forward N={N} H={H}")
    dgu = KL.swiglu_backward(da, gu)
    g, u = gu6[:, :H], gu6[:, H:]
    sig = 1 / (1 + np.exp(-g))
    # dg = da u sig (1 + g (1 - sig)) cancels near g = -1.28: bound by its terms' size
    dg_scale = np.abs(da6 * u) * sig * (1 + np.abs(g) * (1 - sig))
    scale = np.concatenate((dg_scale, np.abs(da6 * g) * sig), axis=1)
    dgu_ref = L.swiglu_backward(da6, (gu6, gu6.shape))
    assert_within(dgu, dgu_ref, 16 * U * scale, f"backward N={N} H={H}")


def test_swiglu_across_the_range_of_exp():
    # gates from -100 (e^g underflows: silu(g) must be 0 or tiny, never NaN) to 100
    g = np.linspace(-100, 100, 2001, dtype=np.float32)
    gu = np.concatenate((g, np.ones_like(g)))[None, :]                  # (1, 2H)
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow to 0 is fine
        a = KL.swiglu_forward(gu)
        dgu = KL.swiglu_backward(np.ones_like(a), gu)
    a_ref, _ = L.swiglu_forward(gu.astype(np.float64))
    kept = g >= -87.0                  # below, e^g leaves the normal floats and ours flushes it to 0
    assert_within(a[:, kept], a_ref[:, kept], 16 * U * np.abs(a_ref[:, kept]), "silu over [-87, 100]")
    assert np.all(np.abs(a[:, ~kept]) <= 100 * np.exp(-87.0))          # tiny (ours: exactly 0)
    assert np.isfinite(dgu).all()


# ---- RoPE fused with the head split ----------------------------------------------------

ROPE_SHAPES = [(1, 1, 1, 1, 2), (2, 7, 3, 1, 10), (2, 5, 4, 2, 6), (3, 37, 4, 2, 34), (1, 65, 6, 3, 64)]


@pytest.mark.parametrize("B, T, NH, NKV, HD", ROPE_SHAPES)
def test_rope_split_qkv_matches_twin(rng, B, T, NH, NKV, HD):
    qkv = rng.standard_normal((B, T, (NH + 2 * NKV) * HD), dtype=np.float32)
    freqs = rope_frequencies(T, HD, theta=500.0, pos0=3)                # complex64, (T, HD/2)
    q, k, v = KL.rope_split_qkv(qkv, NH, NKV, freqs)
    q6, k6, v6 = A.split_qkv(qkv.astype(np.float64), NH, NKV, freqs)
    # x0 cos - x1 sin: bound by |x0 cos| + |x1 sin|, the same for both outputs of a pair
    qa, ka, _ = A.split_qkv(np.abs(qkv).astype(np.float64), NH, NKV, np.abs(freqs.real) + 0j)
    qb, kb, _ = A.split_qkv(np.abs(qkv).astype(np.float64), NH, NKV, 1j * np.abs(freqs.imag))
    scale_q = np.abs(qa) + np.abs(qb)
    scale_k = np.abs(ka) + np.abs(kb)
    assert_within(q, q6, 16 * U * scale_q, f"q {B, T, NH, NKV, HD}")
    assert_within(k, k6, 16 * U * scale_k, f"k {B, T, NH, NKV, HD}")
    np.testing.assert_array_equal(v, v6.astype(np.float32))

    dq, dk, dv = (rng.standard_normal(a.shape, dtype=np.float32) for a in (q, k, v))
    dqkv = KL.rope_split_qkv_backward(dq, dk, dv, freqs)
    ref = A.split_qkv_backward(*f64(dq, dk, dv), freqs)
    scale = (np.abs(A.split_qkv_backward(*f64(np.abs(dq), np.abs(dk), np.abs(dv)), np.abs(freqs.real) + 0j))
             + np.abs(A.split_qkv_backward(*f64(np.abs(dq), np.abs(dk), np.abs(dv)), 1j * np.abs(freqs.imag))))
    assert_within(dqkv, ref, 16 * U * scale, f"dqkv {B, T, NH, NKV, HD}")
    # the backward is the forward's transpose: <forward(x), d> == <x, backward(d)>
    lhs = sum(float((a.astype(np.float64) * b).sum()) for a, b in ((q, dq), (k, dk), (v, dv)))
    assert lhs == pytest.approx(float((qkv.astype(np.float64) * dqkv).sum()), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("B, NH, T, HD", [(1, 1, 1, 1), (2, 3, 7, 5), (3, 6, 37, 64)])
def test_merge_and_split_heads_are_exact_transposes(rng, B, NH, T, HD):
    x = rng.standard_normal((B, NH, T, HD), dtype=np.float32)
    merged = KL.merge_heads(x)
    np.testing.assert_array_equal(merged, A.merge_heads(x))
    np.testing.assert_array_equal(KL.split_heads(merged, NH), x)
    np.testing.assert_array_equal(KL.split_heads(merged, NH), A.split_heads(merged, NH))


# ---- softmax cross-entropy -------------------------------------------------------------

@pytest.mark.parametrize("N, V", [(1, 1), (7, 11), (5, 33), (37, 1029), (19, 4099)])
def test_cross_entropy_matches_twin(rng, N, V):
    logits = (rng.standard_normal((N, V)) * 5).astype(np.float32)
    targets = rng.integers(0, V, N)
    coef = rng.uniform(0.1, 2.0, N).astype(np.float32)
    coef[::3] = 0.0                                                     # not counted
    targets[::3] = -1                                                   # ignored ids are allowed there
    ours = logits.copy()
    losses = KL.cross_entropy_forward(ours, targets, coef)
    # the twin: the layer's NumPy lines with w = coef (loss_mask) and normalizer 1, so that
    # its coef is ours; it returns sum(coef * losses) and leaves dlogits in `ref`
    ref = logits.astype(np.float64)
    ref_loss, _ = L.cross_entropy_forward(ref, targets, coef.astype(np.float64), normalizer=1.0)
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    t = np.maximum(targets, 0)
    ref_losses = np.where(coef != 0, np.log(np.exp(z).sum(axis=1)) - z[np.arange(N), t], 0.0)
    assert float(np.dot(coef, losses)) == pytest.approx(ref_loss, rel=1e-5, abs=1e-6)
    loss_scale = 1.0 + np.abs(z[np.arange(N), t])                       # log(sum) + |target logit|
    assert_within(losses, ref_losses, (V + 16) * U * loss_scale, f"losses N={N} V={V}")
    onehot = np.zeros((N, V))
    onehot[np.arange(N), t] = 1.0
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    scale = (p + onehot) * coef[:, None]
    assert_within(ours, ref, (V + 16) * U * scale, f"dlogits N={N} V={V}")
    assert not ours[::3].any() and not losses[::3].any()


def test_cross_entropy_extremes():
    logits = np.array([[1000.0, 0.0, -1000.0], [-np.inf, 0.0, 1.0], [3e38, -3e38, 0.0]], np.float32)
    coef = np.ones(3, np.float32)
    with np.errstate(invalid="raise", divide="raise"):                 # -3e38 - 3e38 -> -inf is fine
        losses = KL.cross_entropy_forward(logits, np.array([2, 1, 0]), coef)
    np.testing.assert_allclose(losses, [2000.0, np.log1p(np.e), 0.0], rtol=1e-6, atol=1e-6)
    assert np.isfinite(logits).all()


# ---- embedding backward ----------------------------------------------------------------

@pytest.mark.parametrize("N, V, C", [(1, 1, 1), (7, 3, 13), (37, 11, 65), (300, 17, 130)])
def test_embedding_backward_adds_rows_in_order(rng, N, V, C):
    dout = rng.standard_normal((N, C), dtype=np.float32)
    idx = rng.integers(0, V, N)                                         # many repeats
    base = rng.standard_normal((V, C), dtype=np.float32)
    ours = KL.embedding_backward(base.copy(), dout, idx)
    # rows are added one by one in position order, as np.add.at does: bit-identical
    twin = L.embedding_backward(dout, (idx, (V, C)), dweight=base.copy())
    np.testing.assert_array_equal(ours, twin)


# ---- threads and argument checks -------------------------------------------------------

def run_all(rng):
    x = rng.standard_normal((300, 130), dtype=np.float32)
    w = rng.standard_normal(130, dtype=np.float32)
    gu = rng.standard_normal((300, 2 * 150), dtype=np.float32)
    qkv = rng.standard_normal((3, 41, 8 * 34), dtype=np.float32)
    freqs = rope_frequencies(41, 34)
    logits = rng.standard_normal((300, 577), dtype=np.float32)
    y, rstd = KL.rmsnorm_forward(x, w, 1e-5)
    q, k, v = KL.rope_split_qkv(qkv, 4, 2, freqs)
    idx = rng.integers(0, 50, 300)
    losses = KL.cross_entropy_forward(logits, rng.integers(0, 577, 300), np.full(300, 0.01, np.float32))
    return [y, rstd, *KL.rmsnorm_backward(x, x, w, rstd), KL.swiglu_forward(gu),
            KL.swiglu_backward(gu[:, :150].copy(), gu), q, k, v,
            KL.rope_split_qkv_backward(q, k, v, freqs), KL.merge_heads(q), losses, logits,
            KL.embedding_backward(np.zeros((50, 130), np.float32), x, idx)]


def test_results_do_not_depend_on_the_thread_count():
    if not clib.c_available():
        pytest.skip(f"thread count comes from the C kernels, not loaded: {clib.load_error()}")
    before = clib.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 3):
            clib.set_num_threads(threads)
            runs.append(run_all(np.random.default_rng(7)))
    finally:
        clib.set_num_threads(before)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_wrappers_take_only_float32_c_contiguous_arrays(rng):
    x = rng.standard_normal((3, 4))                                      # float64
    with pytest.raises(ValueError, match="float32"):
        KL.rmsnorm_forward(x, np.ones(4), 1e-5)
    gu = rng.standard_normal((6, 4), dtype=np.float32).T                 # (4, 6) not contiguous
    with pytest.raises(ValueError, match="C-contiguous"):
        KL.swiglu_forward(gu)
    table = np.zeros((3, 4), np.float32)
    table.setflags(write=False)
    with pytest.raises(ValueError, match="writable"):
        KL.embedding_backward(table, x.astype(np.float32), [0, 1, 2])


def test_outputs_must_not_overlap_inputs():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        KL.embedding_backward(x, x[:1], np.array([0]))


def test_bad_arguments_raise_one_line_errors():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="shape"):
        KL.rmsnorm_forward(x, np.ones(5, np.float32), 1e-5)
    with pytest.raises(ValueError, match="odd width"):
        KL.swiglu_forward(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="targets"):
        KL.cross_entropy_forward(x.copy(), np.array([0, 4, 1]), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="targets"):
        KL.cross_entropy_forward(x.copy(), np.array([0, -1, 1]), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="idx"):
        KL.embedding_backward(np.zeros((2, 4), np.float32), x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="HD even"):
        KL.rope_split_qkv(np.zeros((1, 2, 9), np.float32), 1, 1, np.ones((2, 1), np.complex64))
    with pytest.raises(ValueError, match="freqs"):
        KL.rope_split_qkv(np.zeros((1, 2, 12), np.float32), 1, 1, np.ones((3, 2), np.complex64))
