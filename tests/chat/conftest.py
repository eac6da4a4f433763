"""A small tokenizer for the chat tests (trained once; it has the chat special tokens)."""
import pytest

from minillm.tokenizer.train import train_tokenizer

TEXT = ("What is 17*23? It is 391. Who are you? I am minillm's assistant, a small model. "
        "Search for the capital of Velmora: the capital is Ostrin, founded in 1204.\n"
        "The quick brown fox jumps over the lazy dog. Zürich café, 東京, 🙂.\n") * 10


@pytest.fixture(scope="session")
def tok():
    return train_tokenizer(TEXT, 360)
