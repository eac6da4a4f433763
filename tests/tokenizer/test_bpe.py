"""bpe.py's Tokenizer: round trips, special tokens, the id layout, tokenizer.json.

Training is in test_train.py (and test_naive.py), C-vs-Python equality in test_fast.py,
tiktoken / Hugging Face / GPT-2 in test_interop.py, the command line in test_cli.py.
"""
import json
import os
import pickle

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from minillm import clib
from minillm.common import UserError
from minillm.tokenizer import fast
from minillm.tokenizer.bpe import GPT2_DIGITS_PATTERN, GPT2_PATTERN, SPECIAL_TOKENS, Tokenizer
from minillm.tokenizer.train import train_tokenizer

CORPUS = ("The quick brown fox jumps over the lazy dog. It's 9.11 vs 9.9, and 12345 apples!\n"
          "    def f(x):\n        return x ** 2  # indent\n\n"
          "Les élèves étudient à l'école. Größe, naïve café. 東京は日本の首都です。 Привет мир.\n") * 20


@pytest.fixture(scope="module", params=[None, False], ids=["auto", "python"])
def tok(request):
    return train_tokenizer(CORPUS, 256 + 150 + len(SPECIAL_TOKENS), use_c=request.param)


def test_c_tokenizer_is_built():
    if os.environ.get("MINILLM_NO_C") == "1":
        pytest.skip("MINILLM_NO_C=1 forces the pure-Python tokenizer")
    assert fast.available(), clib.load_error()


def test_vocab_size_counts_bytes_merges_and_specials(tok):
    assert len(tok.merges) == 150
    assert tok.vocab_size == 256 + 150 + len(SPECIAL_TOKENS)
    assert [tok.token_id(s) for s in SPECIAL_TOKENS] == list(range(406, 406 + len(SPECIAL_TOKENS)))
    assert tok.bos_id == 406


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_round_trip_any_text(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")


def test_round_trip_corpus_and_compression(tok):
    ids = tok.encode(CORPUS)
    assert tok.decode(ids) == CORPUS
    assert len(CORPUS.encode()) / len(ids) > 3.0     # the merges were learned on this text


def test_lone_surrogates_become_replacement_characters(tok):
    assert tok.decode(tok.encode("a\ud800b")) == "a\ufffdb"
    assert tok.decode(tok.encode("\ud83d\ude00")) == "\U0001F600"   # a valid pair joins up


def test_decode_cut_characters_never_raise(tok):
    ids = tok.encode("東")
    assert len(ids) >= 1
    raw = b"".join(tok.token_bytes(i) for i in ids)
    assert raw == "東".encode()
    cut = tok.encode_ordinary("é")               # 0xC3 0xA9: maybe merged, so cut by bytes
    first = [tok.byte_ids[0xC3]]
    assert tok.decode(first) == "\ufffd"
    assert tok.decode_bytes(first) == b"\xc3"
    assert tok.decode(cut) == "é"


@pytest.mark.parametrize("bad", [[-1], [10**6], [1, 2, 3, 100_000], ["7"], [None]])
def test_out_of_range_ids_raise_value_error(tok, bad):
    with pytest.raises(ValueError, match="out of range"):
        tok.decode(bad)


def test_special_tokens_are_plain_text_by_default(tok):
    text = "<|user_start|>hi<|user_end|><|bos|><|assistant_start|>"
    ids = tok.encode(text)
    assert not set(ids) & set(tok.special_tokens.values())
    assert tok.decode(ids) == text
    assert tok.encode_ordinary(text) == ids
    assert tok.encode_batch([text, "x"]) == [ids, tok.encode("x")]


def test_allowed_special_all_and_subset(tok):
    text = "<|bos|>hello<|user_start|>"
    assert tok.encode(text, allowed_special="all") == (
        [tok.bos_id] + tok.encode_ordinary("hello") + [tok.token_id("<|user_start|>")])
    subset = tok.encode(text, allowed_special={"<|user_start|>"})
    assert subset == tok.encode_ordinary("<|bos|>hello") + [tok.token_id("<|user_start|>")]
    assert tok.decode(subset) == text
    assert tok.encode_batch([text], allowed_special="all") == [tok.encode(text, allowed_special="all")]


def test_disallowed_special_raises(tok):
    with pytest.raises(ValueError, match="<\\|bos\\|>"):
        tok.encode("a <|bos|> b", disallowed_special="all")
    with pytest.raises(ValueError, match="disallowed"):
        tok.encode_batch(["fine", "<|user_end|>"], disallowed_special="all")
    # only the named ones raise; an allowed one is not disallowed
    assert tok.encode("<|user_end|>", disallowed_special={"<|bos|>"}) == tok.encode_ordinary("<|user_end|>")
    assert tok.encode("<|bos|>", allowed_special="all", disallowed_special="all") == [tok.bos_id]
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="not a special token"):
        tok.token_id("<|nope|>")


def test_encode_batch_matches_encode(tok):
    docs = [CORPUS[i:i + 97] for i in range(0, 3000, 97)] + ["", "a", "\n\n"]
    expected = [tok.encode(d) for d in docs]
    assert tok.encode_batch(docs, num_threads=2) == expected
    assert tok.encode_batch(docs, num_threads=1) == expected
    assert tok.encode_batch([]) == []


def test_pickles_for_worker_processes(tok):
    text = "pickled <|bos|> tokenizer"
    tok.encode(text)                                    # builds the C model and caches
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")


def test_custom_pattern_keeps_the_text_between_matches():
    t = train_tokenizer(CORPUS, 300, pattern=r"\d+")     # matches digits only
    text = "abc 123 déf 45"
    assert t.decode(t.encode(text)) == text
    assert t.pattern == r"\d+" and t.pattern_name is None


@pytest.mark.parametrize("pattern", ["gpt4", "gpt2", r"\w+|\s+|[^\w\s]+"])
def test_save_load_identity(tmp_path, pattern):
    t = train_tokenizer(CORPUS, 400, pattern=pattern)
    path = t.save(tmp_path / "tok" / "tokenizer.json")
    u = Tokenizer.load(path)
    assert u.to_dict() == t.to_dict()
    assert u.merges == t.merges and u.special_tokens == t.special_tokens and u.pattern == t.pattern
    assert u.encode(CORPUS) == t.encode(CORPUS)
    assert json.loads(path.read_text())["format"] == "minillm-tokenizer"
    if pattern == "gpt2":
        assert u.pattern == GPT2_PATTERN


def _corrupt(d):
    d["merges"][5] = [0, 9999]
    return d


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a minillm tokenizer"),
    ('{"model": {"type": "BPE"}}', "Hugging Face"),
    (lambda d: {**d, "version": 99}, "version 99"),
    (lambda d: {k: v for k, v in d.items() if k != "merges"}, "missing 'merges'"),
    (lambda d: {**d, "merges": "abc"}, "list of"),
    (_corrupt, "no earlier merge"),
    (lambda d: {**d, "special_tokens": {"<|bos|>": 3}}, "already taken"),
    (lambda d: {**d, "special_tokens": {"<|bos|>": "x"}}, "integer ids"),
    (lambda d: {**d, "pattern": "(unclosed"}, "not a valid regex"),
])
def test_corrupt_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    if callable(content):
        content = json.dumps(content(train_tokenizer(CORPUS, 300).to_dict()))
    path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        Tokenizer.load(path)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="not found"):
        Tokenizer.load(tmp_path / "missing.json")


def test_gpt2_digits_pattern_cuts_every_digit():
    # the space before a digit stays a chunk of its own, as after Hugging Face's Digits step
    assert regex.findall(GPT2_DIGITS_PATTERN, "ab 123 it's  x9") == [
        "ab", " ", "1", "2", "3", " it", "'s", " ", " x", "9"]
    t = Tokenizer([], GPT2_DIGITS_PATTERN)
    assert t.pattern_name is None and t.decode(t.encode("a 12  b")) == "a 12  b"
