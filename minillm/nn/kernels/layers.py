"""The C kernels of the elementwise layers (csrc/layers.c) and the NumPy twin of each:
RMSNorm, SwiGLU, RoPE fused with the split into heads, the head layouts, the softmax
cross-entropy and the embedding's backward.

    out, rstd = rmsnorm_forward(x, w, eps)       # C on float32 C-contiguous arrays, else NumPy
    out, rstd = rmsnorm_forward_ref(x, w, eps)   # NumPy, always: the readable definition

The wrappers return new arrays, except cross_entropy_forward (in place on the logits, as
its layer promises) and embedding_backward (adds into the given table). nn/layers.py and
nn/attention.py call them; float64 arrays run the twins, which is how those layers'
backward passes are checked against finite differences.

    python -m pytest tests/nn/kernels/test_layers.py

Read next: optim.py.

Shapes: N rows (tokens), C channels, H SwiGLU hidden size, V vocab; B batch, T time,
NH query heads, NKV key/value heads, HD head dim, D = (NH + 2 NKV) * HD.
"""
import numpy as np

from minillm.clib import _check_output, _ptr
from minillm.nn.kernels import c_lib, check_shape


def _int32(name, a, shape, high):
    """a as a C-contiguous int32 array of `shape` with values in 0..high-1 (ValueError otherwise)."""
    a = np.asarray(a)
    if a.shape != tuple(shape) or a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers of shape {tuple(shape)}, got {a.dtype} {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= high):
        raise ValueError(f"{name} must be in 0..{high - 1}, got {a.min()}..{a.max()}")
    return np.ascontiguousarray(a, dtype=np.int32)


# ---- RMSNorm ---------------------------------------------------------------------------

def rmsnorm_forward_ref(inp, weight, eps):
    """out (N, C) = inp * rstd * weight (C,), rstd (N,) = 1 / sqrt(mean(inp^2) + eps)."""
    rstd = 1.0 / np.sqrt((inp * inp).mean(axis=1) + eps)                # (N,)
    return inp * rstd[:, None] * weight, rstd                           # (N, C), (N,)


def rmsnorm_forward(inp, weight, eps):
    """out (N, C), rstd (N,) of RMSNorm over the rows of inp (N, C): see rmsnorm_forward_ref."""
    check_shape("inp", inp, ndim=2)
    N, C = inp.shape
    check_shape("weight", weight, (C,))
    ffi, lib = c_lib(inp, weight)
    if lib is None:
        return rmsnorm_forward_ref(inp, weight, eps)
    out = np.empty((N, C), np.float32)                                  # (N, C)
    rstd = np.empty(N, np.float32)                                      # (N,)
    lib.rmsnorm_forward(_ptr(ffi, out, True), _ptr(ffi, rstd, True), _ptr(ffi, inp),
                        _ptr(ffi, weight), N, C, float(eps))
    return out, rstd


def rmsnorm_backward_ref(dout, inp, weight, rstd):
    """dinp (N, C), dweight (C,) of out = inp * rstd * weight.

    With s = sum_c dout_c weight_c inp_c per row (rstd depends on inp: the second term):
        dinp = rstd * dout * weight - inp * rstd^3 * s / C,   dweight = colsum(dout * inp * rstd)
    """
    C = inp.shape[1]
    s = (dout * weight * inp).sum(axis=1)                               # (N,)
    dinp = rstd[:, None] * dout * weight - inp * (rstd ** 3 * s / C)[:, None]  # (N, C)
    dweight = (dout * inp * rstd[:, None]).sum(axis=0)                  # (C,)
    return dinp, dweight


def rmsnorm_backward(dout, inp, weight, rstd):
    """dinp (N, C), dweight (C,) (both new) of rmsnorm_forward: see rmsnorm_backward_ref."""
    check_shape("inp", inp, ndim=2)
    N, C = inp.shape
    check_shape("dout", dout, (N, C))
    check_shape("weight", weight, (C,))
    check_shape("rstd", rstd, (N,))
    ffi, lib = c_lib(dout, inp, weight, rstd)
    if lib is None:
        return rmsnorm_backward_ref(dout, inp, weight, rstd)
    dinp = np.empty((N, C), np.float32)                                 # (N, C)
    dweight = np.empty(C, np.float32)                                   # (C,)
    if lib.rmsnorm_backward(_ptr(ffi, dinp, True), _ptr(ffi, dweight, True), _ptr(ffi, dout),
                            _ptr(ffi, inp), _ptr(ffi, weight), _ptr(ffi, rstd), N, C):
        raise MemoryError(f"rmsnorm_backward: no memory for the dweight partial sums ({N} x {C})")
    return dinp, dweight


# ---- SwiGLU ----------------------------------------------------------------------------

def _sigmoid(g):
    """1 / (1 + e^-g) from e = e^-|g| <= 1, so nothing overflows and nothing cancels:
    1 / (1 + e) where g >= 0, e / (1 + e) where g < 0."""
    with np.errstate(under="ignore"):                                   # e^-|g| -> 0 is right
        e = np.exp(-np.abs(g))                                          # (N, H)
    return np.where(g >= 0, 1.0, e) / (1.0 + e)                         # (N, H)


def swiglu_forward_ref(gu):
    """out (N, H) = silu(g) * u, where gu (N, 2H) = [g | u] and silu(g) = g * sigmoid(g)."""
    H = gu.shape[1] // 2
    g, u = gu[:, :H], gu[:, H:]                                         # (N, H) views
    return g * _sigmoid(g) * u                                          # (N, H)


def swiglu_forward(gu):
    """out (N, H) = silu(g) * u of gu (N, 2H) = [g | u]."""
    check_shape("gu", gu, ndim=2)
    N, H2 = gu.shape
    if H2 % 2:
        raise ValueError(f"gu must be (N, 2H) = [gate | up], got an odd width {H2}")
    ffi, lib = c_lib(gu)
    if lib is None:
        return swiglu_forward_ref(gu)
    out = np.empty((N, H2 // 2), np.float32)                            # (N, H)
    lib.swiglu_forward(_ptr(ffi, out, True), _ptr(ffi, gu), N, H2 // 2)
    return out


def swiglu_backward_ref(dout, gu):
    """dgu (N, 2H) = [dg | du] of out = silu(g) * u, the sigmoid recomputed from g:

        du = dout * silu(g),   dg = dout * u * silu'(g),   silu'(g) = sig * (1 + g (1 - sig))
    """
    H = gu.shape[1] // 2
    g, u = gu[:, :H], gu[:, H:]                                         # (N, H) views
    sig = _sigmoid(g)                                                   # (N, H)
    dg = dout * u * (sig * (1.0 + g * (1.0 - sig)))                     # (N, H)
    du = dout * g * sig                                                 # (N, H)
    return np.concatenate((dg, du), axis=1)                             # (N, 2H)


def swiglu_backward(dout, gu):
    """dgu (N, 2H) of swiglu_forward from dout (N, H) and its input gu (N, 2H)."""
    check_shape("gu", gu, ndim=2)
    N, H2 = gu.shape
    if H2 % 2:
        raise ValueError(f"gu must be (N, 2H) = [gate | up], got an odd width {H2}")
    check_shape("dout", dout, (N, H2 // 2))
    ffi, lib = c_lib(dout, gu)
    if lib is None:
        return swiglu_backward_ref(dout, gu)
    dgu = np.empty((N, H2), np.float32)                                 # (N, 2H)
    lib.swiglu_backward(_ptr(ffi, dgu, True), _ptr(ffi, dout), _ptr(ffi, gu), N, H2 // 2)
    return dgu


# ---- RoPE fused with the attention layouts ---------------------------------------------

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
    out = np.empty(x.shape, x.dtype)                                    # (..., T, HD)
    np.multiply(x.view(freqs.dtype), freqs, out=out.view(freqs.dtype))
    return out


def _freqs_checked(freqs, T, HD, dtype):
    complex_dtype = np.result_type(dtype, np.complex64)
    if freqs.shape != (T, HD // 2) or freqs.dtype.kind != "c":
        raise ValueError(f"freqs must be complex (T, HD/2) = ({T}, {HD // 2}), got {freqs.dtype} {freqs.shape}")
    return np.ascontiguousarray(freqs, dtype=complex_dtype)


def rope_split_qkv_ref(qkv, n_head, n_kv_head, freqs):
    """qkv (B, T, D) -> q (B, NH, T, HD), k, v (B, NKV, T, HD), contiguous; q and k rotated
    by freqs (T, HD/2) complex (layers.rope_frequencies)."""
    q, k, v = _head_views(qkv, n_head, n_kv_head)
    freqs = _freqs_checked(freqs, qkv.shape[1], q.shape[-1], qkv.dtype)
    return _rotated(q, freqs), _rotated(k, freqs), np.ascontiguousarray(v)


def _qkv_shape(qkv_shape, n_head, n_kv_head):
    B, T, D = qkv_shape
    heads = n_head + 2 * n_kv_head
    if n_head < 1 or n_kv_head < 1 or n_head % n_kv_head or D % heads or (D // heads) % 2:
        raise ValueError(f"qkv width {D} must be (NH + 2 NKV) * HD with NH = {n_head} a multiple "
                         f"of NKV = {n_kv_head} and HD even")
    return B, T, D // heads


def rope_split_qkv(qkv, n_head, n_kv_head, freqs):
    """q (B, NH, T, HD), k, v (B, NKV, T, HD) of qkv (B, T, D), q and k rotated: one pass."""
    check_shape("qkv", qkv, ndim=3)
    B, T, HD = _qkv_shape(qkv.shape, n_head, n_kv_head)
    ffi, lib = c_lib(qkv)
    if lib is None:
        return rope_split_qkv_ref(qkv, n_head, n_kv_head, freqs)
    freqs = _freqs_checked(freqs, T, HD, np.float32)
    q = np.empty((B, n_head, T, HD), np.float32)                        # (B, NH, T, HD)
    k = np.empty((B, n_kv_head, T, HD), np.float32)                     # (B, NKV, T, HD)
    v = np.empty((B, n_kv_head, T, HD), np.float32)                     # (B, NKV, T, HD)
    lib.rope_split_qkv(_ptr(ffi, q, True), _ptr(ffi, k, True), _ptr(ffi, v, True),
                       _ptr(ffi, qkv), _ptr(ffi, freqs.view(np.float32)),
                       B, T, n_head, n_kv_head, HD)
    return q, k, v


def rope_split_qkv_backward_ref(dq, dk, dv, freqs):
    """dqkv (B, T, D) of rope_split_qkv: dq and dk rotated back (by conj(freqs)), then all
    three put back in the rows of the projection."""
    B, NH, T, HD = dq.shape
    NKV = dk.shape[1]
    dqkv = np.empty((B, T, (NH + 2 * NKV) * HD), dq.dtype)              # (B, T, D)
    q, k, v = _head_views(dqkv, NH, NKV)
    freqs = _freqs_checked(freqs, T, HD, dq.dtype).conj()
    q[...] = _rotated(dq, freqs)
    k[...] = _rotated(dk, freqs)
    v[...] = dv
    return dqkv


def rope_split_qkv_backward(dq, dk, dv, freqs):
    """dqkv (B, T, D) of rope_split_qkv: one pass."""
    check_shape("dq", dq, ndim=4)
    check_shape("dk", dk, ndim=4)
    B, NH, T, HD = dq.shape
    NKV = dk.shape[1]
    check_shape("dk", dk, (B, NKV, T, HD))
    check_shape("dv", dv, (B, NKV, T, HD))
    _qkv_shape((B, T, (NH + 2 * NKV) * HD), NH, NKV)
    ffi, lib = c_lib(dq, dk, dv)
    if lib is None:
        return rope_split_qkv_backward_ref(dq, dk, dv, freqs)
    freqs = _freqs_checked(freqs, T, HD, np.float32)
    dqkv = np.empty((B, T, (NH + 2 * NKV) * HD), np.float32)            # (B, T, D)
    lib.rope_split_qkv_backward(_ptr(ffi, dqkv, True), _ptr(ffi, dq), _ptr(ffi, dk), _ptr(ffi, dv),
                                _ptr(ffi, freqs.view(np.float32)), B, T, NH, NKV, HD)
    return dqkv


# ---- head layouts: (B, NH, T, HD) <-> (B, T, NH * HD) --------------------------------------

def merge_heads_ref(inp):
    """out (B, T, NH * HD) = inp (B, NH, T, HD) with heads and time swapped."""
    B, NH, T, HD = inp.shape
    return inp.transpose(0, 2, 1, 3).reshape(B, T, NH * HD)             # (B, T, NH*HD) copy


def merge_heads(inp):
    """out (B, T, NH * HD) of inp (B, NH, T, HD)."""
    check_shape("inp", inp, ndim=4)
    B, NH, T, HD = inp.shape
    ffi, lib = c_lib(inp)
    if lib is None:
        return merge_heads_ref(inp)
    out = np.empty((B, T, NH * HD), np.float32)                         # (B, T, NH*HD)
    lib.merge_heads(_ptr(ffi, out, True), _ptr(ffi, inp), B, NH, T, HD)
    return out


def split_heads_ref(inp, n_head):
    """out (B, NH, T, HD) = inp (B, T, NH * HD) with time and heads swapped."""
    B, T, D = inp.shape
    return np.ascontiguousarray(inp.reshape(B, T, n_head, D // n_head).transpose(0, 2, 1, 3))


def split_heads(inp, n_head):
    """out (B, NH, T, HD) of inp (B, T, NH * HD)."""
    check_shape("inp", inp, ndim=3)
    B, T, D = inp.shape
    if n_head < 1 or D % n_head:
        raise ValueError(f"width {D} must be a multiple of n_head = {n_head}")
    ffi, lib = c_lib(inp)
    if lib is None:
        return split_heads_ref(inp, n_head)
    out = np.empty((B, n_head, T, D // n_head), np.float32)             # (B, NH, T, HD)
    lib.split_heads(_ptr(ffi, out, True), _ptr(ffi, inp), B, n_head, T, D // n_head)
    return out


# ---- softmax cross-entropy, in place ---------------------------------------------------

def cross_entropy_forward_ref(logits, targets, coef):
    """losses (N,) = logsumexp(logits_n) - logits_n[targets_n]; IN PLACE, logits (N, V)
    becomes (softmax(logits_n) - onehot(targets_n)) * coef_n. Rows with coef_n == 0 become
    0 with loss 0, whatever their target."""
    N, V = logits.shape
    rows, counted = np.arange(N), coef != 0                             # (N,), (N,)
    t = np.where(counted, targets, 0)                                   # (N,) any valid id if not
    with np.errstate(over="ignore", under="ignore"):                    # -> -inf, e^-inf = 0: right
        logits -= logits.max(axis=1, keepdims=True)                     # (N, V) minus each row's max
        z_t = logits[rows, t]                                           # (N,) the targets'
        np.exp(logits, out=logits)                                      # unnormalized softmax
    s = logits.sum(axis=1)                                              # (N,)
    logits *= (coef / s)[:, None]                                       # softmax * coef
    logits[rows, t] -= coef                                             # - onehot * coef
    return np.where(counted, np.log(s) - z_t, 0.0).astype(logits.dtype)  # (N,)


def cross_entropy_forward(logits, targets, coef):
    """losses (N,); logits (N, V) become dlogits IN PLACE (see cross_entropy_forward_ref).
    targets may be -1 (or anything) where coef is 0; elsewhere they must be in 0..V-1."""
    check_shape("logits", logits, ndim=2)
    N, V = logits.shape
    check_shape("coef", coef, (N,))
    targets = _int32("targets", np.where(coef != 0, targets, 0), (N,), V)
    if not logits.flags.writeable:
        raise ValueError("logits must be writable (cross_entropy_forward works in place)")
    ffi, lib = c_lib(logits, coef)
    if lib is None:
        return cross_entropy_forward_ref(logits, targets, coef)
    losses = np.empty(N, np.float32)                                    # (N,)
    lib.cross_entropy_forward(_ptr(ffi, losses, True), _ptr(ffi, logits, True), _ptr(ffi, targets),
                              _ptr(ffi, coef), N, V)
    return losses


# ---- embedding backward ----------------------------------------------------------------

def embedding_backward_ref(dweight, dout, idx):
    """dweight (V, C) += dout (N, C) added into rows idx (N,), repeated indices in order."""
    np.add.at(dweight, idx, dout)
    return dweight


def embedding_backward(dweight, dout, idx):
    """dweight (V, C) += dout (N, C) into rows idx (N,), in position order; returns dweight."""
    check_shape("dweight", dweight, ndim=2)
    V, C = dweight.shape
    check_shape("dout", dout, ndim=2)
    N = dout.shape[0]
    if dout.shape != (N, C):
        raise ValueError(f"dout must be (N, {C}), got {dout.shape}")
    idx = _int32("idx", idx, (N,), V)
    ffi, lib = c_lib(dweight, dout)
    if lib is None:
        return embedding_backward_ref(dweight, dout, idx)
    _check_output("dweight", dweight, (V, C), dout)
    lib.embedding_backward(_ptr(ffi, dweight, True), _ptr(ffi, dout), _ptr(ffi, idx), N, C)
    return dweight
