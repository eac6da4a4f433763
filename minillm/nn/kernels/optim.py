"""The optimizer's kernels (csrc/optim.c): one AdamW step in place on the flat buffers
(adamw_update), copying or adding a gradient into the flat buffer while summing its squares
(grad_store), and the sum of squares alone (sum_squares).

    adamw_update(p, m, v, g, n_decay, coefs)     # float32, C-contiguous, the library loaded

Their NumPy twins are the functions of the same names in nn/optim.py, which call these when
the optimizer runs in C. adamw_update and its twin agree bit for bit (the same float32
operations in the same order); the sums of squares agree to rounding (C adds in double, in
blocks and lanes fixed by the size alone, so the result depends neither on the thread count
nor on where the array sits in memory).

    python -m pytest tests/nn/kernels/test_optim.py

Read next: decode.py, or minillm/nn/layers.py, the layers these kernels serve.

Shapes: P values of a flat buffer, of which the first n_decay get weight decay.
"""
from minillm.clib import _check, _check_output, _ptr
from minillm.nn.kernels import c_lib


def adamw_update(p, m, v, g, n_decay, c):
    """p, m, v (P,) updated in place from g (P,), values [0, n_decay) decayed; c holds the
    step's constants (nn/optim.py AdamWCoefs). NumPy twin: nn/optim.py adamw_update."""
    _check("g", g, ndim=1)
    if not 0 <= n_decay <= g.size:
        raise ValueError(f"n_decay must be in 0..{g.size}, got {n_decay}")
    arrays = [p, m, v, g]
    for i, name in enumerate("pmv"):
        _check_output(name, arrays[i], g.shape, *(arrays[:i] + arrays[i + 1:]))
    ffi, lib = c_lib()
    lib.adamw_update(_ptr(ffi, p, True), _ptr(ffi, m, True), _ptr(ffi, v, True), _ptr(ffi, g),
                     g.size, int(n_decay), c.b1, c.b2, c.g1, c.g2, c.eps_hat, c.step_size,
                     c.decay)


def sum_squares(x):
    """Sum of x^2 (any shape) in double. NumPy twin: nn/optim.py sum_squares."""
    _check("x", x)
    ffi, lib = c_lib()
    return lib.sum_squares(_ptr(ffi, x), x.size)


def grad_store(dst, src, accumulate):
    """dst = src (accumulate False) or dst += src, in one pass; returns what sum_squares(dst)
    would. NumPy twin: nn/optim.py grad_store."""
    _check("src", src)
    _check_output("dst", dst, src.shape, src)
    ffi, lib = c_lib()
    return lib.grad_store(_ptr(ffi, dst, True), _ptr(ffi, src), src.size, int(bool(accumulate)))
