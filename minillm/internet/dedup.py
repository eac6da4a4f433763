"""Exact and near-duplicate removal: a hash of the normalised text, and MinHash LSH.

The web repeats itself: mirrors, syndicated copies with a changed byline, the same page
under two URLs. Two passes, as FineWeb (which ran MinHash per dump):

  exact   documents whose normalised text (lowercase, no punctuation, whitespace
          squeezed) hashes the same: keep the first (exact_duplicates).
  near    MinHash over word 5-gram shingles, 112 hash functions in 14 bands of 8 rows;
          candidates are joined into clusters, each keeps its first document
          (near_duplicates; the band arithmetic is below, by NUM_BANDS).

"First" is a stable order given by the caller -- the pipeline uses (shard, index in
shard) -- so the result does not depend on how work was split among processes. The
hashing is vectorised NumPy: one crc32 per word, then the shingle hashes and all 112
permutations as uint64 array arithmetic.

    python -m minillm.internet.dedup a.txt b.txt ...   # which files duplicate which

Read pii.py next.
"""
import hashlib
import re
import sys
import unicodedata
import zlib

import numpy as np

# Two documents become candidates when all 8 values of any one band agree; with Jaccard
# similarity s of their shingle sets, that happens with probability
#     P(s) = 1 - (1 - s^8)^14        P(0.7) = 0.52, P(0.8) = 0.92, P(0.9) = 1.00
# so the cut sits near s = 0.75. Optionally a candidate pair must also agree in a given
# share of all 112 values: a check FineWeb skips, against chance band collisions between
# very short documents. The pipeline asks for 0.77 (stages.Config): the mini-world holds
# distinct documents sharing 70-79% of their shingles (how-tos with one body and two
# titles) while the crawl's syndicated copies share 82-97%.
NGRAM = 5
NUM_BANDS = 14
ROWS = 8
NUM_HASHES = NUM_BANDS * ROWS            # 112
PRIME = np.uint64(4294967291)            # largest prime < 2^32: (h * a + b) fits in uint64
_MIX = np.uint64(0x9E3779B97F4A7C15)     # odd 64-bit constant for polynomial hashing
_NON_WORD = re.compile(r"[\W_]+")


def normalize(text):
    """Lowercase, NFKC, punctuation -> space, whitespace squeezed. # subtle: datatrove
    also maps every digit to 0; we keep digits, since two worksheets that differ only in
    their numbers are different exercises, not copies."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def exact_key(text):
    """64-bit key of the normalised text (the first 8 bytes of its SHA-1)."""
    return _key_of(normalize(text))


def _key_of(norm):
    digest = hashlib.sha1(norm.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def minhash_params(seed=1):
    """(a, b): the 112 hash functions h -> (a*h + b) mod PRIME, a in [1, PRIME)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, int(PRIME), size=NUM_HASHES, dtype=np.uint64)   # (H,)
    b = rng.integers(0, int(PRIME), size=NUM_HASHES, dtype=np.uint64)   # (H,)
    return a, b


def mix64(x):
    """A 64-bit finaliser (xorshift-multiply) so that similar inputs hash far apart."""
    x = x ^ (x >> np.uint64(31))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    return x ^ (x >> np.uint64(29))


def shingle_hashes(text, n=NGRAM):
    """Unique 32-bit hashes of the word n-grams of the normalised text, (S,) uint64.

    A text shorter than n words is one shingle (all of it)."""
    return _shingles_of(normalize(text).split(), n)


def _shingles_of(words, n=NGRAM):
    if not words:
        return np.zeros(0, dtype=np.uint64)
    w = np.array([zlib.crc32(x.encode("utf-8")) for x in words], dtype=np.uint64)  # (W,)
    k = min(n, len(words))
    s = len(words) - k + 1
    h = np.zeros(s, dtype=np.uint64)                                   # (S,)
    for j in range(k):                    # polynomial hash of k consecutive words, mod 2^64
        h = h * _MIX + w[j:j + s]
    return np.unique(mix64(h) >> np.uint64(32))                       # (S',) in [0, 2^32)


def minhash_signature(text, params, chunk=4096):
    """MinHash signature of a text: (112,) uint32. An empty text gets all-max values."""
    return _signature_of(shingle_hashes(text), params, chunk)


def _signature_of(h, params, chunk=4096):
    """MinHash signature (112,) uint32 of unique shingle hashes h (S,)."""
    # exercise: minhash
    a, b = params
    sig = np.full(NUM_HASHES, np.iinfo(np.uint32).max, dtype=np.uint64)   # (H,)
    for i in range(0, len(h), chunk):     # bounded memory: chunk x 112 uint64 at a time
        perm = (h[i:i + chunk, None] * a[None, :] + b[None, :]) % PRIME    # (chunk, H)
        np.minimum(sig, perm.min(axis=0), out=sig)
    return sig.astype(np.uint32)
    # end exercise


def fingerprint(text, params):
    """(exact_key(text), minhash_signature(text, params)), normalising the text once."""
    norm = normalize(text)
    return _key_of(norm), _signature_of(_shingles_of(norm.split()), params)


def band_keys(sigs):
    """(N, 112) uint32 signatures -> (N, 14) uint64 keys, one per band of 8 rows."""
    # exercise: minhash
    bands = sigs.reshape(len(sigs), NUM_BANDS, ROWS).astype(np.uint64)     # (N, B, R)
    keys = np.zeros(bands.shape[:2], dtype=np.uint64)                      # (N, B)
    for r in range(ROWS):
        keys = keys * _MIX + bands[:, :, r]
    return mix64(keys)
    # end exercise


def _find(parent, i):
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:              # path compression
        parent[i], i = root, parent[i]
    return root


def exact_duplicates(exact):
    """(N,) uint64 exact keys in stable order -> dup_of (N,) int64: the index of the first
    document with the same key, or -1 for a first occurrence."""
    dup_of = np.full(len(exact), -1, dtype=np.int64)                        # (N,)
    first = {}
    for i, key in enumerate(exact.tolist()):
        j = first.setdefault(key, i)
        if j != i:
            dup_of[i] = j
    return dup_of


def near_duplicates(bands, alive=None, sigs=None, min_similarity=0.0):
    """(N, 14) uint64 band keys in stable order -> dup_of (N,) int64: the first document of
    this one's LSH cluster, or -1 when it is the first (or `alive` excludes it).

    Documents whose keys agree in a band are joined to that band's first document (the
    smallest index). With `sigs` (N, 112) and min_similarity > 0, a pair is joined only if
    its signatures also agree in >= min_similarity of all 112 values (the MinHash estimate
    of their Jaccard similarity): a band can collide by chance between short documents,
    which have few shingles."""
    n = len(bands)
    alive = np.arange(n) if alive is None else np.asarray(alive, dtype=np.int64)   # (A,)
    parent = list(range(n))
    for band in range(bands.shape[1] if n else 0):
        keys = bands[alive, band]                                           # (A,)
        order = np.argsort(keys, kind="stable")          # equal keys stay in document order
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])   # group starts
        sizes = np.diff(np.r_[starts, len(order)])
        for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            first = int(alive[order[start]])
            members = alive[order[start + 1:start + size]]                          # (size-1,)
            if min_similarity > 0:
                similar = (sigs[members] == sigs[first]).mean(axis=1) >= min_similarity
                members = members[similar]
            for j in members.tolist():
                ri, rj = _find(parent, first), _find(parent, j)
                if ri != rj:              # union, keeping the smaller index as the root
                    parent[max(ri, rj)] = min(ri, rj)
    dup_of = np.full(n, -1, dtype=np.int64)                                 # (N,)
    for i in alive.tolist():
        root = _find(parent, i)
        if root != i:
            dup_of[i] = root
    return dup_of


def find_duplicates(exact, bands, sigs=None, min_similarity=0.0):
    """Both passes. Returns (dup_of (N,) int64: the kept document this one duplicates, or
    -1 to keep it; kind (N,) int8: 0 kept, 1 exact duplicate, 2 near duplicate)."""
    dup_exact = exact_duplicates(exact)
    dup_near = near_duplicates(bands, np.flatnonzero(dup_exact < 0), sigs, min_similarity)
    kind = np.where(dup_exact >= 0, 1, np.where(dup_near >= 0, 2, 0)).astype(np.int8)  # (N,)
    # An exact copy of a near duplicate points at the document its cluster keeps.
    target = np.where(dup_near[dup_exact] >= 0, dup_near[dup_exact], dup_exact)        # (N,)
    return np.where(dup_exact >= 0, target, dup_near), kind


if __name__ == "__main__":
    texts = [open(p, encoding="utf-8").read() for p in sys.argv[1:]]
    params = minhash_params()
    sigs = np.stack([minhash_signature(t, params) for t in texts])
    dup_of, kind = find_duplicates(np.array([exact_key(t) for t in texts], dtype=np.uint64),
                                   band_keys(sigs))
    for path, d, k in zip(sys.argv[1:], dup_of, kind):
        print(path, ["kept", "exact duplicate of", "near duplicate of"][k], sys.argv[1 + d] if d >= 0 else "")
