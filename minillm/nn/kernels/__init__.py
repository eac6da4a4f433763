"""The C kernels' entry points (csrc/, through cffi): one wrapper module per C file
(matmul.py, attention.py, layers.py, optim.py, decode.py). A wrapper checks its arguments
(shapes, float32, C-contiguous, outputs writable and overlapping no input) before any
pointer reaches C, then makes the call; its docstring names its NumPy twin, the lines in
minillm/nn/ that hold the math the C code must match.

The layers choose between the two with one rule, `fast` below, asked once per call:

    if K.fast(x, w):                              # C library loaded, float32, C-contiguous
        return KL.rmsnorm_forward(x, w, eps)      # the C call
    ...                                           # else the NumPy lines

So float64 arrays (the finite-difference checks) and MINILLM_NO_C=1 run the NumPy lines of
the same layer function. Calling a wrapper without the library raises a RuntimeError.

    python -m pytest tests/nn/kernels

Read first: matmul.py, the simplest wrapper; the C side is csrc/kernels.h.
"""
import numpy as np

from minillm.clib import _load, load_error


def fast(*arrays):
    """True when the C kernels are loaded and every array (None entries skipped) is float32
    and C-contiguous: the layer then calls C, else it runs its NumPy lines."""
    if _load()[1] is None:
        return False
    for a in arrays:
        if a is not None and (a.dtype != np.float32 or not a.flags.c_contiguous):
            return False
    return True


def c_lib():
    """(ffi, lib) of the loaded C kernels; RuntimeError when they are not loaded."""
    ffi, lib = _load()
    if lib is None:
        raise RuntimeError(f"the C kernels are not loaded ({load_error()}); the layers in "
                           "minillm/nn/ run their NumPy lines instead")
    return ffi, lib
