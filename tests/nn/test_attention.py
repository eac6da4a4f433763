"""minillm/nn/attention.py: the sublayer's forward against a per-head loop written from the
definition, backward against float64 central finite differences (grouped KV heads), the
float32 C-kernel path against float64, causality, RoPE and the head layouts; the attention
core's NumPy lines (lse, backward) and the cached variants (prefill, decode) as rows of the
causal forward. The C kernels against these NumPy lines: tests/nn/kernels/test_attention.py.

    python -m pytest tests/nn/test_attention.py
"""
import numpy as np
import pytest

from gradcheck import assert_grad_close, numeric_grad
from minillm.nn import attention as A
from minillm.nn.layers import rope_frequencies
from refs import rope_by_the_formula

B, T, C, NH, NKV, HD = 2, 7, 13, 4, 2, 6


def make(rng, n_kv=NKV, dtype=np.float64):
    x = rng.standard_normal((B, T, C))
    ws = [rng.standard_normal(shape) * 0.3 for shape in
          [(NH * HD, C), (n_kv * HD, C), (n_kv * HD, C), (C, NH * HD)]]
    return [a.astype(dtype) for a in [x] + ws]


def attention_by_definition(x, wq, wk, wv, wo, n_kv):
    """Loop over heads: softmax(q k^T / sqrt(HD), causal) v with RoPE'd q, k; float64."""
    q = (x @ wq.T).reshape(B, T, NH, HD).transpose(0, 2, 1, 3)
    k = (x @ wk.T).reshape(B, T, n_kv, HD).transpose(0, 2, 1, 3)
    v = (x @ wv.T).reshape(B, T, n_kv, HD).transpose(0, 2, 1, 3)
    q, k = rope_by_the_formula(q, 10000.0), rope_by_the_formula(k, 10000.0)
    y = np.zeros((B, T, NH, HD))
    for b in range(B):
        for h in range(NH):
            kv = h // (NH // n_kv)
            s = q[b, h] @ k[b, kv].T / np.sqrt(HD)
            s[np.triu_indices(T, 1)] = -np.inf
            p = np.exp(s - s.max(1, keepdims=True))
            y[b, :, h] = (p / p.sum(1, keepdims=True)) @ v[b, kv]
    return y.reshape(B, T, NH * HD) @ wo.T


@pytest.mark.parametrize("n_kv", [NH, NKV, 1])
def test_forward_is_the_definition(rng, n_kv):
    args = make(rng, n_kv)
    y, _ = A.attention_forward(*args, NH, n_kv, rope_frequencies(T, HD, dtype=np.float64))
    np.testing.assert_allclose(y, attention_by_definition(*args, n_kv), rtol=1e-10, atol=1e-12)


def test_backward_matches_finite_differences(rng):
    args = make(rng)
    freqs = rope_frequencies(T, HD, dtype=np.float64)
    R = rng.standard_normal((B, T, C))
    grads = A.attention_backward(R, A.attention_forward(*args, NH, NKV, freqs)[1])
    loss = lambda: float((A.attention_forward(*args, NH, NKV, freqs)[0] * R).sum())
    for name, a, g in zip(["x", "wq", "wk", "wv", "wo"], args, grads):
        assert g.shape == a.shape, name
        assert_grad_close(g, numeric_grad(loss, a), rtol=1e-6)


def test_float32_kernel_path_matches_float64(rng):
    args64 = make(rng)
    args32 = [a.astype(np.float32) for a in args64]
    R = rng.standard_normal((B, T, C))
    y64, c64 = A.attention_forward(*args64, NH, NKV, rope_frequencies(T, HD, dtype=np.float64))
    y32, c32 = A.attention_forward(*args32, NH, NKV, rope_frequencies(T, HD))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    for g32, g64 in zip(A.attention_backward(R.astype(np.float32), c32), A.attention_backward(R, c64)):
        assert g32.dtype == np.float32 and g32.flags.c_contiguous
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4)


def test_causal_future_tokens_do_not_leak(rng):
    x, *ws = make(rng)
    freqs = rope_frequencies(T, HD, dtype=np.float64)
    y, _ = A.attention_forward(x, *ws, NH, NKV, freqs)
    x2 = x.copy()
    x2[:, 4:] += 1.0
    y2, _ = A.attention_forward(x2, *ws, NH, NKV, freqs)
    np.testing.assert_allclose(y2[:, :4], y[:, :4], rtol=1e-12)
    assert not np.allclose(y2[:, 4:], y[:, 4:])


def test_split_qkv_and_merge_heads_layouts(rng):
    qkv = rng.standard_normal((B, T, (NH + 2 * NKV) * HD)).astype(np.float32)
    no_rotation = np.ones((T, HD // 2), np.complex64)
    q, k, v = A.split_qkv(qkv, NH, NKV, no_rotation)
    assert q.shape == (B, NH, T, HD) and k.shape == v.shape == (B, NKV, T, HD)
    assert q.flags.c_contiguous and k.flags.c_contiguous and v.flags.c_contiguous
    np.testing.assert_array_equal(q[1, 2, 3], qkv[1, 3, 2 * HD:3 * HD])
    np.testing.assert_array_equal(k[1, 1, 3], qkv[1, 3, (NH + 1) * HD:(NH + 2) * HD])
    np.testing.assert_array_equal(v[0, 1, 6], qkv[0, 6, (NH + NKV + 1) * HD:])
    np.testing.assert_array_equal(A.merge_heads(q), qkv[..., :NH * HD])


@pytest.mark.parametrize("pos0", [0, 5])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_rope_is_the_interleaved_formula(rng, pos0, dtype, tol):
    qkv = rng.standard_normal((B, T, (NH + 2 * NKV) * HD))                # (B, T, QD + 2 KD)
    freqs = rope_frequencies(T, HD, theta=500.0, pos0=pos0, dtype=dtype)
    q, k, v = A.split_qkv(qkv.astype(dtype), NH, NKV, freqs)
    heads = qkv.reshape(B, T, NH + 2 * NKV, HD).transpose(0, 2, 1, 3)     # (B, heads, T, HD)
    assert q.dtype == dtype
    np.testing.assert_allclose(q, rope_by_the_formula(heads[:, :NH], 500.0, pos0), rtol=tol, atol=tol)
    np.testing.assert_allclose(k, rope_by_the_formula(heads[:, NH:NH + NKV], 500.0, pos0),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(v, heads[:, NH + NKV:], rtol=tol, atol=tol)
    if pos0 == 0:
        np.testing.assert_allclose(q[:, :, 0], heads[:, :NH, 0], rtol=tol, atol=tol)  # unrotated


# ---- the attention core and its cached variants, NumPy lines (float64) ----------------------

def core_inputs(rng, B=2, NH=4, NKV=2, T=5, HD=3):
    q = rng.standard_normal((B, NH, T, HD))                              # (B, NH, T, HD)
    k = rng.standard_normal((B, NKV, T, HD))                             # (B, NKV, T, HD)
    v = rng.standard_normal((B, NKV, T, HD))                             # (B, NKV, T, HD)
    return q, k, v


def test_lse_is_the_log_of_each_rows_softmax_denominator(rng):
    q, k, v = core_inputs(rng)
    _, lse = A.causal_attention(q, k, v)
    for b, h, t in [(0, 0, 0), (1, 3, 4), (0, 2, 2)]:
        kv = h // 2                                                      # NH // NKV = 2
        scores = q[b, h, t] @ k[b, kv, :t + 1].T / np.sqrt(3)           # (t + 1,) causal
        assert lse[b, h, t] == pytest.approx(np.log(np.exp(scores).sum()), rel=1e-12)


def test_core_backward_matches_finite_differences(rng):
    """D = rowsum(dout * out) and P rebuilt from lse, against float64 central differences;
    query heads sharing a KV head add their dk, dv into it."""
    q, k, v = core_inputs(rng)
    R = rng.standard_normal(q.shape)                                     # upstream gradient
    out, lse = A.causal_attention(q, k, v)
    grads = A.causal_attention_backward(R, q, k, v, out, lse)
    loss = lambda: float((A.causal_attention(q, k, v)[0] * R).sum())
    for name, x, g in zip("qkv", (q, k, v), grads):
        assert g.shape == x.shape, name
        assert_grad_close(g, numeric_grad(loss, x))


@pytest.mark.parametrize("pos0", [0, 1, 4])
def test_prefill_and_decode_are_rows_of_the_forward(rng, pos0):
    q, k, v = core_inputs(rng, T=7)
    full, _ = A.causal_attention(q, k, v)                                # (B, NH, T, HD)
    kc = np.full((2, 2, 9, 3), np.nan)                                   # capacity 9: NaN past T
    vc = np.full((2, 2, 9, 3), np.nan)
    kc[:, :, :7], vc[:, :, :7] = k, v
    out = A.attention_prefill(q[:, :, pos0:], kc, vc, pos0)             # (B, NH, T - pos0, HD)
    np.testing.assert_allclose(out, full[:, :, pos0:], rtol=1e-12, atol=1e-12)
    # decode: row 0 at the last position, row 1 at position pos0 (ragged lengths)
    qd = np.stack([q[0, :, 6], q[1, :, pos0]])                           # (B, NH, HD)
    out = A.attention_decode(qd, kc, vc, np.array([7, pos0 + 1]))        # (B, NH, HD)
    np.testing.assert_allclose(out, np.stack([full[0, :, 6], full[1, :, pos0]]), rtol=1e-12,
                               atol=1e-12)


def test_split_qkv_backward_matches_finite_differences(rng):
    qkv = rng.standard_normal((B, T, (NH + 2 * NKV) * HD))
    freqs = rope_frequencies(T, HD, theta=500.0, pos0=2, dtype=np.float64)
    R = [rng.standard_normal(a.shape) for a in A.split_qkv(qkv, NH, NKV, freqs)]
    dqkv = A.split_qkv_backward(*R, freqs)
    loss = lambda: sum(float((a * r).sum()) for a, r in zip(A.split_qkv(qkv, NH, NKV, freqs), R))
    assert_grad_close(dqkv, numeric_grad(loss, qkv))
