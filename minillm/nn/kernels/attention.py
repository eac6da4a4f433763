"""The causal attention kernels (csrc/attention*.c): the forward with its log-sum-exp, the
backward, a prefill against a KV cache and the one-token decode. The C side's tiling and
online softmax are explained atop csrc/attention.c.

    out, lse = attention_forward(q, k, v)        # float32, C-contiguous, the library loaded

Their NumPy twins, the math these must match, are in nn/attention.py: causal_attention,
causal_attention_backward, attention_prefill and attention_decode, each of which calls the
wrapper here when kernels.fast allows it. Every wrapper checks shapes, dtypes and
contiguity before any pointer reaches C.

    python -m pytest tests/nn/kernels/test_attention.py

Read next: layers.py.

Shapes: B batch, NH query heads, NKV key/value heads (NH % NKV == 0; query head h reads
KV head h // (NH // NKV)), T time, HD head dim, S KV-cache capacity.
"""
import numpy as np

from minillm.clib import _check, _ptr
from minillm.nn.kernels import c_lib


def _attention_shapes(q, k, v):
    _check("q", q, ndim=4)
    _check("k", k, ndim=4)
    _check("v", v, ndim=4)
    B, NH, T, HD = q.shape
    NKV = k.shape[1]
    if k.shape != (B, NKV, T, HD) or v.shape != k.shape:
        raise ValueError(f"k and v must have shape (B, NKV, T, HD) = ({B}, NKV, {T}, {HD}); "
                         f"got k {k.shape}, v {v.shape}")
    if NKV < 1 or NH % NKV:
        raise ValueError(f"query heads ({NH}) must be a multiple of key/value heads ({NKV})")
    return B, NH, NKV, T, HD


def _cache_shapes(q, kcache, vcache, q_ndim):
    _check("q", q, ndim=q_ndim)
    _check("kcache", kcache, ndim=4)
    _check("vcache", vcache, kcache.shape)
    B, NH, HD = q.shape[0], q.shape[1], q.shape[-1]
    _, NKV, S, _ = kcache.shape
    if kcache.shape[0] != B or kcache.shape[3] != HD or NKV < 1 or NH % NKV:
        raise ValueError(f"kcache must be (B={B}, NKV, S, HD={HD}) with NH={NH} a multiple of "
                         f"NKV; got {kcache.shape}")
    return B, NH, NKV, S, HD


def attention_forward(q, k, v):
    """out (B, NH, T, HD), lse (B, NH, T) of causal softmax(q k^T / sqrt(HD)) v.
    NumPy twin: nn/attention.py causal_attention."""
    B, NH, NKV, T, HD = _attention_shapes(q, k, v)
    ffi, lib = c_lib()
    out = np.empty((B, NH, T, HD), dtype=np.float32)
    lse = np.empty((B, NH, T), dtype=np.float32)
    lib.attention_forward(_ptr(ffi, out, True), _ptr(ffi, lse, True), _ptr(ffi, q), _ptr(ffi, k),
                          _ptr(ffi, v), B, NH, NKV, T, HD)
    return out, lse


def attention_backward(dout, q, k, v, out, lse):
    """dq (B, NH, T, HD), dk, dv (B, NKV, T, HD): the gradients of attention_forward.
    NumPy twin: nn/attention.py causal_attention_backward."""
    B, NH, NKV, T, HD = _attention_shapes(q, k, v)
    _check("dout", dout, (B, NH, T, HD))
    _check("out", out, (B, NH, T, HD))
    _check("lse", lse, (B, NH, T))
    ffi, lib = c_lib()
    dq = np.empty_like(q)
    dk = np.empty_like(k)
    dv = np.empty_like(v)
    lib.attention_backward(_ptr(ffi, dq, True), _ptr(ffi, dk, True), _ptr(ffi, dv, True),
                           _ptr(ffi, dout), _ptr(ffi, q), _ptr(ffi, k), _ptr(ffi, v),
                           _ptr(ffi, out), _ptr(ffi, lse), B, NH, NKV, T, HD)
    return dq, dk, dv


def attention_prefill(q, kcache, vcache, pos0=0):
    """out (B, NH, Tq, HD): queries at positions pos0.. attend to cache positions 0..their own.
    NumPy twin: nn/attention.py attention_prefill."""
    B, NH, NKV, S, HD = _cache_shapes(q, kcache, vcache, 4)
    Tq = q.shape[2]
    if not 0 <= pos0 or pos0 + Tq > S:
        raise ValueError(f"positions {pos0}..{pos0 + Tq - 1} do not fit in a cache of {S}")
    ffi, lib = c_lib()
    out = np.empty_like(q)
    lib.attention_prefill(_ptr(ffi, out, True), _ptr(ffi, q), _ptr(ffi, kcache), _ptr(ffi, vcache),
                          B, NH, NKV, Tq, pos0, S, HD)
    return out


def attention_decode(q, kcache, vcache, lengths):
    """out (B, NH, HD): row b's one query attends to its first lengths[b] cache positions;
    lengths (B,) integers in 1..S. NumPy twin: nn/attention.py attention_decode."""
    B, NH, NKV, S, HD = _cache_shapes(q, kcache, vcache, 3)
    lengths = np.ascontiguousarray(lengths, dtype=np.int32)
    if lengths.shape != (B,) or (B and (lengths.min() < 1 or lengths.max() > S)):
        raise ValueError(f"lengths must be {B} integers in 1..{S}, got {lengths}")
    ffi, lib = c_lib()
    out = np.empty_like(q)
    lib.attention_decode(_ptr(ffi, out, True), _ptr(ffi, q), _ptr(ffi, kcache), _ptr(ffi, vcache),
                         _ptr(ffi, lengths), B, NH, NKV, S, HD)
    return out
