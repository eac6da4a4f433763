"""naive.py's plain BPE loop: its worked example, and the optimised trainer (train.py, on its
Python path and on the C path of fast.py) learning exactly its merges."""
import doctest
import random

import pytest

from minillm.tokenizer import fast, naive
from minillm.tokenizer.bpe import PATTERNS, SPECIAL_TOKENS
from minillm.tokenizer.naive import merge_pair, train_naive
from minillm.tokenizer.train import train_tokenizer


def _corpus():
    """About 6 KB: common words (clear winners), made-up words of random syllables (many ties),
    digits, accents, CJK, code indentation and runs of spaces and newlines."""
    rnd = random.Random(0)
    syllables = ["th", "e", "an", "ro", "qu", "ix", "é", "ü", "東", "京", "по", "ка", "'s", "3"]
    words = ["the", "then", "there", "their", "theme", "mississippi", "naïve", "café", "it's",
             "we'll", "9.11", "12345", "x**2", "(a, b)"]
    words += ["".join(rnd.choice(syllables) for _ in range(rnd.randint(1, 4))) for _ in range(300)]
    lines = []
    for _ in range(130):
        lines.append(" ".join(rnd.choice(words) for _ in range(rnd.randint(1, 9))))
        if rnd.random() < 0.2:
            lines.append("    def f(x):\n        return x  ")
    return "\n".join(lines) + "\n\n\n"


def test_docstring_example():
    assert doctest.testmod(naive).failed == 0


def test_merge_pair_is_left_to_right_and_non_overlapping():
    assert merge_pair([97, 97, 97, 98], (97, 97), 256) == [256, 97, 98]
    assert merge_pair([1, 2, 1, 2, 1], (1, 2), 9) == [9, 9, 1]
    assert merge_pair([], (1, 2), 9) == [] and merge_pair([1], (1, 2), 9) == [1]


def test_stops_when_every_chunk_is_one_token():
    assert train_naive("abab", 10, r"\S+") == [(97, 98), (256, 256)]


@pytest.fixture(scope="module", params=["gpt4", "gpt2"])
def naive_run(request):
    """(pattern name, corpus, naive.py's merges until the pairs run out)."""
    text = _corpus()
    assert 4000 < len(text.encode()) < 10000
    merges = train_naive(text, 10_000, PATTERNS[request.param])
    assert 300 < len(merges) < 10_000
    return request.param, text, merges


@pytest.mark.parametrize("n_merges", [300, 10_000], ids=["300-merges", "until-pairs-run-out"])
@pytest.mark.parametrize("use_c", [False, True], ids=["python", "c"])
def test_optimised_trainer_learns_the_naive_merges(naive_run, n_merges, use_c):
    # the same pattern and vocab size; ties (many at the end) go to the smallest pair in both
    if use_c and not fast.available():
        pytest.skip("the C extension is not built (test_bpe.py::test_c_tokenizer_is_built says why)")
    name, text, want = naive_run
    got = train_tokenizer(text, 256 + n_merges + len(SPECIAL_TOKENS), name, use_c=use_c)
    assert got.merges == want[:n_merges]
