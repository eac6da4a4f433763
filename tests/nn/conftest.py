"""The fixture that runs the layers' NumPy lines on float32 too, for the twin checks."""
import pytest

from minillm.nn import kernels as K


@pytest.fixture
def numpy_lines(monkeypatch):
    """Inside the test every layer function of minillm/nn/ runs its NumPy lines, whatever the
    dtype (kernels.fast answers False); the C wrappers, called directly, still run C."""
    monkeypatch.setattr(K, "fast", lambda *arrays: False)
