"""Multi-head causal self-attention with grouped key/value heads (GQA), forward and backward,
and the same attention over a KV cache for inference.

    q = rope(x Wq^T), k = rope(x Wk^T), v = x Wv^T      split into heads (split_qkv)
    out = softmax(q k^T / sqrt(HD) + causal mask) v     (causal_attention)
    y = merge_heads(out) Wo^T

NH query heads share NKV key/value heads: query head h reads KV head h // (NH // NKV).
The three projections run as one matmul against [Wq; Wk; Wv], so backward also makes dx
with one matmul. Each step is its NumPy lines with its C call above them (kernels.fast
decides); the layouts are fused with RoPE, so C reads the projection's rows once.

    python -m pytest tests/nn/test_attention.py

Read next: nn/gpt.py, which stacks these blocks into the model.

Shapes: B batch, T time, C channels, NH query heads, NKV key/value heads, HD head dim,
QD = NH*HD, KD = NKV*HD, S KV-cache capacity.
"""
import numpy as np

from minillm.nn import kernels as K
from minillm.nn.kernels import attention as KA
from minillm.nn.kernels import layers as KL
from minillm.nn.layers import linear_backward, linear_forward

# ---- layouts: the projection's rows <-> heads, with RoPE on the way -----------------------

def _head_views(a, n_head, n_kv_head):
    """Views of a (B, T, D) as q (B, NH, T, HD), k and v (B, NKV, T, HD)."""
    B, T, D = a.shape
    HD = D // (n_head + 2 * n_kv_head)
    a4 = a.reshape(B, T, n_head + 2 * n_kv_head, HD)                    # (B, T, NH+2NKV, HD) view
    q = a4[:, :, :n_head].transpose(0, 2, 1, 3)                         # (B, NH, T, HD) view
    k = a4[:, :, n_head:n_head + n_kv_head].transpose(0, 2, 1, 3)       # (B, NKV, T, HD) view
    v = a4[:, :, n_head + n_kv_head:].transpose(0, 2, 1, 3)             # (B, NKV, T, HD) view
    return q, k, v


def _rotated(x, freqs):
    """x (..., T, HD) with each pair (x[2i], x[2i+1]), read as the complex number
    x[2i] + i x[2i+1], times freqs (T, HD/2) = e^(i angle): a rotation by angle."""
    # exercise: rope
    freqs = np.asarray(freqs, np.result_type(x.dtype, np.complex64))    # complex64 for float32
    out = np.empty(x.shape, x.dtype)                                    # (..., T, HD)
    np.multiply(x.view(freqs.dtype), freqs, out=out.view(freqs.dtype))
    return out
    # end exercise


def split_qkv(qkv, n_head, n_kv_head, freqs):
    """qkv (B, T, QD + 2 KD) -> q (B, NH, T, HD), k, v (B, NKV, T, HD), contiguous, with
    RoPE (freqs (T, HD/2), see layers.rope_frequencies) applied to q and k."""
    if K.fast(qkv):
        return KL.rope_split_qkv(qkv, n_head, n_kv_head, freqs)         # csrc/layers.c: one pass
    q, k, v = _head_views(qkv, n_head, n_kv_head)                       # (B, NH|NKV, T, HD) views
    return _rotated(q, freqs), _rotated(k, freqs), np.ascontiguousarray(v)


def split_qkv_backward(dq, dk, dv, freqs):
    """dqkv (B, T, QD + 2 KD) of split_qkv: dq and dk rotated back (by conj(freqs), the
    inverse rotation), then all three put back in the rows of the projection."""
    if K.fast(dq, dk, dv):
        return KL.rope_split_qkv_backward(dq, dk, dv, freqs)            # csrc/layers.c: one pass
    B, NH, T, HD = dq.shape
    NKV = dk.shape[1]
    dqkv = np.empty((B, T, (NH + 2 * NKV) * HD), dq.dtype)              # (B, T, QD + 2 KD)
    q, k, v = _head_views(dqkv, NH, NKV)                                # views into dqkv
    q[...] = _rotated(dq, np.conj(freqs))
    k[...] = _rotated(dk, np.conj(freqs))
    v[...] = dv
    return dqkv


def merge_heads(out):
    """out (B, NH, T, HD) -> (B, T, NH*HD), contiguous."""
    if K.fast(out):
        return KL.merge_heads(out)                                      # csrc/layers.c
    B, NH, T, HD = out.shape
    return out.transpose(0, 2, 1, 3).reshape(B, T, NH * HD)             # (B, T, QD) a copy


def split_heads(y, n_head):
    """y (B, T, NH*HD) -> (B, NH, T, HD), contiguous: merge_heads' inverse."""
    if K.fast(y):
        return KL.split_heads(y, n_head)                                # csrc/layers.c
    B, T, D = y.shape
    return np.ascontiguousarray(y.reshape(B, T, n_head, D // n_head).transpose(0, 2, 1, 3))


# ---- the attention core: causal softmax(q k^T / sqrt(HD)) v ---------------------------------

def _expand_kv(x, NH):
    """(B, NKV, T, HD) -> (B, NH, T, HD): each KV head serves NH // NKV query heads."""
    return np.repeat(x, NH // x.shape[1], axis=1)


def causal_attention(q, k, v):
    """out (B, NH, T, HD), lse (B, NH, T) of causal softmax(q k^T / sqrt(HD)) v.

    lse, the log of each row's softmax denominator, is kept because it is all the backward
    needs to rebuild P = softmax(S) = exp(S - lse) exactly: the (T, T) matrix P is never stored.
    """
    if K.fast(q, k, v):
        return KA.attention_forward(q, k, v)                            # csrc/attention.c: tiled
    B, NH, T, HD = q.shape
    if T == 0:
        return np.empty_like(q), np.empty((B, NH, 0), dtype=q.dtype)
    k, v = _expand_kv(k, NH), _expand_kv(v, NH)                         # (B, NH, T, HD)
    S = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HD).astype(q.dtype)       # (B, NH, T, T)
    S = np.where(np.tril(np.ones((T, T), dtype=bool)), S, -np.inf)      # causal mask
    m = S.max(axis=-1, keepdims=True)                                   # (B, NH, T, 1) so exp <= 1
    p = np.exp(S - m)                                                   # (B, NH, T, T)
    s = p.sum(axis=-1, keepdims=True)                                   # (B, NH, T, 1)
    out = (p / s) @ v                                                   # (B, NH, T, HD)
    lse = (m + np.log(s))[..., 0]                                       # (B, NH, T) log-sum-exp
    return out.astype(q.dtype), lse.astype(q.dtype)


def causal_attention_backward(dout, q, k, v, out, lse):
    """dq (B, NH, T, HD), dk, dv (B, NKV, T, HD): the gradients of causal_attention.

    With S = q k^T / sqrt(HD) (masked) and P = softmax(S) = exp(S - lse):
        out = P v        ->  dv = P^T dout,  dP = dout v^T
        P = softmax(S)   ->  dS = P * (dP - D),  D = rowsum(dP * P)
        S = q k^T / sqrt(HD)  ->  dq = dS k / sqrt(HD),  dk = dS^T q / sqrt(HD)
    Query heads that share a KV head add their dk, dv into it.
    """
    if K.fast(dout, q, k, v, out, lse):
        return KA.attention_backward(dout, q, k, v, out, lse)           # csrc/attention_backward.c
    # exercise: attention_backward
    B, NH, T, HD = q.shape
    NKV = k.shape[1]
    scale = 1.0 / np.sqrt(HD)
    ke, ve = _expand_kv(k, NH), _expand_kv(v, NH)                       # (B, NH, T, HD)
    S = q @ ke.transpose(0, 1, 3, 2) * scale                            # (B, NH, T, T)
    mask = np.tril(np.ones((T, T), dtype=bool))
    p = np.where(mask, np.exp(S - lse[..., None]), 0.0)                 # (B, NH, T, T) P, rebuilt
    dve = p.transpose(0, 1, 3, 2) @ dout                                # (B, NH, T, HD)
    dp = dout @ ve.transpose(0, 1, 3, 2)                                # (B, NH, T, T)
    # D = rowsum(dP * P) = rowsum(dout * out): sum_j P_ij (dout_i . v_j) = dout_i . out_i
    # since out_i = sum_j P_ij v_j, so a sum over HD per row replaces one over T
    D = (dout * out).sum(axis=-1, keepdims=True)                        # (B, NH, T, 1)
    ds = p * (dp - D) * scale                                           # (B, NH, T, T)
    dq = ds @ ke                                                        # (B, NH, T, HD)
    dke = ds.transpose(0, 1, 3, 2) @ q                                  # (B, NH, T, HD)
    group = NH // NKV
    dk = dke.reshape(B, NKV, group, T, HD).sum(axis=2)                  # (B, NKV, T, HD)
    dv = dve.reshape(B, NKV, group, T, HD).sum(axis=2)                  # (B, NKV, T, HD)
    return dq.astype(q.dtype), dk.astype(q.dtype), dv.astype(q.dtype)
    # end exercise


# ---- the attention sublayer: projections, RoPE, the core, the output projection ------------

def attention_forward(x, wq, wk, wv, wo, n_head, n_kv_head, freqs):
    """y (B, T, C) = causal GQA self-attention of x (B, T, C).

    wq (QD, C), wk and wv (KD, C), wo (C, QD); freqs (T, HD/2) from rope_frequencies.
    """
    wqkv = np.concatenate((wq, wk, wv))                                 # (QD + 2 KD, C)
    qkv, qkv_cache = linear_forward(x, wqkv)                            # (B, T, QD + 2 KD)
    q, k, v = split_qkv(qkv, n_head, n_kv_head, freqs)                  # (B, NH|NKV, T, HD)
    del qkv  # subtle: backward needs q, k, v in kernel layout, not the projection itself
    out, lse = causal_attention(q, k, v)                                # (B, NH, T, HD), (B, NH, T)
    y = merge_heads(out)                                                # (B, T, QD)
    o, o_cache = linear_forward(y, wo)                                  # (B, T, C)
    return o, (qkv_cache, q, k, v, out, lse, o_cache, freqs)


def attention_backward(do, cache):
    """dx (B, T, C), dwq, dwk, dwv, dwo: the gradients of attention_forward."""
    qkv_cache, q, k, v, out, lse, o_cache, freqs = cache
    B, NH, T, HD = q.shape
    NKV = k.shape[1]
    # o = y wo^T
    dy, dwo = linear_backward(do, o_cache)                              # (B, T, QD), (C, QD)
    # y = merge_heads(out): its backward is the inverse transpose
    dout = split_heads(dy, NH)                                          # (B, NH, T, HD)
    # out, lse = causal_attention(q, k, v)
    dq, dk, dv = causal_attention_backward(dout, q, k, v, out, lse)     # (B, NH|NKV, T, HD)
    # q, k, v = split_qkv(qkv): dq, dk rotated back, all three in the projection's rows
    dqkv = split_qkv_backward(dq, dk, dv, freqs)                        # (B, T, QD + 2 KD)
    # qkv = x [wq; wk; wv]^T
    dx, dwqkv = linear_backward(dqkv, qkv_cache)                        # (B, T, C), (QD + 2 KD, C)
    QD, KD = NH * HD, NKV * HD
    return dx, dwqkv[:QD], dwqkv[QD:QD + KD], dwqkv[QD + KD:], dwo


# ---- inference: the same attention over a KV cache ----------------------------------------

def attention_prefill(q, kcache, vcache, pos0):
    """out (B, NH, Tq, HD): the queries at positions pos0..pos0+Tq-1 attend to the cache's
    positions 0..their own (causal_attention's rows pos0.. when the cache holds k, v)."""
    if K.fast(q, kcache, vcache):
        return KA.attention_prefill(q, kcache, vcache, pos0)            # csrc/attention.c
    B, NH, Tq, HD = q.shape
    L = pos0 + Tq
    if Tq == 0:
        return np.empty_like(q)
    k, v = _expand_kv(kcache[:, :, :L], NH), _expand_kv(vcache[:, :, :L], NH)  # (B, NH, L, HD)
    S = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HD).astype(q.dtype)       # (B, NH, Tq, L)
    allowed = np.arange(L)[None, :] <= pos0 + np.arange(Tq)[:, None]    # (Tq, L) causal
    S = np.where(allowed, S, -np.inf)
    p = np.exp(S - S.max(axis=-1, keepdims=True))                       # (B, NH, Tq, L)
    return ((p / p.sum(axis=-1, keepdims=True)) @ v).astype(q.dtype)    # (B, NH, Tq, HD)


def attention_decode(q, kcache, vcache, lengths):
    """out (B, NH, HD): row b's one query attends to its first lengths[b] cache positions
    (rows of a batch may be at different positions)."""
    if K.fast(q, kcache, vcache):
        return KA.attention_decode(q, kcache, vcache, lengths)          # csrc/attention.c
    # exercise: kv_decode
    B, NH, HD = q.shape
    out = np.empty_like(q)                                              # (B, NH, HD)
    for b in range(B):
        L = int(lengths[b])
        k = _expand_kv(kcache[b:b + 1, :, :L], NH)[0]                   # (NH, L, HD)
        v = _expand_kv(vcache[b:b + 1, :, :L], NH)[0]                   # (NH, L, HD)
        S = np.einsum("hd,hld->hl", q[b], k) / np.sqrt(HD)              # (NH, L)
        p = np.exp(S - S.max(axis=-1, keepdims=True))                   # (NH, L)
        out[b] = np.einsum("hl,hld->hd", p / p.sum(axis=-1, keepdims=True), v)
    return out
    # end exercise


def attention_cached(x, wq, wk, wv, wo, n_head, n_kv_head, freqs, kv, pos):
    """y (B, T, C): attention_forward's lines for T new positions over a KV cache.

    kv = (kc, vc), this layer's cache rows (B, NKV, S, HD) float32. The new keys and values
    go into the cache, and each query attends to every cached position up to its own:
      pos an int: the T tokens sit at pos..pos+T-1 in every row (prefill);
      pos (B,) ints, T = 1: row b's one token sits at pos[b] (decode, rows at different
      positions); freqs (B, HD/2) then holds each row's own rotation.
    """
    kc, vc = kv
    B, T, _ = x.shape
    wqkv = np.concatenate((wq, wk, wv))                                 # (QD + 2 KD, C)
    qkv, _ = linear_forward(x, wqkv)                                    # (B, T, QD + 2 KD)
    if np.ndim(pos) == 0:
        q, k, v = split_qkv(qkv, n_head, n_kv_head, freqs)              # (B, NH|NKV, T, HD)
        kc[:, :, pos:pos + T] = k
        vc[:, :, pos:pos + T] = v
        out = attention_prefill(q, kc, vc, pos)                         # (B, NH, T, HD)
    else:
        # subtle: each row needs its own rotation, so the B rows are read as the time axis
        # of one sequence (1, B, ...): split_qkv then rotates "time" b by freqs[b]
        q, k, v = split_qkv(qkv.reshape(1, B, -1), n_head, n_kv_head, freqs)  # (1, NH|NKV, B, HD)
        # exercise: kv_decode
        rows = np.arange(B)                                             # (B,)
        kc[rows, :, pos] = k[0].transpose(1, 0, 2)                      # (B, NKV, HD) at pos[b]
        vc[rows, :, pos] = v[0].transpose(1, 0, 2)
        q = np.ascontiguousarray(q[0].transpose(1, 0, 2))               # (B, NH, HD)
        out = attention_decode(q, kc, vc, pos + 1)[:, :, None]          # (B, NH, 1, HD)
        # end exercise
    y, _ = linear_forward(merge_heads(out), wo)                         # (B, T, C)
    return y
