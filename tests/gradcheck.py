"""Float64 central finite differences: the yardstick for every hand-written backward.

    loss = lambda: float((forward(x)[0] * R).sum())      # R: a fixed random "upstream grad"
    num = numeric_grad(loss, x)                           # perturbs x in place, restores it
    assert_grad_close(analytic, num)

Used by tests/nn/test_layers.py, test_attention.py and test_gpt.py.
"""
import numpy as np

from minillm.exercises.grading import numeric_grad  # noqa: F401 (the one implementation)


def assert_grad_close(analytic, numeric, rtol=1e-6, atol=1e-8, indices=None):
    """Entries agree to rtol relative to the largest numeric entry (plus atol)."""
    a, n = np.asarray(analytic).reshape(-1), np.asarray(numeric).reshape(-1)
    if indices is not None:
        a, n = a[indices], n[indices]
    scale = max(np.abs(n).max(), 1e-12)
    err = np.abs(a - n).max()
    assert err <= rtol * scale + atol, f"max |analytic - numeric| = {err:.3g} (scale {scale:.3g})"
