"""Token shards on disk and the batch loader that feeds pretraining.

A shard is one file of token ids behind a 32-byte header (all little-endian): magic
b"MLLMTOK\\0", u32 version (1), u32 bytes per token (2 when vocab_size <= 65536, else 4),
u64 token count, u64 vocab_size, then the tokens.

    write_token_shards("runs/x/clean", "runs/x/tokenizer.json", "runs/x/shards")  # the speedrun's
    with ShardWriter("runs/x/shards", vocab_size, bos_id) as w:     # <|bos|> before each doc
        for ids in docs: w.add(ids)                                 # -> shard_00000.bin, ...
    loader = BatchLoader("runs/x/shards", batch_size=8, context_len=256, split="train", seed=0)
    x, y = next(loader)            # (B, T) int64 each; y[b, t] = the token after x[b, t]
    BatchLoader(..., rank=1, ranks=2)   # rows B/2..B-1 of every batch (data parallelism)

The loader also reads a text file's bytes (vocab 256) or a 1-D array of ids. The last
val_frac (10%) of the stream is validation. Windows of T+1 tokens never cross a shard; each
epoch starts them at a random offset in [0, T) and visits them in a random order, both drawn
from (seed, epoch), so (epoch, position) is the loader's whole state: resume is exact.

Read next: train.py. Run: python -m pytest tests/pretrain/test_shards.py
"""
import struct
from pathlib import Path

import numpy as np

from minillm.common import Output, UserError, atomic_path, read_json, write_json
from minillm.internet.pipeline import read_jsonl_gz
from minillm.pretrain.dist import check_batch
from minillm.tokenizer.bpe import Tokenizer

MAGIC, VERSION = b"MLLMTOK\0", 1
HEADER = struct.Struct("<8sIIQQ")          # magic, version, token bytes, count, vocab_size
assert HEADER.size == 32
INDEX = "shards.json"                      # ShardWriter's list of complete shards
# what `minillm clean --shards` writes (common.prepare_dir: resume, --force, refusals)
OUTPUT = Output("shards", ("shard_*.bin", INDEX), meta=((INDEX, ("shards", "vocab_size")),))


def token_dtype(vocab_size):
    return np.dtype("<u2") if vocab_size <= 65536 else np.dtype("<u4")


def write_shard(path, tokens, vocab_size):
    """Write 1-D token ids to `path` with the shard header, atomically."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got [{tokens.min()}, {tokens.max()}]")
    dtype = token_dtype(vocab_size)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(HEADER.pack(MAGIC, VERSION, dtype.itemsize, tokens.size, vocab_size))
            f.write(tokens.astype(dtype, copy=False).tobytes())


def read_shard_header(path):
    """(count, vocab_size, dtype) of a shard; a one-line UserError if it is not a valid one."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER.size)
        size = path.stat().st_size
    except FileNotFoundError:
        raise UserError(f"token shard not found: {path}") from None
    if len(raw) < HEADER.size or raw[:8] != MAGIC:
        raise UserError(f"{path} is not a minillm token shard (bad magic)")
    _, version, nbytes, count, vocab_size = HEADER.unpack(raw)
    if version != VERSION:
        raise UserError(f"{path} is token shard version {version}; this minillm reads {VERSION}")
    dtype = token_dtype(vocab_size)
    if nbytes != dtype.itemsize or size != HEADER.size + count * nbytes:
        raise UserError(f"{path} is truncated or corrupt: header says {count} tokens of {nbytes} "
                        f"bytes, file has {size - HEADER.size} data bytes; rerun the tokenize step")
    return count, vocab_size, dtype


def read_shard(path):
    """The tokens of a shard as a read-only memmap (count,) of uint16 or uint32."""
    count, _, dtype = read_shard_header(path)
    if count == 0:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=HEADER.size, shape=(count,))


def is_shard(path):
    with open(path, "rb") as f:
        return f.read(8) == MAGIC


class ShardWriter:
    """Write documents as token shards of exactly `shard_tokens` tokens (the last is shorter).

    add(ids) appends <|bos|> then the document's ids; a document may continue into the
    next shard. Each shard file is written atomically; close() writes shards.json (the
    shard list, token and document counts) last, so a directory with shards.json is complete.
    """

    def __init__(self, out_dir, vocab_size, bos_id, shard_tokens=1 << 24, prefix="shard"):
        if not 0 <= bos_id < vocab_size:
            raise ValueError(f"bos_id {bos_id} is not a token id of a {vocab_size}-token vocabulary")
        self.out_dir, self.vocab_size, self.bos_id = Path(out_dir), vocab_size, bos_id
        self.shard_tokens, self.prefix = int(shard_tokens), prefix
        self.buf = np.empty(self.shard_tokens, token_dtype(vocab_size))  # (shard_tokens,)
        self.fill, self.paths, self.n_tokens, self.n_docs = 0, [], 0, 0
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def add(self, ids):
        ids = np.asarray(ids, dtype=np.int64)                           # (n,)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size})")
        doc = np.concatenate([[self.bos_id], ids])                      # (n + 1,)
        self.n_docs += 1
        while doc.size:
            take = min(doc.size, self.shard_tokens - self.fill)
            self.buf[self.fill:self.fill + take] = doc[:take]
            self.fill += take
            doc = doc[take:]
            if self.fill == self.shard_tokens:
                self._flush()

    def _flush(self):
        path = self.out_dir / f"{self.prefix}_{len(self.paths):05d}.bin"
        write_shard(path, self.buf[:self.fill], self.vocab_size)
        self.paths.append(path)
        self.n_tokens += self.fill
        self.fill = 0

    def close(self):
        """Write the last partial shard and shards.json; returns the shard paths."""
        if self.fill:
            self._flush()
        write_json(self.out_dir / INDEX, {"shards": [p.name for p in self.paths],
                                          "vocab_size": self.vocab_size, "tokens": self.n_tokens,
                                          "documents": self.n_docs, "bos_id": self.bos_id})
        return list(self.paths)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()


def write_token_shards(clean_dir, tokenizer_path, shards_dir, batch=256):
    """clean/*.jsonl.gz -> token shards (<|bos|> before each document); (documents, tokens).
    Web text is encoded with special tokens disallowed: "<|bos|>" in a page is plain text."""
    tok = Tokenizer.load(tokenizer_path)
    paths = sorted(Path(clean_dir).glob("*.jsonl.gz"))
    if not paths:
        raise UserError(f"no clean documents in {clean_dir}; run `minillm clean` first")
    with ShardWriter(shards_dir, tok.vocab_size, tok.bos_id) as writer:
        for path in paths:
            texts = [rec["text"] for rec in read_jsonl_gz(path)]
            for i in range(0, len(texts), batch):
                for ids in tok.encode_batch(texts[i:i + batch]):
                    writer.add(ids)
    return writer.n_docs, writer.n_tokens


def shard_paths(directory):
    """The shards of a directory, from shards.json when present, else every *.bin, sorted."""
    directory = Path(directory)
    if (directory / INDEX).exists():
        index = read_json(directory / INDEX, what="shard index")
        names = index.get("shards") if isinstance(index, dict) else None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise UserError(f"{directory / INDEX} is corrupt (no \"shards\" list of file names); "
                            "rerun the stage that wrote the shards")
        return [directory / name for name in names]
    paths = sorted(directory.glob("*.bin"))
    if not paths:
        raise UserError(f"no token shards (*.bin) in {directory}")
    return paths


def open_tokens(source):
    """(list of 1-D token arrays, vocab_size, kind) for a shard dir / shard / text file / array."""
    if isinstance(source, np.ndarray):
        return [source], int(source.max()) + 1 if source.size else 0, "tokens"
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
    else:
        path = Path(source)
        if path.is_dir():
            paths = shard_paths(path)
        elif not path.exists():
            raise UserError(f"data not found: {path}")
        elif is_shard(path):
            paths = [path]
        elif path.stat().st_size == 0:
            raise UserError(f"{path} is an empty file: no tokens to train on")
        else:                                            # byte-level mode: the file's bytes
            return [np.memmap(path, dtype=np.uint8, mode="r")], 256, "bytes"
    vocabs = [(p, read_shard_header(p)[1]) for p in paths]
    (first, vocab), others = vocabs[0], [(p, v) for p, v in vocabs if v != vocabs[0][1]]
    if others:
        raise UserError(f"the shards disagree on the vocabulary size: {first} has {vocab} tokens, "
                        f"{others[0][0]} {others[0][1]}; keep the shards one tokenizer wrote in one directory")
    return [read_shard(p) for p in paths], vocab, "shards"


class BatchLoader:
    """Batches (x, y), each (B, T) int64, from one split of a token stream (see the module
    docstring). Iterate it, or call next_batch(). vocab_size: the stream's vocabulary."""

    def __init__(self, source, batch_size, context_len, split="train", seed=0, val_frac=0.1,
                 shuffle=None, vocab_size=None, rank=0, ranks=1):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        check_batch(batch_size, ranks)
        self.rank, self.ranks = int(rank), int(ranks)   # data parallelism: see next_batch
        arrays, found_vocab, self.kind = open_tokens(source)
        if self.kind == "shards" and vocab_size and vocab_size != found_vocab:
            raise UserError(f"the token shards in {source} were written for a {found_vocab}-token "
                            f"vocabulary, but the tokenizer has {vocab_size}: pass the tokenizer "
                            "that encoded them (--tokenizer), or re-encode the shards")
        self.vocab_size = vocab_size or found_vocab
        self.B, self.T, self.seed, self.split = int(batch_size), int(context_len), int(seed), split
        self.shuffle = (split == "train") if shuffle is None else shuffle
        total = sum(a.size for a in arrays)
        cut = int(total * (1.0 - val_frac))
        lo, hi = (0, cut) if split == "train" else (cut, total)
        self.pieces, start = [], 0                       # this split's part of each array
        for a in arrays:
            s, e = max(lo, start) - start, min(hi, start + a.size) - start
            if e > s:
                self.pieces.append(a[s:e])
            start += a.size
        self.n_tokens = sum(p.size for p in self.pieces)
        self.epoch, self.pos = 0, 0
        self._load_epoch()
        if self.n_windows == 0:
            where = f" of {source}" if isinstance(source, (str, Path)) else ""
            raise UserError(f"the {split} split{where} has {self.n_tokens} tokens, too few for one "
                            f"window of context_len + 1 = {self.T + 1}; use more data or a shorter context")

    def _load_epoch(self):
        """Window starts for self.epoch: (piece index, offset) arrays in visiting order."""
        T = self.T
        rng = np.random.default_rng([self.seed, self.epoch])
        shift = int(rng.integers(T)) if self.shuffle else 0
        counts = np.array([max(0, (p.size - 1 - shift) // T) for p in self.pieces], dtype=np.int64)
        self.n_windows = int(counts.sum())
        order = rng.permutation(self.n_windows) if self.shuffle else np.arange(self.n_windows)
        piece = np.searchsorted(np.cumsum(counts), order, side="right")   # (n_windows,)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])             # (n_pieces,)
        self._piece = piece
        self._offset = shift + (order - first[piece]) * T                 # (n_windows,)

    def next_batch(self):
        """The next batch of B windows, or with ranks > 1 (data parallelism, dist.py) this
        rank's B / ranks of them: rows [rank * b, (rank + 1) * b) of the batch a single
        loader would give. Every rank steps over all B windows, so (epoch, pos) is the same
        on every rank and in a single process: a checkpoint resumes on any number of ranks."""
        b = self.B // self.ranks
        first = self.rank * b
        x = np.empty((b, self.T), np.int64)                               # (b, T)
        y = np.empty((b, self.T), np.int64)                               # (b, T)
        for i in range(self.B):
            if self.pos == self.n_windows:
                self.epoch, self.pos = self.epoch + 1, 0
                self._load_epoch()
            if first <= i < first + b:                                    # this rank's row
                p, o = self._piece[self.pos], self._offset[self.pos]
                window = self.pieces[p][o:o + self.T + 1]                 # (T + 1,)
                x[i - first] = window[:-1]
                y[i - first] = window[1:]
            self.pos += 1
        return x, y

    def __iter__(self):
        return self

    def __next__(self):
        return self.next_batch()

    def state(self):
        """A JSON-able dict; restore() it into a loader over the same data to continue exactly."""
        return {"epoch": self.epoch, "pos": self.pos, "seed": self.seed, "split": self.split,
                "n_tokens": self.n_tokens, "batch_size": self.B, "context_len": self.T}

    def restore(self, state):
        mine = self.state()
        for key in ("seed", "split", "n_tokens", "context_len"):
            if state.get(key) != mine[key]:
                raise UserError(f"cannot resume the data loader: {key} was {state.get(key)!r}, "
                                f"now {mine[key]!r} (different data or settings)")
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._load_epoch()

    def describe(self):
        """A dict for checkpoints' config.json "data" field."""
        return {"kind": self.kind, "vocab_size": self.vocab_size, "split": self.split,
                "tokens": self.n_tokens, "windows_per_epoch": self.n_windows}
