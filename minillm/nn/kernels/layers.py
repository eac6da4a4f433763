"""The kernels of the elementwise layers (csrc/layers.c): RMSNorm, SwiGLU, RoPE fused with
the split into heads, the head layouts, the softmax cross-entropy and the embedding's
backward, each one pass over memory.

    out, rstd = rmsnorm_forward(x, w, eps)       # float32, C-contiguous, the library loaded

Their NumPy twins are the lines of the layer that calls them when kernels.fast allows it:
nn/layers.py (RMSNorm, SwiGLU, cross-entropy, embedding) and nn/attention.py (RoPE and the
head layouts); each docstring names its twin. The wrappers return new arrays, except
cross_entropy_forward (in place on the logits) and embedding_backward (adds into the given
table), and check every argument before any pointer reaches C.

    python -m pytest tests/nn/kernels/test_layers.py

Read next: optim.py.

Shapes: N rows (tokens), C channels, H SwiGLU hidden size, V vocab; B batch, T time,
NH query heads, NKV key/value heads, HD head dim, D = (NH + 2 NKV) * HD.
"""
import numpy as np

from minillm.clib import _check, _check_output, _ptr
from minillm.nn.kernels import c_lib


def _int32(name, a, shape, high):
    """a as a C-contiguous int32 array of `shape` with values in 0..high-1 (ValueError otherwise)."""
    a = np.asarray(a)
    if a.shape != tuple(shape) or a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers of shape {tuple(shape)}, got {a.dtype} {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= high):
        raise ValueError(f"{name} must be in 0..{high - 1}, got {a.min()}..{a.max()}")
    return np.ascontiguousarray(a, dtype=np.int32)


# ---- RMSNorm ---------------------------------------------------------------------------

def rmsnorm_forward(inp, weight, eps):
    """out (N, C) = inp * rstd * weight (C,), rstd (N,) = 1 / sqrt(mean(inp^2) + eps).
    NumPy twin: nn/layers.py rmsnorm_forward."""
    _check("inp", inp, ndim=2)
    N, C = inp.shape
    _check("weight", weight, (C,))
    ffi, lib = c_lib()
    out = np.empty((N, C), np.float32)                                  # (N, C)
    rstd = np.empty(N, np.float32)                                      # (N,)
    lib.rmsnorm_forward(_ptr(ffi, out, True), _ptr(ffi, rstd, True), _ptr(ffi, inp),
                        _ptr(ffi, weight), N, C, float(eps))
    return out, rstd


def rmsnorm_backward(dout, inp, weight, rstd):
    """dinp (N, C), dweight (C,) (both new) of rmsnorm_forward.
    NumPy twin: nn/layers.py rmsnorm_backward."""
    _check("inp", inp, ndim=2)
    N, C = inp.shape
    _check("dout", dout, (N, C))
    _check("weight", weight, (C,))
    _check("rstd", rstd, (N,))
    ffi, lib = c_lib()
    dinp = np.empty((N, C), np.float32)                                 # (N, C)
    dweight = np.empty(C, np.float32)                                   # (C,)
    if lib.rmsnorm_backward(_ptr(ffi, dinp, True), _ptr(ffi, dweight, True), _ptr(ffi, dout),
                            _ptr(ffi, inp), _ptr(ffi, weight), _ptr(ffi, rstd), N, C):
        raise MemoryError(f"rmsnorm_backward: no memory for the dweight partial sums ({N} x {C})")
    return dinp, dweight


# ---- SwiGLU ----------------------------------------------------------------------------

def _gate_up(gu):
    _check("gu", gu, ndim=2)
    N, H2 = gu.shape
    if H2 % 2:
        raise ValueError(f"gu must be (N, 2H) = [gate | up], got an odd width {H2}")
    return N, H2 // 2


def swiglu_forward(gu):
    """out (N, H) = silu(g) * u of gu (N, 2H) = [g | u]. NumPy twin: nn/layers.py swiglu_forward."""
    N, H = _gate_up(gu)
    ffi, lib = c_lib()
    out = np.empty((N, H), np.float32)                                  # (N, H)
    lib.swiglu_forward(_ptr(ffi, out, True), _ptr(ffi, gu), N, H)
    return out


def swiglu_backward(dout, gu):
    """dgu (N, 2H) of swiglu_forward from dout (N, H) and its input gu (N, 2H), the sigmoid
    recomputed. NumPy twin: nn/layers.py swiglu_backward."""
    N, H = _gate_up(gu)
    _check("dout", dout, (N, H))
    ffi, lib = c_lib()
    dgu = np.empty((N, 2 * H), np.float32)                              # (N, 2H)
    lib.swiglu_backward(_ptr(ffi, dgu, True), _ptr(ffi, dout), _ptr(ffi, gu), N, H)
    return dgu


# ---- RoPE fused with the attention layouts ---------------------------------------------

def _qkv_shape(qkv_shape, n_head, n_kv_head):
    B, T, D = qkv_shape
    heads = n_head + 2 * n_kv_head
    if n_head < 1 or n_kv_head < 1 or n_head % n_kv_head or D % heads or (D // heads) % 2:
        raise ValueError(f"qkv width {D} must be (NH + 2 NKV) * HD with NH = {n_head} a multiple "
                         f"of NKV = {n_kv_head} and HD even")
    return B, T, D // heads


def _freqs_pairs(freqs, T, HD):
    """freqs (T, HD/2) complex as C-contiguous complex64, read by C as (cos, sin) pairs."""
    if not isinstance(freqs, np.ndarray) or freqs.shape != (T, HD // 2) or freqs.dtype.kind != "c":
        raise ValueError(f"freqs must be complex (T, HD/2) = ({T}, {HD // 2}), got "
                         f"{getattr(freqs, 'dtype', type(freqs).__name__)} {np.shape(freqs)}")
    return np.ascontiguousarray(freqs, dtype=np.complex64).view(np.float32)  # (T, HD)


def rope_split_qkv(qkv, n_head, n_kv_head, freqs):
    """q (B, NH, T, HD), k, v (B, NKV, T, HD) of qkv (B, T, D), q and k rotated by freqs
    (T, HD/2) complex: one pass. NumPy twin: nn/attention.py split_qkv."""
    _check("qkv", qkv, ndim=3)
    B, T, HD = _qkv_shape(qkv.shape, n_head, n_kv_head)
    pairs = _freqs_pairs(freqs, T, HD)
    ffi, lib = c_lib()
    q = np.empty((B, n_head, T, HD), np.float32)                        # (B, NH, T, HD)
    k = np.empty((B, n_kv_head, T, HD), np.float32)                     # (B, NKV, T, HD)
    v = np.empty((B, n_kv_head, T, HD), np.float32)                     # (B, NKV, T, HD)
    lib.rope_split_qkv(_ptr(ffi, q, True), _ptr(ffi, k, True), _ptr(ffi, v, True),
                       _ptr(ffi, qkv), _ptr(ffi, pairs), B, T, n_head, n_kv_head, HD)
    return q, k, v


def rope_split_qkv_backward(dq, dk, dv, freqs):
    """dqkv (B, T, D) of rope_split_qkv: one pass. NumPy twin: nn/attention.py
    split_qkv_backward."""
    _check("dq", dq, ndim=4)
    _check("dk", dk, ndim=4)
    B, NH, T, HD = dq.shape
    NKV = dk.shape[1]
    _check("dk", dk, (B, NKV, T, HD))
    _check("dv", dv, (B, NKV, T, HD))
    _qkv_shape((B, T, (NH + 2 * NKV) * HD), NH, NKV)
    pairs = _freqs_pairs(freqs, T, HD)
    ffi, lib = c_lib()
    dqkv = np.empty((B, T, (NH + 2 * NKV) * HD), np.float32)            # (B, T, D)
    lib.rope_split_qkv_backward(_ptr(ffi, dqkv, True), _ptr(ffi, dq), _ptr(ffi, dk), _ptr(ffi, dv),
                                _ptr(ffi, pairs), B, T, NH, NKV, HD)
    return dqkv


# ---- head layouts: (B, NH, T, HD) <-> (B, T, NH * HD) --------------------------------------

def merge_heads(inp):
    """out (B, T, NH * HD) of inp (B, NH, T, HD). NumPy twin: nn/attention.py merge_heads."""
    _check("inp", inp, ndim=4)
    B, NH, T, HD = inp.shape
    ffi, lib = c_lib()
    out = np.empty((B, T, NH * HD), np.float32)                         # (B, T, NH*HD)
    lib.merge_heads(_ptr(ffi, out, True), _ptr(ffi, inp), B, NH, T, HD)
    return out


def split_heads(inp, n_head):
    """out (B, NH, T, HD) of inp (B, T, NH * HD). NumPy twin: nn/attention.py split_heads."""
    _check("inp", inp, ndim=3)
    B, T, D = inp.shape
    if n_head < 1 or D % n_head:
        raise ValueError(f"width {D} must be a multiple of n_head = {n_head}")
    ffi, lib = c_lib()
    out = np.empty((B, n_head, T, D // n_head), np.float32)             # (B, NH, T, HD)
    lib.split_heads(_ptr(ffi, out, True), _ptr(ffi, inp), B, n_head, T, D // n_head)
    return out


# ---- softmax cross-entropy, in place ---------------------------------------------------

def cross_entropy_forward(logits, targets, coef):
    """losses (N,) = logsumexp(logits_n) - logits_n[targets_n]; IN PLACE, logits (N, V)
    become (softmax - onehot(targets)) * coef (N,). targets may be anything where coef is 0;
    elsewhere they must be in 0..V-1. NumPy twin: nn/layers.py cross_entropy_forward."""
    _check("logits", logits, ndim=2)
    N, V = logits.shape
    _check("coef", coef, (N,))
    targets = _int32("targets", np.where(coef != 0, targets, 0), (N,), V)
    if not logits.flags.writeable:
        raise ValueError("logits must be writable (cross_entropy_forward works in place)")
    ffi, lib = c_lib()
    losses = np.empty(N, np.float32)                                    # (N,)
    lib.cross_entropy_forward(_ptr(ffi, losses, True), _ptr(ffi, logits, True), _ptr(ffi, targets),
                              _ptr(ffi, coef), N, V)
    return losses


# ---- embedding backward ----------------------------------------------------------------

def embedding_backward(dweight, dout, idx):
    """dweight (V, C) += dout (N, C) into rows idx (N,), in position order; returns dweight.
    NumPy twin: nn/layers.py embedding_backward."""
    _check("dweight", dweight, ndim=2)
    V, C = dweight.shape
    _check("dout", dout, ndim=2)
    N = dout.shape[0]
    if dout.shape != (N, C):
        raise ValueError(f"dout must be (N, {C}), got {dout.shape}")
    idx = _int32("idx", idx, (N,), V)
    _check_output("dweight", dweight, (V, C), dout)
    ffi, lib = c_lib()
    lib.embedding_backward(_ptr(ffi, dweight, True), _ptr(ffi, dout), _ptr(ffi, idx), N, C)
    return dweight
