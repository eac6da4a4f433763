"""The causal attention kernels (csrc/attention*.c) and their NumPy twins: the forward with
its log-sum-exp, the backward, a prefill against a KV cache, and the one-token decode.

    out, lse = attention_forward(q, k, v)        # C on float32 C-contiguous arrays, else NumPy
    out, lse = attention_forward_ref(q, k, v)    # NumPy, always: the readable definition

nn/attention.py's layer calls the first two (training); the inference engine in
minillm/generate/ calls the prefill and the decode. Each twin is the math the C kernel
must match; the C side's tiling and online softmax are explained atop csrc/attention.c.

    python -m pytest tests/nn/kernels/test_attention.py

Read next: layers.py.

Shapes: B batch, NH query heads, NKV key/value heads (NH % NKV == 0; query head h reads
KV head h // (NH // NKV)), T time, HD head dim, S KV-cache capacity.
"""
import numpy as np

from minillm.clib import _ptr
from minillm.nn.kernels import c_lib, check_shape

# ---- causal self-attention -------------------------------------------------------------

def _attention_shapes(q, k, v):
    check_shape("q", q, ndim=4)
    check_shape("k", k, ndim=4)
    check_shape("v", v, ndim=4)
    B, NH, T, HD = q.shape
    NKV = k.shape[1]
    if k.shape != (B, NKV, T, HD) or v.shape != k.shape:
        raise ValueError(f"k and v must have shape (B, NKV, T, HD) = ({B}, NKV, {T}, {HD}); "
                         f"got k {k.shape}, v {v.shape}")
    if NKV < 1 or NH % NKV:
        raise ValueError(f"query heads ({NH}) must be a multiple of key/value heads ({NKV})")
    return B, NH, NKV, T, HD


def _expand_kv(x, NH):
    """(B, NKV, T, HD) -> (B, NH, T, HD): each KV head serves NH // NKV query heads."""
    return np.repeat(x, NH // x.shape[1], axis=1)


def attention_forward_ref(q, k, v):
    """out (B, NH, T, HD), lse (B, NH, T) of causal softmax(q k^T / sqrt(HD)) v.

    lse, the log of each row's softmax denominator, is all the backward needs to rebuild
    the probabilities P = exp(S - lse) exactly, so the (T, T) matrix P is never stored.
    """
    B, NH, T, HD = q.shape
    if T == 0:
        return np.empty_like(q), np.empty((B, NH, 0), dtype=q.dtype)
    k, v = _expand_kv(k, NH), _expand_kv(v, NH)
    att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HD).astype(q.dtype)     # (B, NH, T, T)
    att = np.where(np.tril(np.ones((T, T), dtype=bool)), att, -np.inf)  # causal mask
    m = att.max(axis=-1, keepdims=True)                                 # (B, NH, T, 1) so exp <= 1
    p = np.exp(att - m)                                                 # (B, NH, T, T)
    s = p.sum(axis=-1, keepdims=True)                                   # (B, NH, T, 1)
    out = (p / s) @ v                                                   # (B, NH, T, HD)
    lse = (m + np.log(s))[..., 0]                                       # (B, NH, T) log-sum-exp
    return out.astype(q.dtype), lse.astype(q.dtype)


def attention_forward(q, k, v):
    """Causal self-attention: returns out (B, NH, T, HD) and lse (B, NH, T)."""
    B, NH, NKV, T, HD = _attention_shapes(q, k, v)
    ffi, lib = c_lib(q, k, v)
    if lib is None:
        return attention_forward_ref(q, k, v)
    out = np.empty((B, NH, T, HD), dtype=np.float32)
    lse = np.empty((B, NH, T), dtype=np.float32)
    lib.attention_forward(_ptr(ffi, out, True), _ptr(ffi, lse, True), _ptr(ffi, q), _ptr(ffi, k),
                          _ptr(ffi, v), B, NH, NKV, T, HD)
    return out, lse


def attention_backward_ref(dout, q, k, v, out, lse):
    """dq (B, NH, T, HD), dk, dv (B, NKV, T, HD): the gradients of attention_forward.

    With S = q k^T / sqrt(HD) (masked) and P = softmax(S) = exp(S - lse):
        out = P v        ->  dv = P^T dout,  dP = dout v^T
        P = softmax(S)   ->  dS = P * (dP - D),  D = rowsum(dP * P)
        S = q k^T / sqrt(HD)  ->  dq = dS k / sqrt(HD),  dk = dS^T q / sqrt(HD)
    D = rowsum(dout * out) too, since sum_j P_ij (dout_i . v_j) = dout_i . sum_j P_ij v_j =
    dout_i . out_i: a sum over HD per row instead of over T.
    Query heads that share a KV head add their dk, dv into it.
    """
    B, NH, T, HD = q.shape
    NKV = k.shape[1]
    scale = 1.0 / np.sqrt(HD)
    ke, ve = _expand_kv(k, NH), _expand_kv(v, NH)
    att = q @ ke.transpose(0, 1, 3, 2) * scale                          # (B, NH, T, T)
    mask = np.tril(np.ones((T, T), dtype=bool))
    p = np.where(mask, np.exp(att - lse[..., None]), 0.0)               # (B, NH, T, T)
    dve = p.transpose(0, 1, 3, 2) @ dout                                # (B, NH, T, HD)
    dp = dout @ ve.transpose(0, 1, 3, 2)                                # (B, NH, T, T)
    D = (dout * out).sum(axis=-1, keepdims=True)                        # (B, NH, T, 1) = rowsum(dp * p)
    ds = p * (dp - D) * scale                                           # (B, NH, T, T)
    dq = ds @ ke                                                        # (B, NH, T, HD)
    dke = ds.transpose(0, 1, 3, 2) @ q                                  # (B, NH, T, HD)
    group = NH // NKV
    dk = dke.reshape(B, NKV, group, T, HD).sum(axis=2)                  # (B, NKV, T, HD)
    dv = dve.reshape(B, NKV, group, T, HD).sum(axis=2)                  # (B, NKV, T, HD)
    return dq.astype(q.dtype), dk.astype(q.dtype), dv.astype(q.dtype)


def attention_backward(dout, q, k, v, out, lse):
    """Gradients of attention_forward: returns dq, dk, dv."""
    B, NH, NKV, T, HD = _attention_shapes(q, k, v)
    check_shape("dout", dout, (B, NH, T, HD))
    check_shape("out", out, (B, NH, T, HD))
    check_shape("lse", lse, (B, NH, T))
    ffi, lib = c_lib(dout, q, k, v, out, lse)
    if lib is None:
        return attention_backward_ref(dout, q, k, v, out, lse)
    dq = np.empty_like(q)
    dk = np.empty_like(k)
    dv = np.empty_like(v)
    lib.attention_backward(_ptr(ffi, dq, True), _ptr(ffi, dk, True), _ptr(ffi, dv, True),
                           _ptr(ffi, dout), _ptr(ffi, q), _ptr(ffi, k), _ptr(ffi, v),
                           _ptr(ffi, out), _ptr(ffi, lse), B, NH, NKV, T, HD)
    return dq, dk, dv


def attention_prefill_ref(q, kcache, vcache, pos0):
    """out (B, NH, Tq, HD): queries at positions pos0.. attend to cache positions 0..pos."""
    B, NH, Tq, HD = q.shape
    L = pos0 + Tq
    if Tq == 0:
        return np.empty_like(q)
    k, v = _expand_kv(kcache[:, :, :L], NH), _expand_kv(vcache[:, :, :L], NH)
    att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HD).astype(q.dtype)     # (B, NH, Tq, L)
    allowed = np.arange(L)[None, :] <= pos0 + np.arange(Tq)[:, None]    # (Tq, L)
    att = np.where(allowed, att, -np.inf)
    p = np.exp(att - att.max(axis=-1, keepdims=True))                   # (B, NH, Tq, L)
    return ((p / p.sum(axis=-1, keepdims=True)) @ v).astype(q.dtype)


def attention_prefill(q, kcache, vcache, pos0=0):
    """Attention of Tq new queries (positions pos0..pos0+Tq-1) against a KV cache."""
    check_shape("q", q, ndim=4)
    check_shape("kcache", kcache, ndim=4)
    check_shape("vcache", vcache, kcache.shape)
    B, NH, Tq, HD = q.shape
    _, NKV, S, _ = kcache.shape
    if kcache.shape[0] != B or kcache.shape[3] != HD or NKV < 1 or NH % NKV:
        raise ValueError(f"kcache must be (B={B}, NKV, S, HD={HD}) with NH={NH} a multiple of NKV; got {kcache.shape}")
    if not 0 <= pos0 or pos0 + Tq > S:
        raise ValueError(f"positions {pos0}..{pos0 + Tq - 1} do not fit in a cache of {S}")
    ffi, lib = c_lib(q, kcache, vcache)
    if lib is None:
        return attention_prefill_ref(q, kcache, vcache, pos0)
    out = np.empty_like(q)
    lib.attention_prefill(_ptr(ffi, out, True), _ptr(ffi, q), _ptr(ffi, kcache), _ptr(ffi, vcache),
                          B, NH, NKV, Tq, pos0, S, HD)
    return out


def attention_decode_ref(q, kcache, vcache, lengths):
    """out (B, NH, HD): row b's query attends to its first lengths[b] cache positions."""
    B, NH, HD = q.shape
    out = np.empty_like(q)
    for b in range(B):
        L = int(lengths[b])
        k = _expand_kv(kcache[b:b + 1, :, :L], NH)[0]                   # (NH, L, HD)
        v = _expand_kv(vcache[b:b + 1, :, :L], NH)[0]                   # (NH, L, HD)
        att = np.einsum("hd,hld->hl", q[b], k) / np.sqrt(HD)            # (NH, L)
        p = np.exp(att - att.max(axis=-1, keepdims=True))
        out[b] = np.einsum("hl,hld->hd", p / p.sum(axis=-1, keepdims=True), v)
    return out


def attention_decode(q, kcache, vcache, lengths):
    """One new query per sequence against its KV cache; lengths (B,) int32 in 1..S."""
    check_shape("q", q, ndim=3)
    check_shape("kcache", kcache, ndim=4)
    check_shape("vcache", vcache, kcache.shape)
    B, NH, HD = q.shape
    _, NKV, S, _ = kcache.shape
    if kcache.shape[0] != B or kcache.shape[3] != HD or NKV < 1 or NH % NKV:
        raise ValueError(f"kcache must be (B={B}, NKV, S, HD={HD}) with NH={NH} a multiple of NKV; got {kcache.shape}")
    lengths = np.ascontiguousarray(lengths, dtype=np.int32)
    if lengths.shape != (B,) or (B and (lengths.min() < 1 or lengths.max() > S)):
        raise ValueError(f"lengths must be {B} integers in 1..{S}, got {lengths}")
    ffi, lib = c_lib(q, kcache, vcache)
    if lib is None:
        return attention_decode_ref(q, kcache, vcache, lengths)
    out = np.empty_like(q)
    lib.attention_decode(_ptr(ffi, out, True), _ptr(ffi, q), _ptr(ffi, kcache), _ptr(ffi, vcache),
                         _ptr(ffi, lengths), B, NH, NKV, S, HD)
    return out
