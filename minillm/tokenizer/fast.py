"""The tokenizer's C fast path (csrc/bpe_split.c, bpe.c, bpe_train.c): pre-split, merge, train.

bpe.py's Tokenizer and train.py use this module when the C extension is loaded and their
pure-Python twins otherwise (or with MINILLM_NO_C=1): `available()` is the one rule, asked
once per Tokenizer or training run. tests/tokenizer/test_fast.py checks that both paths give
identical chunks, ids and merges.

The C pre-splitter matches GPT-4's and GPT-2's patterns by hand. It needs to know, for
every code point, whether it is a letter (\\p{L}), a number (\\p{N}) or whitespace (\\s);
`class_table()` asks the `regex` package itself, once per process, so the C split agrees
with the Python split by construction.

Threads: every C call releases the GIL, and each thread gets its own chunk cache, so
`encode_docs` called from several threads runs in parallel.

Read next: interop.py (tiktoken, Hugging Face and GPT-2's files), then cli.py.
"""
import threading

import numpy as np
import regex

from minillm.clib import _load

PATTERN_CODES = {"gpt4": 1, "gpt2": 2}      # the patterns csrc/bpe_split.c matches by hand
_state = {"table": None, "table_ptr": None}
_lock = threading.Lock()


def available():
    """True when the C extension is loaded (not disabled by MINILLM_NO_C=1)."""
    return _load()[1] is not None


def class_table():
    """uint8 array over all code points: 1 = \\p{L}, 2 = \\p{N}, 4 = \\s (per `regex`)."""
    with _lock:
        if _state["table"] is None:
            cps = np.arange(0x110000, dtype=np.uint32)  # (0x110000,)
            cps[0xD800:0xE000] = 0                       # surrogates: not valid UTF-32; class 0 anyway
            every = cps.tobytes().decode("utf-32-le")
            table = np.zeros(0x110000, dtype=np.uint8)   # (0x110000,)
            for bit, prop in ((1, r"\p{L}+"), (2, r"\p{N}+"), (4, r"\s+")):
                for m in regex.finditer(prop, every):
                    table[m.start():m.end()] |= bit
            table[0] = 0                                 # U+0000 stood in for the surrogates
            table[0xD800:0xE000] = 0
            ffi, _ = _load()
            # the pointer first: _table_ptr reads both without the lock once "table" is set
            _state["table_ptr"] = ffi.from_buffer("unsigned char[]", table) if ffi else None
            _state["table"] = table
    return _state["table"]


def _table_ptr():
    if _state["table"] is None:         # built once; later calls (every encode) skip the lock
        class_table()
    return _state["table_ptr"], len(_state["table"])


def _ends_of(chunks):
    """Byte chunks -> (joined bytes, int64 end offsets)."""
    # subtle: np.cumsum of a Python list costs ~4 us even for one document (encode's case)
    ends = np.fromiter(map(len, chunks), np.int64, count=len(chunks)).cumsum()  # (n_chunks,)
    return b"".join(chunks), ends


def split(data, pattern):
    """Split UTF-8 bytes with the C pre-splitter; returns the list of byte chunks."""
    ffi, lib = _load()
    if not data:
        return []
    ends = np.empty(len(data), dtype=np.int64)  # (n,) capacity: one chunk per byte at most
    table, n_class = _table_ptr()
    k = lib.bpe_split(ffi.from_buffer("long long[]", ends, require_writable=True),
                      ffi.from_buffer("unsigned char[]", data), len(data),
                      PATTERN_CODES[pattern], table, n_class)
    bounds = [0] + ends[:k].tolist()
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


class FastModel:
    """A C merge table for one tokenizer, plus a chunk cache per thread."""

    def __init__(self, byte_ids, merges, merge_ids, pattern_name):
        ffi, lib = _load()
        self.ffi, self.lib = ffi, lib
        self.pattern = PATTERN_CODES.get(pattern_name, 0)   # 0: split in Python first
        byte_ids = np.ascontiguousarray(byte_ids, dtype=np.int32)  # (256,)
        pairs = np.ascontiguousarray(np.asarray(merges, dtype=np.int32).reshape(-1, 2))  # (M, 2)
        new_ids = np.ascontiguousarray(merge_ids, dtype=np.int32)  # (M,)
        ptr = lib.bpe_model_new(ffi.from_buffer("int[]", byte_ids), ffi.from_buffer("int[]", pairs)
                                if len(pairs) else ffi.NULL,
                                ffi.from_buffer("int[]", new_ids) if len(new_ids) else ffi.NULL,
                                len(new_ids))
        if ptr == ffi.NULL:
            raise MemoryError("out of memory building the BPE merge table")
        self.model = ffi.gc(ptr, lib.bpe_model_free)
        self._local = threading.local()

    def _cache(self):
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = self.ffi.gc(self.lib.bpe_cache_new(), self.lib.bpe_cache_free)
            if cache == self.ffi.NULL:
                raise MemoryError("out of memory allocating the chunk cache")
            self._local.cache = cache
        return cache

    def encode_docs(self, docs):
        """UTF-8 documents (list of bytes), each split with this model's pattern -> list of id lists."""
        ffi, lib = self.ffi, self.lib
        data, doc_ends = _ends_of(docs)
        if not data:
            return [[] for _ in docs]
        out = np.empty(len(data), dtype=np.int32)        # (n_bytes,) ids never outnumber bytes
        out_ends = np.empty(len(docs), dtype=np.int64)   # (n_docs,)
        table, n_class = _table_ptr()
        n = lib.bpe_encode(ffi.from_buffer("int[]", out, require_writable=True),
                           ffi.from_buffer("long long[]", out_ends, require_writable=True),
                           self.model, self._cache(), ffi.from_buffer("unsigned char[]", data),
                           ffi.from_buffer("long long[]", doc_ends), len(docs),
                           self.pattern, table, n_class)
        if n < 0:
            raise MemoryError("out of memory while encoding")
        if len(docs) == 1:
            return [out[:n].tolist()]
        bounds = [0] + out_ends.tolist()
        return [out[a:b].tolist() for a, b in zip(bounds, bounds[1:])]

    def encode_chunks(self, chunks):
        """Pre-split byte chunks (custom patterns) -> one list of ids."""
        ffi, lib = self.ffi, self.lib
        data, ends = _ends_of(chunks)
        if not data:
            return []
        out = np.empty(len(data), dtype=np.int32)  # (n_bytes,)
        n = lib.bpe_encode_chunks(ffi.from_buffer("int[]", out, require_writable=True), self.model,
                                  self._cache(), ffi.from_buffer("unsigned char[]", data),
                                  ffi.from_buffer("long long[]", ends), len(ends))
        if n < 0:
            raise MemoryError("out of memory while encoding")
        return out[:n].tolist()


class FastTrainer:
    """Distinct-chunk counts and the incremental merge loop in C (see csrc/bpe_train.c)."""

    _ERRORS = {-1: "out of memory while training the tokenizer",
               -2: "chunks were added after merging began",
               -3: "a pre-split chunk is over 2 GB"}

    def __init__(self):
        self.ffi, self.lib = _load()
        self.ptr = self.ffi.gc(self.lib.bpe_trainer_new(), self.lib.bpe_trainer_free)

    def _check(self, code):
        if code < 0:
            raise (MemoryError if code == -1 else ValueError)(self._ERRORS.get(code, f"error {code}"))

    def count_docs(self, docs, pattern):
        """Split UTF-8 documents (list of bytes) with a named pattern and count their chunks."""
        ffi = self.ffi
        data, ends = _ends_of(docs)
        if not data:
            return
        table, n_class = _table_ptr()
        self._check(self.lib.bpe_trainer_count(self.ptr, ffi.from_buffer("unsigned char[]", data),
                                               ffi.from_buffer("long long[]", ends), len(docs),
                                               PATTERN_CODES[pattern], table, n_class))

    def add_counts(self, counts):
        """Add {chunk bytes: count} split elsewhere (custom patterns)."""
        if not counts:
            return
        ffi = self.ffi
        data, ends = _ends_of(list(counts))
        weights = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))  # (n,)
        self._check(self.lib.bpe_trainer_add(self.ptr, ffi.from_buffer("unsigned char[]", data),
                                             ffi.from_buffer("long long[]", ends),
                                             ffi.from_buffer("long long[]", weights), len(ends)))

    def num_chunks(self):
        return self.lib.bpe_trainer_num_chunks(self.ptr)

    def merge(self, n):
        """Learn up to n more merges -> (list of (a, b), list of counts)."""
        ffi = self.ffi
        pairs = np.empty((max(n, 1), 2), dtype=np.int32)  # (n, 2)
        counts = np.empty(max(n, 1), dtype=np.int64)      # (n,)
        done = self.lib.bpe_trainer_merge(self.ptr, ffi.from_buffer("int[]", pairs, require_writable=True),
                                          ffi.from_buffer("long long[]", counts, require_writable=True), n)
        self._check(done)
        return [tuple(p) for p in pairs[:done].tolist()], counts[:done].tolist()
