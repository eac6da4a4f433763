"""The optimizer's C kernels (csrc/optim.c) and the NumPy twin of each: one AdamW step in
place on the flat buffers (adamw_update), copying or adding a gradient into the flat buffer
while summing its squares (grad_store), and the sum of squares alone (sum_squares).

    adamw_update(p, m, v, g, n_decay, coefs)       # C on float32 C-contiguous arrays, else NumPy
    adamw_update_ref(p, m, v, g, n_decay, coefs)   # NumPy, always: the readable definition

nn/optim.py keeps every parameter in one flat buffer and calls these on it. adamw_update
and its twin agree bit for bit (the same float32 operations in the same order); the sums
of squares agree to rounding (C adds in double, the twin in float32 per chunk).

    python -m pytest tests/nn/kernels/test_optim.py

Read next: minillm/nn/layers.py, the layers these kernels serve.

Shapes: P values of a flat buffer, of which the first n_decay get weight decay.
"""
import math
from dataclasses import dataclass

import numpy as np

from minillm.clib import _check_output, _ptr
from minillm.nn.kernels import c_lib, check_shape

CHUNK = 65536          # floats per NumPy ufunc call: 256 KB per array, cache-resident


@dataclass(frozen=True)
class AdamWCoefs:
    """The per-step constants of the update (see AdamW._update for how they are derived):
        m = b1 m + g1 g;  v = b2 v + g2 g^2;  p = p * decay - step_size * m / (sqrt(v) + eps_hat)
    """
    b1: float
    b2: float
    g1: float
    g2: float
    eps_hat: float
    step_size: float
    decay: float


# ---- the AdamW update ------------------------------------------------------------------

def adamw_update_ref(p, m, v, g, n_decay, c):
    """p, m, v (P,) updated in place from g (P,); values [0, n_decay) also decay.

    CHUNK values at a time, with 13 in-place ufunc calls (`out=`, no temporaries) per
    chunk, so that each chunk's p, g, m, v stay in cache across the calls (rather than 13
    passes over the whole buffer).
    """
    tmp = np.empty(min(CHUNK, p.size), p.dtype)                         # (CHUNK,)
    for s in range(0, p.size, CHUNK):
        e = min(s + CHUNK, p.size)
        t = tmp[:e - s]
        ps, gs, ms, vs = p[s:e], g[s:e], m[s:e], v[s:e]
        if s < n_decay and c.decay != 1.0:
            ps[:n_decay - s] *= c.decay                 # decoupled weight decay
        ms *= c.b1
        np.multiply(gs, c.g1, out=t)
        ms += t                                         # m = b1 m + (1-b1) g
        np.multiply(gs, gs, out=t)
        t *= c.g2
        vs *= c.b2
        vs += t                                         # v = b2 v + (1-b2) g^2
        np.sqrt(vs, out=t)
        t += c.eps_hat
        np.divide(ms, t, out=t)
        t *= c.step_size
        ps -= t                                         # p -= step * m / (sqrt(v) + eps)


def adamw_update(p, m, v, g, n_decay, c):
    """adamw_update_ref in one pass over memory (csrc/optim.c), OpenMP over blocks."""
    check_shape("g", g, ndim=1)
    for name, a in zip("pmv", (p, m, v)):
        check_shape(name, a, g.shape)
    if not 0 <= n_decay <= g.size:
        raise ValueError(f"n_decay must be in 0..{g.size}, got {n_decay}")
    ffi, lib = c_lib(p, m, v, g)
    if lib is None:
        return adamw_update_ref(p, m, v, g, n_decay, c)
    arrays = [p, m, v, g]
    for i, name in enumerate("pmv"):
        _check_output(name, arrays[i], g.shape, *(arrays[:i] + arrays[i + 1:]))
    lib.adamw_update(_ptr(ffi, p, True), _ptr(ffi, m, True), _ptr(ffi, v, True), _ptr(ffi, g),
                     g.size, int(n_decay), c.b1, c.b2, c.g1, c.g2, c.eps_hat, c.step_size,
                     c.decay)


# ---- the gradient: sum of squares, copy / accumulate -----------------------------------

def sum_squares_ref(x):
    """Sum of x^2 (any shape): float32 dot products of CHUNK values, added in float64."""
    flat = x.reshape(-1)                                                # (P,)
    with np.errstate(over="ignore"):        # an overflow gives inf: the step is skipped
        return math.fsum(float(np.dot(flat[s:s + CHUNK], flat[s:s + CHUNK]))
                         for s in range(0, flat.size, CHUNK))


def sum_squares(x):
    """Sum of x^2 (any shape, float32) in double, independent of the thread count."""
    check_shape("x", x)
    ffi, lib = c_lib(x)
    if lib is None:
        return sum_squares_ref(x)
    return lib.sum_squares(_ptr(ffi, x), x.size)


def grad_store_ref(dst, src, accumulate):
    """dst = src (accumulate False) or dst += src, in place; returns sum_squares_ref(dst)."""
    if accumulate:
        dst += src
    else:
        np.copyto(dst, src)
    return sum_squares_ref(dst)


def grad_store(dst, src, accumulate):
    """grad_store_ref in one pass (csrc/optim.c); returns what sum_squares(dst) would."""
    check_shape("src", src)
    check_shape("dst", dst, src.shape)
    ffi, lib = c_lib(dst, src)
    if lib is None:
        return grad_store_ref(dst, src, accumulate)
    _check_output("dst", dst, src.shape, src)
    return lib.grad_store(_ptr(ffi, dst, True), _ptr(ffi, src), src.size, int(bool(accumulate)))
