"""Shared pytest setup: the `slow` marker, the shared real-data folder, fixed seeds."""
import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """Deselect `slow` tests unless the run selects markers itself (`pytest -m slow`)."""
    if config.getoption("-m"):
        return
    kept, dropped = [], []
    for item in items:
        (dropped if "slow" in item.keywords else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def shared_data():
    """../shared/data (real text, WARCs, math, chats); skips, saying why, when absent."""
    root = Path(os.environ.get("MINILLM_SHARED_DATA", SHARED_DATA))
    if not root.is_dir():
        pytest.skip(f"real-data samples not found at {root} (set MINILLM_SHARED_DATA)")
    return root


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
