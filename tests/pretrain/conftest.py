"""The fixed text the pretraining tests train on (tests/tiny_train.py)."""
import pytest

from tiny_train import write_text


@pytest.fixture
def text_file(tmp_path):
    return write_text(tmp_path / "words.txt")
