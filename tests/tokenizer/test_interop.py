"""Interop: our ids == tiktoken's (from our exported ranks) == Hugging Face's (from our
exported tokenizer.json); GPT-2's vocab.json + merges.txt tokenise exactly as GPT-2 does."""
import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

import pytest

from minillm.common import UserError
from minillm.tokenizer import fast
from minillm.tokenizer.interop import (bytes_to_unicode, load_gpt2, save_hf, save_tiktoken, to_hf_json,
                                       to_tiktoken)
from minillm.tokenizer.train import train_tokenizer

tiktoken = pytest.importorskip("tiktoken", reason="tiktoken is a test extra (pip install tiktoken)")
tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is a test extra (pip install tokenizers)")

SMALL_FILES = ["taylorswift.txt", "botchan.txt"]   # the big two are in the slow test


def to_hf(tok):
    """The tokenizers library's Tokenizer for our exported tokenizer.json."""
    return tokenizers.Tokenizer.from_str(json.dumps(to_hf_json(tok)))


def _taylor(shared_data):
    return train_tokenizer(Path(shared_data / "text" / "taylorswift.txt"), 1024)


def _files(shared_data, names=None):
    files = sorted((shared_data / "text").glob("*.txt"))
    assert len(files) >= 4
    return [f for f in files if names is None or f.name in names]


def test_byte_table_is_gpt2s():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert table[0] == "Ā" and table[255] == "ÿ" and table[173] == "Ń"


def test_tiktoken_parity_on_every_file(shared_data):
    tok = _taylor(shared_data)
    enc = to_tiktoken(tok)
    for path in _files(shared_data):
        text = path.read_text(encoding="utf-8")
        assert enc.encode_ordinary(text) == tok.encode_ordinary(text), path.name
    text = "<|bos|>hi<|assistant_end|>"
    assert enc.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    assert enc.encode(text, disallowed_special=()) == tok.encode(text)


def test_hf_parity_on_small_files(shared_data):
    tok = _taylor(shared_data)
    hf = to_hf(tok)
    for path in _files(shared_data, SMALL_FILES):
        text = path.read_text(encoding="utf-8")
        ids = tok.encode_ordinary(text)
        assert hf.encode(text, add_special_tokens=False).ids == ids, path.name
        assert hf.decode(ids) == text
    assert hf.encode("<|bos|>x").ids == tok.encode("<|bos|>x", allowed_special="all")
    assert hf.get_vocab_size() == tok.vocab_size


@pytest.mark.slow
def test_hf_and_tiktoken_parity_on_every_file(shared_data):
    tok = _taylor(shared_data)
    hf, enc = to_hf(tok), to_tiktoken(tok)
    for path in _files(shared_data):
        text = path.read_text(encoding="utf-8")
        ids = tok.encode_ordinary(text)
        assert hf.encode(text, add_special_tokens=False).ids == ids, path.name
        assert enc.encode_ordinary(text) == ids, path.name


@pytest.mark.parametrize("pattern", ["gpt2", r"\p{L}+|\p{N}|[^\p{L}\p{N}]+"])
def test_parity_with_other_patterns(shared_data, pattern):
    tok = train_tokenizer(Path(shared_data / "text" / "taylorswift.txt"), 600, pattern=pattern)
    text = (shared_data / "text" / "botchan.txt").read_text(encoding="utf-8")[:50_000]
    ids = tok.encode_ordinary(text)
    assert to_tiktoken(tok).encode_ordinary(text) == ids
    assert to_hf(tok).encode(text, add_special_tokens=False).ids == ids


TRICKY = list("aAzZ'sSdDmMtTlLvVrReE \t\n\r\x0b\x0c0123456789!?.,-_()'\"ſKéüß漢字١٢³½Ⅻ\u0301\u00a0"
              "\u1680\u2000\u2028\u2029\u3000\u0085\x1c\x1f") + ["'ll", "'VE", "'Re", "\r\n", "  ", "'ſ"]


@pytest.mark.parametrize("pattern", ["gpt4", "gpt2"])
def test_parity_on_tricky_unicode(shared_data, pattern):
    # Unicode spaces, U+017F (folds to 's'), marks, non-ASCII digits: where regex engines could differ
    tok = train_tokenizer(Path(shared_data / "text" / "taylorswift.txt"), 1024, pattern=pattern)
    hf, enc = to_hf(tok), to_tiktoken(tok)
    rnd = random.Random(0)
    for _ in range(500):
        text = "".join(rnd.choice(TRICKY) for _ in range(rnd.randint(1, 12)))
        ids = tok.encode(text)
        assert enc.encode_ordinary(text) == ids, repr(text)
        assert hf.encode(text, add_special_tokens=False).ids == ids, repr(text)


def test_exported_files_load_in_tiktoken_and_hf(tmp_path):
    tok = train_tokenizer("hello world, hello there. " * 50, 300)
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(save_tiktoken(tok, tmp_path / "t.tiktoken")))
    enc = tiktoken.Encoding("t", pat_str=tok.pattern, mergeable_ranks=ranks, special_tokens={})
    hf = tokenizers.Tokenizer.from_file(str(save_hf(tok, tmp_path / "hf" / "tokenizer.json")))
    text = "hello there, world"
    assert enc.encode_ordinary(text) == hf.encode(text).ids == tok.encode(text)


# ---- GPT-2's files --------------------------------------------------------------------

MERGES = ["Ġ t", "h e", "i n", "Ġt he", "a t", "Ġ c", "Ġc at", "t he"]


def write_gpt2_files(directory):
    """A tiny vocab.json + merges.txt laid out like GPT-2's: the 188 printable bytes first
    (so "!" is 0, "h" is 71), then the other 68 in byte order (" " is "Ġ", id 220), then
    one id per merge in merges.txt order, then <|endoftext|>."""
    table = bytes_to_unicode()
    order = [b for b in range(256) if table[b] == chr(b)] + [b for b in range(256) if table[b] != chr(b)]
    vocab = {table[b]: i for i, b in enumerate(order)}
    for line in MERGES:
        vocab[line.replace(" ", "")] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    directory = Path(directory)
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n", encoding="utf-8")
    return directory / "vocab.json", directory / "merges.txt"


def test_gpt2_files_by_hand(tmp_path):
    tok = load_gpt2(*write_gpt2_files(tmp_path))
    # GPT-2 split: "the" " cat" " in" " the" " hat" "'s"
    #   the  = t h e -> t he (h e, rank 1) -> the (t he, rank 7)         = 263
    #   " cat" = Ġ c a t -> Ġ c at (rank 4) -> Ġc at (rank 5) -> Ġcat   = 262
    #   " in"  = Ġ i n -> Ġ in                                          = 220, 258
    #   " the" = Ġ t h e -> Ġt h e (rank 0) -> Ġt he -> Ġthe (rank 3)   = 259
    #   " hat" = Ġ h a t -> Ġ h at                                      = 220, 71, 260
    #   "'s"   = ' s (no merge)                                         = 6, 82
    text = "the cat in the hat's"
    assert tok.encode(text) == [263, 262, 220, 258, 259, 220, 71, 260, 6, 82]
    assert tok.decode(tok.encode(text)) == text
    assert tok.special_tokens == {"<|endoftext|>": 264}
    assert tok.encode("<|endoftext|>", allowed_special="all") == [264] == [tok.bos_id]
    assert tok.vocab_size == 265


def test_gpt2_files_match_hugging_face(tmp_path):
    vocab, merges = write_gpt2_files(tmp_path)
    tok = load_gpt2(vocab, merges)
    hf = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(str(vocab), str(merges)))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's own regex
    text = "the cat in the hat's hat, then the cathedral\n\n  the  cat 123 ümlaut"
    assert hf.encode(text).ids == tok.encode(text)
    for use_c in (True, False) if fast.available() else (False,):   # GPT-2's byte ids are shuffled:
        assert load_gpt2(vocab, merges, use_c=use_c).encode(text) == tok.encode(text)  # both paths map them


def test_gpt2_bad_files(tmp_path):
    vocab, merges = write_gpt2_files(tmp_path)
    merges.write_text("#version: 0.2\nq z\n")
    with pytest.raises(UserError, match="merges.txt:2"):
        load_gpt2(vocab, merges)
    with pytest.raises(UserError, match="not found"):
        load_gpt2(tmp_path / "nope.json", merges)
    vocab.write_text("[1]")
    with pytest.raises(UserError, match="vocab.json"):
        load_gpt2(vocab, merges)


def _tiktoken_cached_gpt2():
    """tiktoken's cached copies of GPT-2's encoder.json and vocab.bpe, or None."""
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or \
        os.path.join(tempfile.gettempdir(), "data-gym-cache")
    base = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
    paths = [Path(cache) / hashlib.sha1((base + n).encode()).hexdigest() for n in ("encoder.json", "vocab.bpe")]
    return paths if all(p.is_file() for p in paths) else None


def test_real_gpt2_files_match_tiktoken(shared_data):
    files = _tiktoken_cached_gpt2()
    if files is None:
        pytest.skip("GPT-2's encoder.json / vocab.bpe are not in tiktoken's offline cache and "
                    "tests have no network; the hand-made GPT-2 files above cover the format")
    tok = load_gpt2(*files)
    enc = tiktoken.get_encoding("gpt2")
    for path in _files(shared_data, SMALL_FILES):
        text = path.read_text(encoding="utf-8")
        assert tok.encode_ordinary(text) == enc.encode_ordinary(text)
