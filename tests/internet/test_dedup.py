"""Exact and MinHash-LSH deduplication (minillm/internet/dedup.py).

Run: python -m pytest tests/internet/test_dedup.py
"""
import itertools
import string
import warnings
import zlib

import numpy as np
import pytest

from minillm.internet import dedup

VOCAB = np.array(["".join(p) for p in itertools.islice(itertools.product(string.ascii_lowercase, repeat=4), 20000)])


def random_doc(rng, n=300):
    return " ".join(rng.choice(VOCAB, n))


def edit(rng, text, frac):
    """Replace a fraction of the words at random positions."""
    words = text.split()
    for i in rng.choice(len(words), int(frac * len(words)), replace=False):
        words[i] = str(rng.choice(VOCAB))
    return " ".join(words)


def test_normalize_and_exact_key():
    assert dedup.normalize("Hello,   WORLD!\n It's 2024.") == "hello world it s 2024"
    a = dedup.exact_key("The cat sat.\nOn the mat!")
    assert a == dedup.exact_key("the cat  sat on the MAT")
    assert a != dedup.exact_key("the cat sat on a mat")
    assert dedup.exact_key("What is 930 - 387?") != dedup.exact_key("What is 828 - 655?")
    params = dedup.minhash_params()
    text = "Café ﬁne, the ＣＡＴ sat.\nOn the mat! " * 3    # NFKC folds the ligature and full-width letters
    key, sig = dedup.fingerprint(text, params)
    assert key == dedup.exact_key(text) and np.array_equal(sig, dedup.minhash_signature(text, params))


def minhash_slow(text, params):
    """Pure-Python MinHash with the same shingle hashes: the NumPy version must match it."""
    a, b = (x.tolist() for x in params)
    words = dedup.normalize(text).split()
    w = [zlib.crc32(x.encode()) for x in words]
    k = min(dedup.NGRAM, len(words))
    shingles = set()
    for i in range(len(words) - k + 1):
        h = 0
        for j in range(k):
            h = (h * int(dedup._MIX) + w[i + j]) % 2**64
        h ^= h >> 31
        h = (h * 0xBF58476D1CE4E5B9) % 2**64
        h ^= h >> 29
        shingles.add(h >> 32)
    p = int(dedup.PRIME)
    return [min((ai * s + bi) % p for s in shingles) for ai, bi in zip(a, b)]


def test_vectorised_minhash_matches_pure_python(rng):
    params = dedup.minhash_params(seed=3)
    for text in ["one two three", random_doc(rng, 57), "Short, but: punctuated! text with 7 words"]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")        # no overflow warnings from uint64 math
            sig = dedup.minhash_signature(text, params, chunk=16)   # chunking must not matter
        assert sig.dtype == np.uint32 and sig.shape == (dedup.NUM_HASHES,)
        assert sig.tolist() == minhash_slow(text, params)


def jaccard(text_a, text_b):
    """Exact Jaccard similarity of two texts' shingle sets."""
    a, b = set(dedup.shingle_hashes(text_a).tolist()), set(dedup.shingle_hashes(text_b).tolist())
    return len(a & b) / max(len(a | b), 1)


def test_signature_estimates_jaccard(rng):
    params = dedup.minhash_params()
    base = random_doc(rng)
    for frac in (0.02, 0.05, 0.1):
        other = edit(rng, base, frac)
        true = jaccard(base, other)
        est = np.mean(dedup.minhash_signature(base, params) == dedup.minhash_signature(other, params))
        # std of the estimate is sqrt(J(1-J)/112) <= 0.047; allow 3.5 sigma
        assert abs(est - true) < 0.165, (frac, true, est)


def test_lsh_finds_near_duplicates_and_not_distinct_pages(rng):
    params = dedup.minhash_params()
    originals = [random_doc(rng) for _ in range(60)]
    near = [edit(rng, t, 0.01) for t in originals[:30]]              # Jaccard ~0.9
    far = [edit(rng, t, 0.25) for t in originals[30:40]]             # Jaccard ~0.15
    docs = originals + near + far
    sigs = np.stack([dedup.minhash_signature(t, params) for t in docs])   # (N, 112)
    exact = np.array([dedup.exact_key(t) for t in docs], dtype=np.uint64)
    dup_of, kind = dedup.find_duplicates(exact, dedup.band_keys(sigs))
    assert np.all(kind[:60] == 0) and np.all(kind[90:] == 0)
    assert (dup_of[60:90] == np.arange(30)).mean() >= 0.9            # P(J=0.9) = 1.00 in theory
    assert np.all(kind[60:90][dup_of[60:90] >= 0] == 2)


def test_find_duplicates_keeps_first_in_stable_order():
    # docs 0..5; exact keys: 3 repeats 1; band keys: 0~2 share band 0, 2~4 share band 5,
    # 5 repeats 4 exactly (so it points at 4's cluster root, 0)
    exact = np.array([10, 11, 12, 11, 14, 14], dtype=np.uint64)
    bands = np.arange(6 * 14, dtype=np.uint64).reshape(6, 14) + 1000
    bands[2, 0] = bands[0, 0]
    bands[4, 5] = bands[2, 5]
    dup_of, kind = dedup.find_duplicates(exact, bands)
    assert kind.tolist() == [0, 0, 2, 1, 2, 1]
    assert dup_of.tolist() == [-1, -1, 0, 1, 0, 0]       # clusters are transitive, root = first


def test_band_keys_shape_and_band_locality():
    sigs = np.arange(3 * 112, dtype=np.uint32).reshape(3, 112)
    sigs[1, 8:16] = sigs[0, 8:16]                      # band 1 equal between doc 0 and 1
    keys = dedup.band_keys(sigs)
    assert keys.shape == (3, 14) and keys.dtype == np.uint64
    assert (keys[0] == keys[1]).tolist() == [i == 1 for i in range(14)]


@pytest.mark.parametrize("text", ["", "   ", "one", "two words"])
def test_short_and_empty_texts(text):
    params = dedup.minhash_params()
    sig = dedup.minhash_signature(text, params)
    assert sig.shape == (112,)
    assert np.all(sig == sig[0]) == (not text.strip())   # empty: no shingles, all max
    key, same = dedup.fingerprint(text, params)          # the pipeline's one-pass version
    assert key == dedup.exact_key(text) and np.array_equal(same, sig)


def test_signature_check_rejects_chance_band_collisions():
    # docs 1 and 2 share band 3 with doc 0; doc 1's signature agrees with doc 0's in 100
    # of 112 values (a real near duplicate), doc 2's in 8 only (a chance collision)
    rng = np.random.default_rng(5)
    sigs = rng.integers(0, 2**32, size=(3, 112), dtype=np.uint64).astype(np.uint32)
    sigs[1, :100] = sigs[0, :100]
    sigs[2, 24:32] = sigs[0, 24:32]
    bands = dedup.band_keys(sigs)
    assert bands[2, 3] == bands[0, 3] and bands[1, 3] == bands[0, 3]
    assert dedup.near_duplicates(bands).tolist() == [-1, 0, 0]
    assert dedup.near_duplicates(bands, sigs=sigs, min_similarity=0.7).tolist() == [-1, 0, -1]
