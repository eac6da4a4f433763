"""The C kernels of the model: one wrapper module per csrc file (matmul.py, attention.py,
layers.py, optim.py), each C entry point directly below its NumPy twin `<name>_ref`, the
readable definition that the C code must match.

One rule decides between them, inside every wrapper (`c_lib` below): the C kernel runs when
the library is loaded and every array it would read or write is float32 and C-contiguous;
otherwise the NumPy twin runs. So float64 arrays (the finite-difference checks) and builds
without a C compiler take the twins, and the layers in minillm/nn/ just call the wrapper.
The wrappers check shapes first, for both paths, and on the C path also that outputs are
writable and overlap no input (minillm/clib.py), before any pointer reaches C.

    python -m pytest tests/nn/kernels

Read first: matmul.py, the simplest wrapper; the C side is csrc/kernels.h.
"""
import numpy as np

from minillm.clib import _load


def c_lib(*arrays):
    """(ffi, lib) when the C kernels are loaded and every array (None entries skipped) is
    float32 and C-contiguous, else (None, None): the caller then runs the NumPy twin."""
    ffi, lib = _load()
    if lib is None:
        return None, None
    for a in arrays:
        if a is not None and (a.dtype != np.float32 or not a.flags.c_contiguous):
            return None, None
    return ffi, lib


def check_shape(name, a, shape=None, ndim=None):
    """Raise a one-line ValueError unless `a` is a NumPy array of `shape` (or `ndim` axes)."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(a).__name__}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
