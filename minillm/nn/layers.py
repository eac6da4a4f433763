"""The transformer's layers, each a forward/backward pair: embedding, linear, RMSNorm, RoPE
frequencies, SwiGLU and the cross-entropy loss (fused with the LM head, chunk by chunk).

    out, cache = rmsnorm_forward(x, w)       # cache holds only what backward needs
    dx, dw = rmsnorm_backward(dout, cache)   # grads in the order of forward's inputs

Each layer's math is its NumPy lines, read top to bottom; above them the same step runs as
one C call when kernels.fast(...) says so (the library is loaded and the arrays are float32
and C-contiguous). Any other dtype takes the NumPy lines, so float64 arrays check every
backward against central finite differences:

    python -m pytest tests/nn/test_layers.py

Read next: nn/attention.py, the attention sublayer built from these.

Shapes: B batch, T time, C channels, N = B*T rows, V vocab, H SwiGLU hidden size,
HD head dim, OC output channels.
"""
import numpy as np

from minillm.nn import kernels as K
from minillm.nn.kernels import layers as KL
from minillm.nn.kernels import matmul as KM


def _rows(x):
    """x (..., C) as contiguous rows (N, C): a view when x is contiguous already."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])             # (N, C)


# ---- token embedding: a table lookup ----------------------------------------------------

def embedding_forward(idx, weight):
    """out (B, T, C) = weight (V, C)[idx (B, T)]."""
    out = weight[idx]                                                   # (B, T, C)
    return out, (idx, weight.shape)


def embedding_backward(dout, cache, dweight=None):
    """dweight (V, C): each row sums the gradients of the positions that looked it up.

    Adds into `dweight` when given (a tied LM head passes its own gradient here). Repeated
    ids add in position order, so the result is deterministic.
    """
    idx, (V, C) = cache
    if dweight is None:
        dweight = np.zeros((V, C), dtype=dout.dtype)                    # (V, C)
    rows, ids = _rows(dout), idx.reshape(-1)                            # (N, C), (N,)
    if K.fast(dweight, rows):
        return KL.embedding_backward(dweight, rows, ids)                # csrc/layers.c
    # out[n] = weight[ids[n]]  ->  dweight[ids[n]] += dout[n], repeats added one by one
    np.add.at(dweight, ids, rows)
    return dweight


# ---- linear: y = x W^T ------------------------------------------------------------------

def linear_forward(x, w, out=None):
    """y (..., OC) = x (..., C) @ w (OC, C)^T, written into `out` when given."""
    if K.fast(x, w, out):
        y = KM.matmul_forward(x, w, out)                                # csrc/matmul.c
    elif out is None:
        y = x @ w.T                                                     # (..., OC)
    else:
        y = np.matmul(x, w.T, out=out)                                  # (..., OC)
    return y, (x, w)


def linear_backward(dy, cache, dw=None, dx=None):
    """dx (..., C) = dy @ w, dw (OC, C) = dy^T @ x (over all rows) of y = x w^T.

    dw accumulates (+=) into `dw` when given; dx is written into `dx` when given.
    """
    x, w = cache
    if K.fast(dy, x, w, dw, dx):
        dx = KM.matmul_backward_input(dy, w, dx)                        # csrc/matmul.c
        dw = KM.matmul_backward_weight(dy, x, dw)
        return dx, dw
    OC, C = w.shape
    # y = x w^T: each y[n, o] = sum_c x[n, c] w[o, c], so dx[n] = sum_o dy[n, o] w[o] and
    # dw[o] = sum_n dy[n, o] x[n], summed over every row n of the batch
    dx = dy @ w if dx is None else np.matmul(dy, w, out=dx)             # (..., C)
    dw_rows = dy.reshape(-1, OC).T @ x.reshape(-1, C)                   # (OC, C)
    if dw is None:
        dw = dw_rows
    else:
        dw += dw_rows
    return dx, dw


# ---- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w ------------------------------------------

def rmsnorm_forward(x, w, eps=1e-5):
    """y (..., C) = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps) over the last axis."""
    x2 = _rows(x)                                                       # (N, C)
    if K.fast(x2, w):
        y, rstd = KL.rmsnorm_forward(x2, w, eps)                        # csrc/layers.c
    else:
        rstd = 1.0 / np.sqrt((x2 * x2).mean(axis=1) + eps)              # (N,)
        y = x2 * rstd[:, None] * w                                      # (N, C)
    return y.reshape(x.shape), (x2, w, rstd)


def rmsnorm_backward(dy, cache):
    """dx (..., C), dw (C,) of y = x * rstd * w."""
    x2, w, rstd = cache
    dy2 = _rows(dy)                                                     # (N, C)
    if K.fast(dy2, x2, w, rstd):
        dx, dw = KL.rmsnorm_backward(dy2, x2, w, rstd)                  # csrc/layers.c
        return dx.reshape(dy.shape), dw
    # exercise: rmsnorm_backward
    C = x2.shape[1]
    # y = x * rstd * w: dw sums dy * x * rstd over the rows
    dw = (dy2 * x2 * rstd[:, None]).sum(axis=0)                         # (C,)
    # rstd = (mean(x^2) + eps)^(-1/2) depends on x too, d rstd / dx_c = -rstd^3 x_c / C:
    #   dx = rstd * dy * w - x * rstd^3 * s / C   with s = sum_c dy_c w_c x_c per row
    s = (dy2 * w * x2).sum(axis=1)                                      # (N,)
    dx = rstd[:, None] * dy2 * w - x2 * (rstd ** 3 * s / C)[:, None]    # (N, C)
    return dx.reshape(dy.shape), dw
    # end exercise


# ---- RoPE, interleaved layout: pairs (x[2i], x[2i+1]) rotate by pos * theta^(-2i/HD) ----

def rope_frequencies(T, HD, theta=10000.0, pos0=0, dtype=np.float32):
    """freqs (T, HD/2) complex: e^(i * pos * theta^(-2i/HD)) for pos = pos0 .. pos0+T-1.

    dtype is the real dtype of the arrays to rotate (float32 -> complex64). The angles are
    computed in float64 and rounded once. A pair (x[2i], x[2i+1]) read as the complex number
    x[2i] + i x[2i+1], times freqs[t, i], is rotated by its angle:
        (x[2i] cos - x[2i+1] sin,  x[2i] sin + x[2i+1] cos)
    nn/attention.py's split_qkv applies it to q and k.
    """
    # exercise: rope
    inv_freq = theta ** (-np.arange(0, HD, 2, dtype=np.float64) / HD)   # (HD/2,)
    angles = np.outer(np.arange(pos0, pos0 + T, dtype=np.float64), inv_freq)  # (T, HD/2)
    return np.exp(1j * angles).astype(np.result_type(dtype, np.complex64))  # (T, HD/2)
    # end exercise


# ---- SwiGLU: a = silu(g) * u, with g and u side by side in one array ---------------------

def _sigmoid(g):
    """1 / (1 + e^-g) from e = e^-|g| <= 1, so nothing overflows and nothing cancels:
    1 / (1 + e) where g >= 0, e / (1 + e) where g < 0."""
    with np.errstate(under="ignore"):                                   # e^-|g| -> 0 is right
        e = np.exp(-np.abs(g))                                          # (N, H)
    return np.where(g >= 0, 1.0, e) / (1.0 + e)                         # (N, H)


def swiglu_forward(gu):
    """a (..., H) = silu(g) * u where gu (..., 2H) = [g | u] (the fused gate/up matmul).

    silu(g) = g * sigmoid(g). The cache is gu alone: backward recomputes the sigmoid,
    which is cheaper than storing and reloading an (N, H) array of it.
    """
    gu2 = _rows(gu)                                                     # (N, 2H)
    if K.fast(gu2):
        a = KL.swiglu_forward(gu2)                                      # csrc/layers.c
    else:
        H = gu2.shape[1] // 2
        g, u = gu2[:, :H], gu2[:, H:]                                   # (N, H) views
        a = g * _sigmoid(g) * u                                         # (N, H)
    return a.reshape(gu.shape[:-1] + (a.shape[1],)), (gu2, gu.shape)


def swiglu_backward(da, cache):
    """dgu (..., 2H) = [dg | du] of a = silu(g) * u."""
    gu2, shape = cache
    da2 = _rows(da)                                                     # (N, H)
    if K.fast(da2, gu2):
        return KL.swiglu_backward(da2, gu2).reshape(shape)              # csrc/layers.c
    H = gu2.shape[1] // 2
    g, u = gu2[:, :H], gu2[:, H:]                                       # (N, H) views
    sig = _sigmoid(g)                                                   # (N, H) recomputed
    # a = silu(g) * u  ->  du = da * silu(g),  dg = da * u * silu'(g), where
    # silu'(g) = sig + g * sig * (1 - sig) = sig * (1 + g (1 - sig))
    dg = da2 * u * (sig * (1.0 + g * (1.0 - sig)))                      # (N, H)
    du = da2 * g * sig                                                  # (N, H)
    return np.concatenate((dg, du), axis=1).reshape(shape)              # (..., 2H)


# ---- cross-entropy, in place on the logits -----------------------------------------------

def token_weights(targets, loss_mask=None, dtype=np.float32):
    """w (N,): how much each position's loss counts: 0 where targets == -1, else loss_mask
    (1 when there is no mask). Raises ValueError on targets below -1."""
    targets = np.asarray(targets).reshape(-1)
    if targets.size and targets.min() < -1:
        raise ValueError(f"targets must be token ids or -1 (ignored), got {targets.min()}")
    w = (targets >= 0).astype(dtype)                                    # (N,)
    if loss_mask is not None:
        w *= np.asarray(loss_mask, dtype=dtype).reshape(-1)
    return w


def cross_entropy_forward(logits, targets, loss_mask=None, normalizer=None):
    """loss = sum_n w_n * (logsumexp(logits_n) - logits_n[targets_n]) / normalizer.

    logits (N, V); targets (N,) ints, -1 = ignored; loss_mask (N,) weights positions
    (0 = ignored); w = token_weights(targets, loss_mask). normalizer defaults to sum(w): the
    weighted mean over counted tokens (0.0 when nothing counts). A caller that splits a batch
    into chunks passes the whole batch's sum(w) so the chunks' losses add up.

    IN PLACE: `logits` is overwritten with dloss/dlogits = (softmax - onehot) * w / normalizer,
    and the cache holds that same buffer; cross_entropy_backward returns it. Nothing of size
    (N, V) is allocated. The caller must not read `logits` after this call.
    """
    N, V = logits.shape
    targets = np.asarray(targets).reshape(-1)
    w = token_weights(targets, loss_mask, logits.dtype)                 # (N,)
    if normalizer is None:
        normalizer = w.sum()
    if normalizer == 0:
        logits[...] = 0.0
        return 0.0, (logits,)
    coef = w / logits.dtype.type(normalizer)                            # (N,) dloss/dnll
    if K.fast(logits, coef):
        nll = KL.cross_entropy_forward(logits, targets, coef)           # csrc/layers.c, in place
    else:
        # nll_n = logsumexp(z_n) - z_n[t_n] with z = logits - the row's max (so e^z <= 1);
        # dnll_n/dz_n = softmax(z_n) - onehot(t_n), written over the logits times coef_n
        rows, counted = np.arange(N), coef != 0                         # (N,), (N,)
        t = np.where(counted, targets, 0)                               # (N,) any valid id if not
        with np.errstate(over="ignore", under="ignore"):                # -> -inf, e^-inf = 0: right
            logits -= logits.max(axis=1, keepdims=True)                 # (N, V) z
            z_t = logits[rows, t]                                       # (N,) the targets' z
            np.exp(logits, out=logits)                                  # (N, V) e^z
        s = logits.sum(axis=1)                                          # (N,) logsumexp = log(s)
        logits *= (coef / s)[:, None]                                   # softmax * coef
        logits[rows, t] -= coef                                         # - onehot * coef
        nll = np.where(counted, np.log(s) - z_t, 0.0).astype(logits.dtype)  # (N,)
    loss = float(np.dot(w.astype(np.float64), nll.astype(np.float64))) / float(normalizer)
    return loss, (logits,)


def cross_entropy_backward(dloss, cache):
    """dlogits (N, V): the forward's logits buffer, already holding dloss/dlogits (times dloss)."""
    (dlogits,) = cache
    if dloss != 1.0:
        dlogits *= dloss
    return dlogits


# ---- the LM head fused with the loss, in chunks of rows -----------------------------------

CHUNK_ELEMENTS = 1 << 21   # logits values per chunk (8 MB in float32)


def lm_head_loss_forward(x, w, targets, loss_mask=None, grad=True, chunk_rows=None):
    """loss of logits = x (N, C) @ w (V, C)^T against targets (N,), chunk by chunk of rows.

    The (N, V) logits never exist at once: each chunk's logits go into one reused
    (rows, V) buffer, cross_entropy_forward turns them into dlogits in place, and (when
    grad) the head's backward runs on them right away: dx[rows] = dlogits @ w and
    dw += dlogits^T @ x[rows]. So the forward does the head's backward work, and
    lm_head_loss_backward only returns it (times dloss). cache = (dx, dw), or None
    when grad is False (evaluation: the loss only).
    """
    N, C = x.shape
    V = w.shape[0]
    targets = np.asarray(targets).reshape(-1)
    mask = None if loss_mask is None else np.asarray(loss_mask).reshape(-1)
    normalizer = token_weights(targets, mask, x.dtype).sum()
    rows = chunk_rows or max(1, min(N, CHUNK_ELEMENTS // V))
    buf = np.empty((min(rows, N), V), dtype=x.dtype)                    # (rows, V)
    dx = np.empty_like(x) if grad else None                             # (N, C)
    dw = np.zeros_like(w) if grad else None                             # (V, C)
    loss = 0.0
    for n0 in range(0, N, rows):
        n1 = min(n0 + rows, N)
        logits, head_cache = linear_forward(x[n0:n1], w, out=buf[:n1 - n0])  # (rows, V)
        chunk_loss, ce_cache = cross_entropy_forward(
            logits, targets[n0:n1], None if mask is None else mask[n0:n1], normalizer)
        loss += chunk_loss
        if grad:
            dlogits = cross_entropy_backward(1.0, ce_cache)             # (rows, V), in place
            linear_backward(dlogits, head_cache, dw, dx[n0:n1])
    return loss, (None if not grad else (dx, dw))


def lm_head_loss_backward(dloss, cache):
    """dx (N, C), dw (V, C) of lm_head_loss_forward (computed there; scaled by dloss here)."""
    dx, dw = cache
    if dloss != 1.0:
        dx *= dloss
        dw *= dloss
    return dx, dw
