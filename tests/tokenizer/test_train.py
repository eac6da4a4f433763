"""train.py: the textbook example, running out of pairs, vocab sizes, reading files in blocks,
.jsonl(.gz) input. That it learns naive.py's merges is in test_naive.py, C against Python
in test_fast.py."""
import gzip
import json
from pathlib import Path

import pytest

from minillm.common import UserError
from minillm.tokenizer.bpe import SPECIAL_TOKENS
from minillm.tokenizer.train import _text_blocks, train_tokenizer

CORPUS = ("The quick brown fox jumps over the lazy dog. It's 9.11 vs 9.9, and 12345 apples!\n"
          "    def f(x):\n        return x ** 2  # indent\n\n"
          "Les élèves étudient à l'école. Größe, naïve café. 東京は日本の首都です。 Привет мир.\n") * 20


def test_textbook_example_three_merges():
    # "aaabdaaabac" is one chunk. Bytes: a=97 b=98 c=99 d=100.
    # Pair counts (overlapping): aa 4, ab 2, bd 1, da 1, ba 1, ac 1  -> merge (97, 97) = 256
    #   Z a b d Z a b a c: Za 2, ab 2, bd 1, dZ 1, ba 1, ac 1 -> tie at 2, smallest pair
    #   (97, 98) < (256, 97)                                        -> merge (97, 98) = 257
    #   Z Y d Z Y a c: ZY 2, others 1                               -> merge (256, 257) = 258
    # leaving X d X a c.
    for use_c in (None, False):
        t = train_tokenizer("aaabdaaabac", 256 + 3 + len(SPECIAL_TOKENS), use_c=use_c)
        assert t.merges == [(97, 97), (97, 98), (256, 257)]
        assert t.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
        assert t.token_bytes(258) == b"aaab"
        assert t.training["last_merge_count"] == 2


def test_training_stops_when_pairs_run_out():
    t = train_tokenizer("abab", 1000)
    assert t.merges == [(97, 98), (256, 256)]
    assert t.vocab_size == 256 + 2 + len(SPECIAL_TOKENS)
    assert t.bos_id == 258


def test_vocab_size_must_hold_bytes_and_specials():
    with pytest.raises(UserError, match="too small"):
        train_tokenizer(CORPUS, 260)


def test_file_blocks_cut_safely_and_lose_nothing(tmp_path):
    text = ("line one\n  indented\n\n\nx\ny \nz" * 40 + "é東") * 3
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode() + b"\xff")           # a bad byte decodes to U+FFFD
    blocks = [b for b, _ in _text_blocks(path, 37)]
    assert "".join(blocks) == text + "\ufffd"
    for b in blocks[:-1]:
        if b:
            assert b.endswith("\n") and not b[-2].isspace()


@pytest.mark.parametrize("pattern", ["gpt4", "gpt2"])
@pytest.mark.parametrize("use_c", [None, False])
def test_streaming_a_file_equals_training_on_it_whole(tmp_path, pattern, use_c):
    text = ("Hello there  \n\n  General Kenobi!\r\n\tYou are  a bold one.\n" * 30 + "end")
    path = tmp_path / "t.txt"
    path.write_text(text)
    whole = train_tokenizer(text, 350, pattern=pattern, use_c=use_c)
    streamed = train_tokenizer(path, 350, pattern, block_bytes=50, use_c=use_c)
    assert streamed.merges == whole.merges


def test_train_on_jsonl_and_text_files(tmp_path):
    docs = [CORPUS[:500], CORPUS[500:1000], "plain"]
    with gzip.open(tmp_path / "docs.jsonl.gz", "wt") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
    (tmp_path / "a.txt").write_text(CORPUS[1000:1500])
    t = train_tokenizer([Path(tmp_path / "docs.jsonl.gz"), Path(tmp_path / "a.txt")], 320)
    u = train_tokenizer(docs + [CORPUS[1000:1500]], 320)
    assert t.merges == u.merges
    (tmp_path / "bad.jsonl").write_text('{"txt": 1}\n')
    with pytest.raises(UserError, match="bad.jsonl:1"):
        train_tokenizer(Path(tmp_path / "bad.jsonl"), 320)
    with pytest.raises(UserError, match="not found"):
        train_tokenizer(Path(tmp_path / "nope.txt"), 320)
