"""Learning BPE merges fast: naive.py's loop, with the work of each merge made incremental.

    train_tokenizer(Path("corpus.txt"), vocab_size=1024) -> a Tokenizer
    minillm tokenizer train --input corpus.txt --vocab-size 1024 --out runs/demo/tokenizer.json

1. Count. Documents are pre-split and only the distinct chunks are kept, each with how
   often it occurs, so memory follows the chunk vocabulary, not the corpus. Files are read
   in 1 MB blocks cut just after a newline with non-space characters on both sides: for
   GPT-4's and GPT-2's patterns no chunk spans such a cut (tests check this).
2. Merge. count[(a, b)] is the weighted number of adjacent (a, b) in all distinct chunks,
   where[(a, b)] the chunks that contain it. A merge rewrites only where[(a, b)] and
   updates the counts around it, and the best pair comes from a heap with lazy updates.
   Tie-break as in naive.py: highest count first, then the smallest pair (a, b).

csrc/bpe_train.c (through fast.py) runs both phases in C, single-threaded;
train_merges_py is its Python twin. Both give naive.py's merges (tests/tokenizer/test_naive.py).

Read next: fast.py.
"""
import codecs
import gzip
import heapq
import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

import regex
from tqdm import tqdm

from minillm.common import UserError
from minillm.tokenizer import fast
from minillm.tokenizer.bpe import SPECIAL_TOKENS, Tokenizer, clean_text, resolve_pattern, split_text
from minillm.tokenizer.naive import merge_pair

BLOCK_BYTES = 1 << 20          # file read size
BATCH_BYTES = 1 << 20          # documents handed to C per call
MAX_CARRY = 1 << 26            # a block with no safe cut is carried over up to this size
_SAFE_CUT = regex.compile(r"(?<=\S\n)(?=\S)", flags=regex.REVERSE)   # finds the last one


# ---- reading documents ---------------------------------------------------------------

def _text_blocks(path, block_bytes):
    """Yield (text, bytes read) blocks of a UTF-8 file (bad bytes -> U+FFFD), cut at safe newlines."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    carry = ""
    with open(path, "rb") as f:
        while True:
            raw = f.read(block_bytes)
            text = carry + decoder.decode(raw, final=not raw)
            if not raw:
                if text:
                    yield text, 0
                return
            m = _SAFE_CUT.search(text)
            if m is None and len(text) < MAX_CARRY:
                carry = text
                yield "", len(raw)
                continue
            cut = m.start() if m else len(text)
            yield text[:cut], len(raw)
            carry = text[cut:]


def _jsonl_documents(path):
    """Yield (text, bytes) for each line {"text": ...} of a .jsonl or .jsonl.gz file."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{path}:{n} is not a JSON object with a \"text\" field") from None
            yield str(text), len(line)


def iter_documents(source, block_bytes=BLOCK_BYTES):
    """Yield (document text, bytes consumed) from a str, bytes, Path, or an iterable of those.
    Text files come in blocks (see the module docstring); .jsonl(.gz) files one line each."""
    if isinstance(source, (str, bytes, os.PathLike)):
        source = [source]
    for item in source:
        if isinstance(item, str):
            yield item, len(item)
        elif isinstance(item, bytes):
            yield item.decode("utf-8", errors="replace"), len(item)
        elif isinstance(item, os.PathLike):
            path = Path(item)
            if not path.is_file():
                raise UserError(f"input file not found: {path}")
            if path.name.endswith((".jsonl", ".jsonl.gz")):
                yield from _jsonl_documents(path)
            else:
                yield from _text_blocks(path, block_bytes)
        else:
            raise UserError(f"cannot train on a {type(item).__name__}: pass str documents or "
                            "pathlib.Path files")


def _known_size(source):
    items = [source] if isinstance(source, (str, bytes, os.PathLike)) else source
    if not isinstance(items, (list, tuple)):
        return None
    total = 0
    for i in items:
        if isinstance(i, os.PathLike):
            total += os.path.getsize(i) if os.path.isfile(i) else 0
        elif isinstance(i, (str, bytes)):
            total += len(i)
    return total


# ---- phase 1: distinct chunks --------------------------------------------------------

class ChunkCounter:
    """Counts distinct pre-split chunks, in C (named patterns: split in C too) or Python."""

    def __init__(self, pattern, pattern_name, use_c):
        self.split = lambda text: split_text(self.compiled, text, pattern_name)
        self.compiled = regex.compile(pattern)
        self.name = pattern_name
        self.trainer = None
        if use_c:
            self.trainer = fast.FastTrainer()
        self.counts = Counter()            # str chunk -> count (Python split)
        self.batch, self.batch_bytes, self.total_bytes = [], 0, 0

    def add(self, text):
        data = clean_text(text)
        self.total_bytes += len(data)
        if self.trainer is not None and self.name:
            self.batch.append(data)
            self.batch_bytes += len(data)
            if self.batch_bytes >= BATCH_BYTES:
                self.flush()
        else:
            self.counts.update(self.split(data.decode("utf-8")))

    def flush(self):
        if self.trainer is not None and self.batch:
            self.trainer.count_docs(self.batch, self.name)
            self.batch, self.batch_bytes = [], 0

    def finish(self):
        """-> the C trainer, or {chunk bytes: count} for the Python merge loop."""
        self.flush()
        counts = {c.encode("utf-8"): n for c, n in self.counts.items()}
        self.counts = Counter()
        if self.trainer is not None:
            self.trainer.add_counts(counts)
            return self.trainer
        return counts


# ---- phase 2: merges (the Python twin of csrc/bpe_train.c) ----------------------------

def train_merges_py(chunk_counts, n_merges, on_merge=None):
    """{chunk bytes: count} -> (merges [(a, b), ...], counts at merge time).
    Merge r makes token 256 + r. Highest count first, ties to the smallest (a, b)."""
    words = [list(chunk) for chunk in chunk_counts]        # each word: its current ids
    weight = list(chunk_counts.values())
    count = defaultdict(int)                                # pair -> weighted occurrences
    where = defaultdict(set)                                # pair -> words that contain it
    for w, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            count[pair] += weight[w]
            where[pair].add(w)
    heap = [(-c, pair) for pair, c in count.items() if c > 0]   # min-heap of (-count, pair)
    heapq.heapify(heap)
    merges, merge_counts = [], []
    while len(merges) < n_merges and heap:
        neg, pair = heapq.heappop(heap)
        if count[pair] != -neg:                             # stale: requeue at the true count
            if count[pair] > 0:
                heapq.heappush(heap, (-count[pair], pair))
            continue
        new = 256 + len(merges)
        merges.append(pair)
        merge_counts.append(-neg)
        touched = set()
        for w in where.pop(pair):
            ids = words[w]
            if pair not in zip(ids, ids[1:]):
                continue                                    # merged away by an earlier merge
            for p in zip(ids, ids[1:]):
                count[p] -= weight[w]
            words[w] = ids = merge_pair(ids, pair, new)
            for p in zip(ids, ids[1:]):
                count[p] += weight[w]
                if new in p:
                    where[p].add(w)
                    touched.add(p)
        for p in touched:                                   # only pairs with `new` grew
            heapq.heappush(heap, (-count[p], p))
        if on_merge:
            on_merge()
    return merges, merge_counts


# ---- the whole thing -----------------------------------------------------------------

def train_tokenizer(source, vocab_size, pattern="gpt4", *, special_tokens=None, progress=False,
                    use_c=None, block_bytes=BLOCK_BYTES):
    """Train a Tokenizer with vocab_size ids in all: 256 bytes + merges + special tokens.

    source: a str (one document), a pathlib.Path (a text or .jsonl(.gz) file), or an
    iterable of those (see iter_documents). pattern: "gpt4", "gpt2" or a regex.
    progress: show tqdm bars.
    use_c: True / False forces the C or the Python trainer; None picks C when built.
    The result's .training dict has the run's statistics. If the text runs out of pairs
    first, fewer merges are learned and vocab_size is smaller (the statistics say so).
    """
    specials = list(SPECIAL_TOKENS if special_tokens is None else special_tokens)
    n_merges = int(vocab_size) - 256 - len(specials)
    if n_merges < 0:
        raise UserError(f"vocab size {vocab_size} is too small: it must hold the 256 bytes and "
                        f"{len(specials)} special tokens (at least {256 + len(specials)})")
    pattern, name = resolve_pattern(pattern)
    if use_c and not fast.available():
        raise RuntimeError("the C trainer was requested but the extension is not built")
    use_c = fast.available() if use_c is None else use_c
    t0 = time.perf_counter()
    counter = ChunkCounter(pattern, name, use_c)
    with tqdm(total=_known_size(source), unit="B", unit_scale=True, desc="counting chunks",
              disable=not progress) as bar:
        for text, n in iter_documents(source, block_bytes):
            if text:
                counter.add(text)
            bar.update(n)
    counted = counter.finish()
    t1 = time.perf_counter()
    with tqdm(total=n_merges, desc="merging", unit="merge", disable=not progress) as bar:
        if use_c:
            chunks = counted.num_chunks()
            merges, counts = [], []
            while len(merges) < n_merges:
                got, got_counts = counted.merge(min(256, n_merges - len(merges)))
                merges += got
                counts += got_counts
                bar.update(len(got))
                if not got:
                    break
        else:
            chunks = len(counted)
            merges, counts = train_merges_py(counted, n_merges, on_merge=lambda: bar.update(1))
    tok = Tokenizer(merges, pattern, {s: 256 + len(merges) + i for i, s in enumerate(specials)},
                    use_c=use_c)
    tok.training = {"bytes": counter.total_bytes, "distinct_chunks": chunks,
                    "merges": len(merges), "merges_requested": n_merges,
                    "last_merge_count": counts[-1] if counts else None,
                    "count_seconds": round(t1 - t0, 3),
                    "merge_seconds": round(time.perf_counter() - t1, 3),
                    "trainer": "C" if use_c else "Python"}
    return tok
