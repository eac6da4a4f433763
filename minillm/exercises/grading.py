"""What the checks share: the one-line verdict (Wrong), comparisons that say where values
differ, and float64 central finite differences, the yardstick for every backward.

    close("dx", yours, expected, rtol=1e-6)      # raises Wrong("dx is wrong at [0, 3]: ...")
    num = numeric_grad(lambda: loss(x), x)       # perturbs x in place, restores it

A check raises Wrong with what is wrong in one line; workspace.py prints it after "FAIL".
(tests/gradcheck.py is the test suite's copy of numeric_grad; nothing at run time reads
tests/.)

Read next: checks_data.py, the first checks.
"""
import numpy as np


class Wrong(Exception):
    """The learner's version gives a wrong answer; the message says which and where."""


def _fmt(x):
    return f"{x:.6g}" if isinstance(x, (float, np.floating)) else repr(x)


def as_array(name, value, shape=None):
    """value as an ndarray; Wrong when it is not array-like or (with shape) not that shape."""
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        raise Wrong(f"{name} is a {type(value).__name__}, not an array") from None
    if a.dtype == object:
        raise Wrong(f"{name} is not an array of numbers (got {type(value).__name__})")
    if shape is not None and a.shape != tuple(shape):
        raise Wrong(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    return a


def unpack(value, n, what):
    """A function's result as a tuple of n values; Wrong if it returned something else."""
    if not isinstance(value, tuple) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, tuple) else f"a {type(value).__name__}"
        raise Wrong(f"{what} should return {n} values, returned {got}")
    return value


def close(name, got, want, rtol=1e-6, atol=1e-8, context=""):
    """Wrong unless got has want's shape and every entry is within atol + rtol * max|want|.
    The message names the worst entry: "dx is wrong at [0, 3] (...): yours 0.5, expected 0.2"."""
    want = np.asarray(want)
    got = as_array(name, got, want.shape)
    where = f" ({context})" if context else ""
    if got.dtype.kind not in "iufcb":
        raise Wrong(f"{name} holds {got.dtype} values, expected numbers{where}")
    if want.size == 0:
        return
    if not np.all(np.isfinite(got)) and np.all(np.isfinite(want)):
        idx = np.unravel_index(np.argmin(np.isfinite(got)), got.shape)
        raise Wrong(f"{name} has a non-finite value at {list(map(int, idx))}{where}: {_fmt(got[idx])}")
    scale = max(float(np.abs(want).max()), 1e-12)
    err = np.abs(got.astype(np.complex128) - want.astype(np.complex128))
    if err.max() > atol + rtol * scale:
        idx = np.unravel_index(np.argmax(err), err.shape)
        raise Wrong(f"{name} is wrong at {list(map(int, idx))}{where}: yours {_fmt(got[idx])}, "
                    f"expected {_fmt(want[idx])} (largest value {scale:.3g})")


def equal(name, got, want, context=""):
    """Wrong unless got == want exactly (lists, tuples, arrays, strings, numbers)."""
    where = f" ({context})" if context else ""
    if isinstance(want, np.ndarray):
        got = as_array(name, got, want.shape)
        if not np.array_equal(got, want):
            idx = np.unravel_index(np.argmax(got != want), want.shape)
            raise Wrong(f"{name} is wrong at {list(map(int, idx))}{where}: yours {_fmt(got[idx])}, "
                        f"expected {_fmt(want[idx])}")
        return
    if isinstance(want, list) and isinstance(got, (list, tuple)):
        got = list(got)
        if got != want:
            k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            raise Wrong(f"{name} differs{where} first at position {k}: yours {_short(got[k:])}, "
                        f"expected {_short(want[k:])}")
        return
    if got != want:
        raise Wrong(f"{name}{where}: yours {_short(got)}, expected {_short(want)}")


def _short(x, n=8):
    if isinstance(x, list):
        return "[" + ", ".join(map(repr, x[:n])) + (", ...]" if len(x) > n else "]")
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def numeric_grad(f, x, eps=1e-6, indices=None):
    """d f() / d x by central differences, for every entry of x (or only `indices`, flat
    positions; the others stay 0). x must be float64; it is perturbed in place and restored.
    (tests/gradcheck.py uses this one too: the learner's yardstick is the project's.)"""
    assert x.dtype == np.float64, "finite differences need float64"
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(x.size) if indices is None else indices:
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def grad_close(name, got, numeric, rtol=1e-5, atol=1e-7):
    """close() against finite differences, saying so in the message."""
    close(name, got, numeric, rtol, atol, context="against finite differences of the loss")
