"""fast.py, the tokenizer's C path (csrc/bpe_split.c, bpe.c, bpe_train.c), against its
Python twin: the same chunks as the regex, the same ids, the same merges.

Run against a private build with
    MINILLM_KERNELS_PATH=runs/build-<you> python -m pytest tests/tokenizer/test_fast.py
"""
import os
from pathlib import Path

import numpy as np
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from minillm.tokenizer import fast
from minillm.tokenizer.bpe import PATTERNS, Tokenizer
from minillm.tokenizer.train import train_tokenizer

if os.environ.get("MINILLM_NO_C") == "1":
    pytest.skip("MINILLM_NO_C=1 disables the C tokenizer", allow_module_level=True)
if not fast.available():   # test_bpe.py::test_c_tokenizer_is_built fails loudly for this
    pytest.skip("the C extension is not built", allow_module_level=True)

TRICKY = list("aAzZ'sSdDmMtTlLvVrReE \t\n\r\x0b\x0c0123456789!?.,-_()'\"ſKéüß漢字١٢³½Ⅻ́\u00a0\u1680"
              "\u2000\u2028\u2029\u3000\u0085\x1c\x1f") + ["'ll", "'VE", "'Re", "\r\n", "  ", "'ſ"]
tricky_text = st.lists(st.sampled_from(TRICKY) | st.characters(), max_size=60).map("".join)


def test_case_folding_the_c_splitter_assumes():
    # csrc/bpe_split.c folds only ASCII and U+017F into [sdmtlver]; check that regex agrees.
    every = "".join(map(chr, range(0x30000)))
    for letter in "sdmtlver":
        found = {c for c in regex.findall(f"(?i){letter}", every)}
        assert found == {letter, letter.upper()} | ({"ſ"} if letter == "s" else set())


def _py_split(text, name):
    return [c.encode() for c in regex.findall(PATTERNS[name], text)]


@pytest.mark.parametrize("name", ["gpt4", "gpt2"])
def test_split_matches_regex_on_real_text(shared_data, name):
    for path in sorted((shared_data / "text").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        assert fast.split(text.encode(), name) == _py_split(text, name), path.name


@pytest.mark.parametrize("name", ["gpt4", "gpt2"])
@settings(max_examples=300, deadline=None)
@given(text=tricky_text)
def test_split_matches_regex_on_tricky_text(name, text):
    assert fast.split(text.encode("utf-8", "replace"), name) == _py_split(
        text.encode("utf-8", "replace").decode(), name)


def test_split_survives_invalid_utf8():
    data = b"ab\xff\xc3 \xe6\x97 x\xf4\x90\x80\x80'\xc5"
    chunks = fast.split(data, "gpt4")
    assert b"".join(chunks) == data


@pytest.fixture(scope="module")
def pair():
    """The same tokenizer on the C path and on the Python path."""
    text = ("abracadabra " * 50 + "the theme then there their 12345 67890\n" * 30 +
            "mississippi  \n\n" * 20 + "naïve café 東京 " * 20)
    c = train_tokenizer(text, 600, use_c=True)
    return c, Tokenizer(c.merges, c.pattern, c.special_tokens, use_c=False)


@settings(max_examples=200, deadline=None)
@given(text=tricky_text | st.text())
def test_encode_c_equals_python(pair, text):
    c, py = pair
    assert c.encode(text) == py.encode(text)


@pytest.mark.parametrize("text", [
    "abracadabra" * 150,                      # one 1650-letter chunk: the heap merge path
    " " * 2000 + "x",                         # a long whitespace chunk
    "ab" * 47 + "a", "ab" * 48, "ab" * 49,    # around the small/large threshold (96 bytes)
    "the" * 33, "mississippi" * 9,
])
def test_long_chunks_c_equals_python(pair, text):
    c, py = pair
    ids = c.encode(text)
    assert ids == py.encode(text)
    assert c.decode(ids) == text


def test_cache_returns_the_same_ids_on_repeats(pair):
    c, py = pair
    words = ["abra", "cadabra", "the", "their", "mississippi", "東京", "zzz"] * 300
    text = " ".join(words[i * 7 % len(words)] for i in range(len(words)))
    assert c.encode(text) == py.encode(text) == c.encode(text)


def test_custom_pattern_c_equals_python():
    text = "word1 word22 x333 " * 40 + "tail"
    c = train_tokenizer(text, 320, pattern=r"[a-z]+|\d", use_c=True)
    py = train_tokenizer(text, 320, pattern=r"[a-z]+|\d", use_c=False)
    assert c.merges == py.merges
    assert c.encode(text) == py.encode(text)
    assert c.decode(c.encode(text)) == text


@pytest.mark.parametrize("name", ["gpt4", "gpt2"])
def test_trainer_c_equals_python_on_taylorswift(shared_data, name):
    path = Path(shared_data / "text" / "taylorswift.txt")
    c = train_tokenizer(path, 1024, name, use_c=True)
    py = train_tokenizer(path, 1024, name, use_c=False)
    assert len(c.merges) == 1024 - 256 - 11
    assert c.merges == py.merges
    assert c.training["distinct_chunks"] == py.training["distinct_chunks"]
    text = (shared_data / "text" / "botchan.txt").read_text()
    assert c.encode(text) == py.encode(text)


def test_trainer_tie_break_is_smallest_pair():
    # every pair occurs once: merges go in order of the smallest pair (a, b)
    t = train_tokenizer("dcba", 256 + 3 + 11, use_c=True)
    assert t.merges == [(98, 97), (99, 256), (100, 257)]
    assert t.merges == train_tokenizer("dcba", 256 + 3 + 11, use_c=False).merges


def test_encode_batch_threads_share_one_model(pair):
    c, _ = pair
    docs = [("abracadabra the theme %d " % i) * (i % 13 + 1) for i in range(200)]
    expected = [c.encode(d) for d in docs]
    for _ in range(3):
        assert c.encode_batch(docs, num_threads=2) == expected


def test_class_table_matches_regex_classes():
    table = fast.class_table()
    rng = np.random.default_rng(0)
    for cp in rng.integers(0, 0x110000, 2000).tolist() + [0x20, 0x85, 0xA0, 0x3000, 0x17F]:
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        want = (bool(regex.match(r"\p{L}", ch)) * 1 | bool(regex.match(r"\p{N}", ch)) * 2 |
                bool(regex.match(r"\s", ch)) * 4)
        assert table[cp] == want, hex(cp)
