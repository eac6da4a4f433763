"""Token shards (format, ShardWriter, write_token_shards) and the BatchLoader: targets, split,
determinism, resume."""
import gzip
import json
import os
import struct

import numpy as np
import pytest

from minillm.common import UserError
from minillm.pretrain.shards import (HEADER, MAGIC, BatchLoader, ShardWriter, read_shard,
                                    shard_paths, write_shard, write_token_shards)
from minillm.tokenizer.train import train_tokenizer


@pytest.mark.parametrize("vocab, dtype", [(300, np.uint16), (65536, np.uint16), (70001, np.uint32)])
def test_shard_round_trip(tmp_path, vocab, dtype):
    tokens = np.random.default_rng(0).integers(0, vocab, 1001)
    write_shard(tmp_path / "s.bin", tokens, vocab)
    raw = (tmp_path / "s.bin").read_bytes()
    magic, version, nbytes, count, v = struct.unpack("<8sIIQQ", raw[:32])
    assert (magic, version, nbytes, count, v) == (MAGIC, 1, np.dtype(dtype).itemsize, 1001, vocab)
    assert len(raw) == 32 + 1001 * np.dtype(dtype).itemsize
    got = read_shard(tmp_path / "s.bin")
    assert isinstance(got, np.memmap) and got.dtype == dtype and not got.flags.writeable
    np.testing.assert_array_equal(got, tokens)


def test_bad_shards_are_one_line_errors(tmp_path):
    write_shard(tmp_path / "s.bin", np.arange(100), 256)
    data = (tmp_path / "s.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-3])
    with pytest.raises(UserError, match="truncated"):
        read_shard(tmp_path / "cut.bin")
    (tmp_path / "junk.bin").write_bytes(b"hello world, not a shard" * 3)
    with pytest.raises(UserError, match="bad magic"):
        read_shard(tmp_path / "junk.bin")
    (tmp_path / "v2.bin").write_bytes(HEADER.pack(MAGIC, 2, 2, 0, 256))
    with pytest.raises(UserError, match="version 2"):
        read_shard(tmp_path / "v2.bin")
    with pytest.raises(ValueError, match="lie in"):
        write_shard(tmp_path / "x.bin", np.array([0, 256]), 256)


def test_shard_writer_prepends_bos_and_rolls(tmp_path):
    rng = np.random.default_rng(1)
    docs = [rng.integers(1, 50, n) for n in (5, 17, 1, 30, 9, 0, 22)]
    with ShardWriter(tmp_path / "shards", vocab_size=50, bos_id=0, shard_tokens=16) as w:
        for d in docs:
            w.add(d)
    stream = np.concatenate([np.concatenate([[0], d]) for d in docs])
    index = json.loads((tmp_path / "shards" / "shards.json").read_text())
    assert index["tokens"] == stream.size and index["documents"] == len(docs)
    shards = [read_shard(tmp_path / "shards" / n) for n in index["shards"]]
    assert [s.size for s in shards] == [16] * (stream.size // 16) + [stream.size % 16]
    np.testing.assert_array_equal(np.concatenate(shards), stream)
    assert not [f for f in os.listdir(tmp_path / "shards") if f.startswith(".")]  # no temp files


def _stream_loader(tmp_path, n=5000, vocab=1000, **kw):
    tokens = np.arange(n) % vocab                   # token value = position: easy to trace
    write_shard(tmp_path / "one.bin", tokens, vocab)
    kw = {"batch_size": 4, "context_len": 16, **kw}
    return BatchLoader(tmp_path / "one.bin", **kw)


def test_targets_are_the_next_tokens_and_splits_are_disjoint(tmp_path):
    train = _stream_loader(tmp_path, n=5000, vocab=5000)
    val = _stream_loader(tmp_path, n=5000, vocab=5000, split="val")
    assert (train.n_tokens, val.n_tokens) == (4500, 500)
    for _ in range(50):
        x, y = next(train)
        assert x.shape == y.shape == (4, 16) and x.dtype == np.int64
        np.testing.assert_array_equal(y, x + 1)    # contiguous windows, y = next token
        assert y.max() < 4500                      # training never sees the last 10%
    xv, yv = next(val)
    assert xv.min() >= 4500 and xv[0, 0] == 4500  # val: from the cut, in order, offset 0
    np.testing.assert_array_equal(yv, xv + 1)


def test_an_epoch_visits_every_window_once(tmp_path):
    loader = _stream_loader(tmp_path, n=2000, vocab=2000, batch_size=1)
    n = loader.n_windows
    starts = [int(next(loader)[0][0, 0]) for _ in range(n)]
    assert len(set(starts)) == n and loader.epoch == 0
    shift = starts[0] % 16
    assert all(s % 16 == shift for s in starts)    # non-overlapping windows at one offset
    assert starts != sorted(starts)                # shuffled
    next(loader)
    assert loader.epoch == 1


def test_same_seed_same_batches_other_seed_other(tmp_path):
    a, b = _stream_loader(tmp_path, seed=7), _stream_loader(tmp_path, seed=7)
    c = _stream_loader(tmp_path, seed=8)
    xa = [next(a)[0] for _ in range(20)]
    xb = [next(b)[0] for _ in range(20)]
    xc = [next(c)[0] for _ in range(20)]
    assert all(np.array_equal(p, q) for p, q in zip(xa, xb))
    assert not all(np.array_equal(p, q) for p, q in zip(xa, xc))


def test_state_restore_continues_exactly_across_epochs(tmp_path):
    ref = _stream_loader(tmp_path, n=1500, vocab=1500, batch_size=5)
    expected = [next(ref) for _ in range(60)]      # ~4 epochs of 84 windows
    first = _stream_loader(tmp_path, n=1500, vocab=1500, batch_size=5)
    for _ in range(23):
        next(first)
    state = json.loads(json.dumps(first.state()))  # through JSON, like a checkpoint
    second = _stream_loader(tmp_path, n=1500, vocab=1500, batch_size=5)
    second.restore(state)
    for i in range(23, 60):
        x, y = next(second)
        np.testing.assert_array_equal(x, expected[i][0])
        np.testing.assert_array_equal(y, expected[i][1])
    other = _stream_loader(tmp_path, n=1400, vocab=1500)
    with pytest.raises(UserError, match="n_tokens"):
        other.restore(state)


def test_windows_never_cross_shards(tmp_path):
    with ShardWriter(tmp_path / "sh", vocab_size=5000, bos_id=0, shard_tokens=100) as w:
        w.add(np.arange(1, 1000))                   # one long document over 10 shards
    loader = BatchLoader(tmp_path / "sh", batch_size=8, context_len=16, seed=3)
    assert loader.kind == "shards" and loader.vocab_size == 5000
    for _ in range(40):
        x, y = next(loader)
        np.testing.assert_array_equal(y, x + 1)
        # token value = stream position here, so value // 100 is the shard it came from
        np.testing.assert_array_equal(x[:, 0] // 100, y[:, -1] // 100)


def test_byte_level_text_file(tmp_path):
    text = "The quick brown fox jumps over the lazy dog. " * 40
    (tmp_path / "t.txt").write_text(text)
    loader = BatchLoader(tmp_path / "t.txt", batch_size=3, context_len=10, seed=0)
    assert loader.kind == "bytes" and loader.vocab_size == 256
    x, y = next(loader)
    data = text.encode()
    for row_x, row_y in zip(x, y):
        start = data.find(bytes(row_x.astype(np.uint8)))
        assert start >= 0 and data[start + 1:start + 11] == bytes(row_y.astype(np.uint8))


def test_too_little_data_is_a_user_error(tmp_path):
    (tmp_path / "t.txt").write_text("short text" * 10)
    with pytest.raises(UserError, match=f"the val split of {tmp_path / 't.txt'} has .* too few"):
        BatchLoader(tmp_path / "t.txt", batch_size=2, context_len=32, split="val")
    with pytest.raises(UserError, match="not found"):
        BatchLoader(tmp_path / "missing.bin", batch_size=2, context_len=8)


def test_shards_of_two_tokenizers_are_named(tmp_path):
    write_shard(tmp_path / "a.bin", np.arange(100) % 50, 50)
    write_shard(tmp_path / "b.bin", np.arange(100) % 70, 70)
    with pytest.raises(UserError, match=r"a.bin has 50 tokens, .*b.bin 70"):
        BatchLoader(tmp_path, batch_size=2, context_len=8)


def test_write_token_shards_from_clean_documents(tmp_path):
    """clean/*.jsonl.gz (the cleaning pipeline's output) -> shards: <|bos|> before each
    document, documents in file order, and "<|bos|>" inside a page stays plain text."""
    rng = np.random.default_rng(0)
    words = "harbour mill river bridge market school tower storm <|bos|> 1790".split()
    docs = [" ".join(rng.choice(words, rng.integers(5, 40))) for _ in range(30)]
    (tmp_path / "clean").mkdir()
    for name, part in (("a", docs[:12]), ("b", docs[12:])):
        with gzip.open(tmp_path / "clean" / f"{name}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": d}) + "\n" for d in part)
    tok = train_tokenizer(docs, vocab_size=300)
    tok.save(tmp_path / "tokenizer.json")
    n_docs, n_tokens = write_token_shards(tmp_path / "clean", tmp_path / "tokenizer.json", tmp_path / "shards")
    tokens = np.concatenate([np.asarray(read_shard(p)) for p in shard_paths(tmp_path / "shards")])
    assert n_docs == len(docs) and len(tokens) == n_tokens
    assert (tokens == tok.bos_id).sum() == len(docs) and tokens[0] == tok.bos_id
    starts = np.flatnonzero(tokens == tok.bos_id)
    assert tok.decode(tokens[1:starts[1]].tolist()) == docs[0]
    assert tok.decode(tokens[starts[-1] + 1:].tolist()) == docs[-1]
    with pytest.raises(UserError, match="no clean documents"):
        write_token_shards(tmp_path / "shards", tmp_path / "tokenizer.json", tmp_path / "x")
