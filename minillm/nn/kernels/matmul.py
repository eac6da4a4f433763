"""The matmul kernels (csrc/matmul.c) and their NumPy twins: a linear layer y = x W^T.

    out = matmul_forward(x, w)        # C when the extension is loaded, else NumPy
    out = matmul_forward_ref(x, w)    # NumPy, always: the readable definition

Shapes: N rows (tokens), C input channels, OC output channels.
"""
import numpy as np

from minillm.clib import _check, _check_output, _load, _ptr

# ---- matmul: a linear layer y = x W^T, W (OC, C) ---------------------------------------

def matmul_forward_ref(inp, weight):
    """out (..., OC) = inp (..., C) @ weight (OC, C)^T."""
    return inp @ weight.T


def matmul_forward(inp, weight, out=None):
    """out (..., OC) = inp (..., C) @ weight (OC, C)^T, overwriting `out` if given."""
    _check("weight", weight, ndim=2)
    OC, C = weight.shape
    _check("inp", inp)
    if inp.ndim < 1 or inp.shape[-1] != C:
        raise ValueError(f"inp's last dimension must be {C} (weight is {weight.shape}), got {inp.shape}")
    shape = inp.shape[:-1] + (OC,)
    ffi, lib = _load()
    if lib is None:
        result = matmul_forward_ref(inp, weight)
        if out is None:
            return result
        _check_output("out", out, shape, inp, weight)
        out[...] = result
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
    _check("weight", weight, ndim=2)
    OC, C = weight.shape
    _check("dout", dout)
    if dout.ndim < 1 or dout.shape[-1] != OC:
        raise ValueError(f"dout's last dimension must be {OC} (weight is {weight.shape}), got {dout.shape}")
    shape = dout.shape[:-1] + (C,)
    ffi, lib = _load()
    if lib is None:
        result = matmul_backward_input_ref(dout, weight)
        if dinp is None:
            return result
        _check_output("dinp", dinp, shape, dout, weight)
        dinp[...] = result
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
    """dweight (OC, C) += dout (..., OC)^T @ inp (..., C); a new zeroed dweight if None."""
    _check("dout", dout)
    _check("inp", inp)
    if dout.ndim < 1 or inp.ndim < 1 or dout.shape[:-1] != inp.shape[:-1]:
        raise ValueError(f"dout {dout.shape} and inp {inp.shape} must agree in all but the last dimension")
    OC, C = dout.shape[-1], inp.shape[-1]
    N = int(np.prod(dout.shape[:-1]))
    ffi, lib = _load()
    if dweight is None:
        dweight = np.zeros((OC, C), dtype=np.float32)
    else:
        _check_output("dweight", dweight, (OC, C), dout, inp)
    if lib is None:
        dweight += matmul_backward_weight_ref(dout, inp)
        return dweight
    lib.matmul_backward_weight(_ptr(ffi, dweight, True), _ptr(ffi, dout), _ptr(ffi, inp), N, C, OC)
    return dweight


def matmul_backward(dout, inp, weight, dweight=None):
    """Both backward products of out = inp @ weight^T: returns (dinp, dweight).

    dinp is new; dweight is accumulated into (+=) when given, else returned fresh.
    """
    return matmul_backward_input(dout, weight), matmul_backward_weight(dout, inp, dweight)
