"""The matmul kernels (csrc/matmul.c) and their NumPy twins: the three products of a linear
layer y = x W^T, weight W (OC, C).

    out = matmul_forward(x, w)        # C on float32 C-contiguous arrays, else the twin
    out = matmul_forward_ref(x, w)    # NumPy, always: the readable definition

Every wrapper follows the rule of minillm/nn/kernels/__init__.py: shapes checked first,
then C when `c_lib` allows it, else the `_ref` twin just above. nn/layers.py's linear layer
calls these three.

    python -m pytest tests/nn/kernels/test_matmul.py

Read next: attention.py.

Shapes: N rows (tokens), C input channels, OC output channels.
"""
import numpy as np

from minillm.clib import _check_output, _ptr
from minillm.nn.kernels import c_lib, check_shape


def matmul_forward_ref(inp, weight):
    """out (..., OC) = inp (..., C) @ weight (OC, C)^T."""
    return inp @ weight.T


def matmul_forward(inp, weight, out=None):
    """out (..., OC) = inp (..., C) @ weight (OC, C)^T, overwriting `out` if given."""
    check_shape("weight", weight, ndim=2)
    OC, C = weight.shape
    check_shape("inp", inp)
    if inp.ndim < 1 or inp.shape[-1] != C:
        raise ValueError(f"inp's last dimension must be {C} (weight is {weight.shape}), got {inp.shape}")
    shape = inp.shape[:-1] + (OC,)
    ffi, lib = c_lib(inp, weight, out)
    if lib is None:
        if out is None:
            return matmul_forward_ref(inp, weight)
        check_shape("out", out, shape)
        out[...] = matmul_forward_ref(inp, weight)
        return out
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    else:
        _check_output("out", out, shape, inp, weight)
    N = inp.size // C if C else int(np.prod(inp.shape[:-1]))
    lib.matmul_forward(_ptr(ffi, out, True), _ptr(ffi, inp), _ptr(ffi, weight), N, C, OC)
    return out


def matmul_backward_input_ref(dout, weight):
    """dinp (..., C) = dout (..., OC) @ weight (OC, C)."""
    return dout @ weight


def matmul_backward_input(dout, weight, dinp=None):
    """dinp (..., C) = dout (..., OC) @ weight (OC, C), overwriting `dinp` if given."""
    check_shape("weight", weight, ndim=2)
    OC, C = weight.shape
    check_shape("dout", dout)
    if dout.ndim < 1 or dout.shape[-1] != OC:
        raise ValueError(f"dout's last dimension must be {OC} (weight is {weight.shape}), got {dout.shape}")
    shape = dout.shape[:-1] + (C,)
    ffi, lib = c_lib(dout, weight, dinp)
    if lib is None:
        if dinp is None:
            return matmul_backward_input_ref(dout, weight)
        check_shape("dinp", dinp, shape)
        dinp[...] = matmul_backward_input_ref(dout, weight)
        return dinp
    if dinp is None:
        dinp = np.empty(shape, dtype=np.float32)
    else:
        _check_output("dinp", dinp, shape, dout, weight)
    N = int(np.prod(dout.shape[:-1]))
    lib.matmul_backward_input(_ptr(ffi, dinp, True), _ptr(ffi, dout), _ptr(ffi, weight), N, C, OC)
    return dinp


def matmul_backward_weight_ref(dout, inp):
    """dweight (OC, C) = dout (N, OC)^T @ inp (N, C), over all leading dims of dout, inp."""
    OC, C = dout.shape[-1], inp.shape[-1]
    return dout.reshape(-1, OC).T @ inp.reshape(-1, C)


def matmul_backward_weight(dout, inp, dweight=None):
    """dweight (OC, C) += dout (..., OC)^T @ inp (..., C); a new dweight if None."""
    check_shape("dout", dout)
    check_shape("inp", inp)
    if dout.ndim < 1 or inp.ndim < 1 or dout.shape[:-1] != inp.shape[:-1]:
        raise ValueError(f"dout {dout.shape} and inp {inp.shape} must agree in all but the last dimension")
    OC, C = dout.shape[-1], inp.shape[-1]
    ffi, lib = c_lib(dout, inp, dweight)
    if lib is None:
        if dweight is None:
            return matmul_backward_weight_ref(dout, inp)
        check_shape("dweight", dweight, (OC, C))
        dweight += matmul_backward_weight_ref(dout, inp)
        return dweight
    if dweight is None:
        dweight = np.zeros((OC, C), dtype=np.float32)
    else:
        _check_output("dweight", dweight, (OC, C), dout, inp)
    N = int(np.prod(dout.shape[:-1]))
    lib.matmul_backward_weight(_ptr(ffi, dweight, True), _ptr(ffi, dout), _ptr(ffi, inp), N, C, OC)
    return dweight
