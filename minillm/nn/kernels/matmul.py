"""The matmul kernels (csrc/matmul.c): the three products of a linear layer y = x W^T with
weight W (OC, C), blocked for the cache, vectorised and split over OpenMP threads.

    out = matmul_forward(x, w)                   # float32, C-contiguous, the library loaded
    dx = matmul_backward_input(dy, w)
    dw = matmul_backward_weight(dy, x, dw)       # adds into dw

Their NumPy twins are the lines of nn/layers.py's linear_forward (x @ w.T) and
linear_backward (dy @ w, dy^T @ x), which call these when kernels.fast allows it. Each
wrapper checks shapes, dtypes, contiguity and that an output overlaps no input before any
pointer reaches C.

    python -m pytest tests/nn/kernels/test_matmul.py

Read next: attention.py.

Shapes: N rows (tokens), C input channels, OC output channels.
"""
import numpy as np

from minillm.clib import _check, _check_output, _ptr
from minillm.nn.kernels import c_lib


def _last_dim(name, a, size, weight):
    _check(name, a)
    if a.ndim < 1 or a.shape[-1] != size:
        raise ValueError(f"{name}'s last dimension must be {size} (weight is {weight.shape}), "
                         f"got {a.shape}")


def matmul_forward(inp, weight, out=None):
    """out (..., OC) = inp (..., C) @ weight (OC, C)^T, overwriting `out` if given.
    NumPy twin: nn/layers.py linear_forward."""
    _check("weight", weight, ndim=2)
    OC, C = weight.shape
    _last_dim("inp", inp, C, weight)
    shape = inp.shape[:-1] + (OC,)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    else:
        _check_output("out", out, shape, inp, weight)
    ffi, lib = c_lib()
    N = int(np.prod(inp.shape[:-1]))
    lib.matmul_forward(_ptr(ffi, out, True), _ptr(ffi, inp), _ptr(ffi, weight), N, C, OC)
    return out


def matmul_backward_input(dout, weight, dinp=None):
    """dinp (..., C) = dout (..., OC) @ weight (OC, C), overwriting `dinp` if given.
    NumPy twin: nn/layers.py linear_backward (dx)."""
    _check("weight", weight, ndim=2)
    OC, C = weight.shape
    _last_dim("dout", dout, OC, weight)
    shape = dout.shape[:-1] + (C,)
    if dinp is None:
        dinp = np.empty(shape, dtype=np.float32)
    else:
        _check_output("dinp", dinp, shape, dout, weight)
    ffi, lib = c_lib()
    N = int(np.prod(dout.shape[:-1]))
    lib.matmul_backward_input(_ptr(ffi, dinp, True), _ptr(ffi, dout), _ptr(ffi, weight), N, C, OC)
    return dinp


def matmul_backward_weight(dout, inp, dweight=None):
    """dweight (OC, C) += dout (..., OC)^T @ inp (..., C) over all rows; a new dweight if None.
    NumPy twin: nn/layers.py linear_backward (dw)."""
    _check("dout", dout)
    _check("inp", inp)
    if dout.ndim < 1 or inp.ndim < 1 or dout.shape[:-1] != inp.shape[:-1]:
        raise ValueError(f"dout {dout.shape} and inp {inp.shape} must agree in all but the "
                         "last dimension")
    OC, C = dout.shape[-1], inp.shape[-1]
    if dweight is None:
        dweight = np.zeros((OC, C), dtype=np.float32)
    else:
        _check_output("dweight", dweight, (OC, C), dout, inp)
    ffi, lib = c_lib()
    N = int(np.prod(dout.shape[:-1]))
    lib.matmul_backward_weight(_ptr(ffi, dweight, True), _ptr(ffi, dout), _ptr(ffi, inp), N, C, OC)
    return dweight
