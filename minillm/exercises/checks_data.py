"""The checks of the data exercises: a Gopher rule, MinHash and LSH bands, BPE.

Each check(mine, swap) gets the learner's module `mine` and `swap`, a context manager that
puts the learner's functions in place of minillm's wherever minillm holds them. It compares
the learner's answers with minillm's own (called before swapping) on small fixed inputs and
raises grading.Wrong, one line, at the first difference.

    minillm exercise check minhash

Read next: checks_model.py.
"""
import numpy as np

from minillm.exercises.grading import Wrong, as_array, equal
from minillm.internet import dedup, filters
from minillm.tokenizer import naive
from minillm.tokenizer.bpe import Tokenizer

# ---- a Gopher rule -----------------------------------------------------------------------------

PROSE = ("The river runs past the old mill and the market of the town, where people trade "
         "bread, fish and wool with the farmers that have come in from the hills. In winter "
         "the bridge is closed to carts, and the village keeps its music and its history "
         "alive with songs that the children learn at school. Visitors walk along the bank "
         "to the harbour with a guide, and the season ends with a festival in the square.")


def _lines(words, per_line, prefix="", suffix=""):
    return "\n".join(prefix + " ".join(words[i:i + per_line]) + suffix
                     for i in range(0, len(words), per_line))


def gopher_texts():
    """[(text, keyword arguments)]: at least one text per reason of gopher_quality, and passes."""
    words = PROSE.split()
    no_stop = " ".join(w for w in words if w.lower() not in filters.STOP_WORDS) * 2
    cases = [
        (PROSE, {}),                                                        # passes
        (_lines(words, 9), {}),                                             # passes, 8 lines
        (" ".join(words[:20]), {}),                                         # too_few_words
        (" ".join(words[:20]), {"min_words": 10}),
        (PROSE, {"max_words": 40}),                                         # too_many_words
        ("to be or it is a an so up on at by we " * 6, {}),                 # short_mean_word
        ("the and " + "internationalization characteristically " * 30, {}),  # long_mean_word
        (PROSE, {"min_mean_len": 5}),
        (PROSE, {"max_mean_len": 4}),
        (PROSE + " #" * 9, {}),                                             # hash_ratio
        (PROSE + " ..." * 9, {}),                                           # ellipsis_ratio
        (PROSE + " …" * 9, {}),
        (_lines(words, 7, prefix="- "), {}),                                # bullet_lines
        (_lines(words, 7, prefix="• "), {"max_bullet_lines": 1.0}),
        (_lines(words, 12, suffix="..."), {}),                              # ellipsis_lines
        (_lines(words, 12, suffix="…"), {"max_ellipsis_lines": 0.9}),
        (PROSE + " 123 4567 89 1000" * 8, {}),                              # alpha_words
        (no_stop, {}),                                                      # stop_words
        (no_stop, {"stop_words_from": 100}),
        (no_stop, {"stop_words": frozenset(["river", "market"])}),
        (no_stop, {"min_stop_words": 0}),
    ]
    rng = np.random.default_rng(0)
    rare = ["#", "...", "…", "42", "1999", "a", "é", "internationalization"]
    for _ in range(24):                                                     # random mixtures
        toks = [str(rng.choice(rare)) if rng.random() < 0.06 else str(rng.choice(words))
                for _ in range(int(rng.integers(40, 130)))]
        cases.append((_lines(toks, int(rng.integers(3, 15)), prefix="- " if rng.random() < 0.2 else "",
                             suffix="..." if rng.random() < 0.2 else ""), {}))
    return cases


def check_gopher_quality(mine, swap):
    """gopher_quality's reason (or None) equals minillm's on 21 texts that between them fail
    every rule, some with other thresholds (and 24 random mixtures)."""
    for i, (text, kwargs) in enumerate(gopher_texts()):
        want = filters.gopher_quality(text, **kwargs)
        got = mine.gopher_quality(text, **kwargs)
        args = f", {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}" if kwargs else ""
        equal("gopher_quality", got, want, f"text {i}: {text[:40]!r}...{args}")


# ---- MinHash and LSH bands -------------------------------------------------------------------

def _near_copies(rng, n_docs=6):
    """Texts in pairs: a random text and a copy with a few words changed (Jaccard ~0.8-0.9)."""
    vocab = PROSE.lower().replace(",", "").replace(".", "").split()
    texts = []
    for _ in range(n_docs // 2):
        words = list(rng.choice(vocab, 120))
        copy = list(words)
        for k in rng.choice(len(copy), 2, replace=False):
            copy[k] = "changed"
        texts += [" ".join(words), " ".join(copy)]
    return texts


def check_minhash(mine, swap):
    """_signature_of equals minillm's exactly (0, 1, 9 and 300 shingles, chunked by 7); band_keys
    gives (N, 14) keys that agree exactly where a band's 8 values agree (in order), and finds
    the same near duplicates as minillm's."""
    params = dedup.minhash_params(3)
    rng = np.random.default_rng(0)
    for size, chunk in ((0, 4096), (1, 4096), (9, 4096), (300, 7)):
        h = np.unique(rng.integers(0, 2 ** 32, size, dtype=np.uint64))
        want = dedup._signature_of(h, params, chunk)
        got = as_array("the signature", mine._signature_of(h, params, chunk), want.shape)
        equal("the signature", got.astype(np.int64), want.astype(np.int64),
              f"{len(h)} shingle hashes, chunk {chunk}")
    B, R = dedup.NUM_BANDS, dedup.ROWS
    sigs = rng.integers(0, 2 ** 32, (5, B * R), dtype=np.uint64).astype(np.uint32)
    sigs[1] = sigs[0]                                      # identical signatures
    sigs[2, 3 * R:4 * R] = sigs[0, 3 * R:4 * R]            # band 3 shared only
    sigs[3] = sigs[0]
    sigs[3, [5 * R, 5 * R + 1]] = sigs[0, [5 * R + 1, 5 * R]]   # band 5: two rows swapped
    keys = as_array("band_keys(sigs)", mine.band_keys(sigs), (5, B))
    again = as_array("band_keys", mine.band_keys(sigs[2:3].copy()), (1, B))
    if not np.array_equal(again[0], keys[2]):
        raise Wrong("band_keys gives a signature other keys when it comes alone: a key must "
                    "depend on its own row only")
    if not np.array_equal(keys[0], keys[1]):
        raise Wrong("band_keys gives two identical signatures different keys")
    shared = keys[0] == keys[2]
    if not shared[3] or shared.sum() != 1:
        raise Wrong(f"two signatures that share only band 3 have equal keys in bands "
                    f"{np.flatnonzero(shared).tolist()}, expected [3]")
    if keys[3, 5] == keys[0, 5]:
        raise Wrong("band_keys ignores the order of a band's values (two swapped values give "
                    "the same key): each row is a different hash function")
    texts = _near_copies(rng)
    sig = np.stack([dedup.minhash_signature(t, params) for t in texts])
    want = dedup.near_duplicates(dedup.band_keys(sig))
    got = dedup.near_duplicates(as_array("band_keys", mine.band_keys(sig), (len(texts), B)))
    equal("near_duplicates with your band keys", got, want, "documents 2k and 2k+1 are near copies")


# ---- BPE: a merge step and encode -------------------------------------------------------------

BPE_TEXT = ("the cat sat on the mat; the rat and the cat ate the oat. " * 6
            + "aaabdaaabac 12345 1234 hello, world! héllo wörld ") * 2
ENCODE_TEXTS = ["the cat sat", "aaabdaaabac", "", "a", " the  rat,  the mat!\n", "héllo 1234567",
                "ccccccc thethethe", "zzz unseen words 🙂"]
MERGE_CASES = [([1, 2, 3, 1, 2], (1, 2), 9), ([5, 5, 5], (5, 5), 7), ([5, 5, 5, 5], (5, 5), 7),
               ([], (1, 2), 9), ([1], (1, 2), 9), ([2, 1], (1, 2), 9), ([1, 2], (1, 2), 300),
               ([3, 1, 2, 1, 2, 2, 1], (2, 1), 8), ([4, 4, 4, 4, 4], (4, 4), 6)]


def _relabelled(merges):
    """A tokenizer layout other than ours (as an imported vocabulary has): byte b -> id
    (b + 7) % 256 + 1000, merge r -> id 2000 + 3r. Returns (Tokenizer, id map)."""
    byte_ids = [(b + 7) % 256 + 1000 for b in range(256)]
    merge_ids = [2000 + 3 * r for r in range(len(merges))]

    def to_new(i):
        return byte_ids[i] if i < 256 else merge_ids[i - 256]

    specials = {"<|bos|>": 5000}
    tok = Tokenizer([(to_new(a), to_new(b)) for a, b in merges], "gpt4", specials,
                    byte_ids=byte_ids, merge_ids=merge_ids, use_c=False)
    return tok, to_new


def check_bpe(mine, swap):
    """merge_pair equals minillm's on 9 cases (overlaps, ends, no match) without changing its
    input, and train_naive learns the same merges with it; Tokenizer.encode_ordinary gives
    minillm's ids with your _encode_chunk, in our id layout and in a relabelled one."""
    for ids, pair, new in MERGE_CASES:
        before = list(ids)
        got = mine.merge_pair(ids, pair, new)
        if ids != before:
            raise Wrong(f"merge_pair({before}, {pair}, {new}) changed its input list; return a new list")
        equal(f"merge_pair({ids}, {pair}, {new})", got, naive.merge_pair(ids, pair, new))
    pattern = r"""'(?:[sdmt]|ll|ve|re)| ?\w+| ?\d+| ?[^\s\w]+|\s+"""
    merges = naive.train_naive(BPE_TEXT, 40, pattern)
    with swap():
        equal("train_naive's merges with your merge_pair", naive.train_naive(BPE_TEXT, 40, pattern), merges)
    ref = Tokenizer(merges, "gpt4", use_c=False)
    want = [ref.encode_ordinary(t) for t in ENCODE_TEXTS]
    relabelled, to_new = _relabelled(merges)
    with swap():
        tok = Tokenizer(merges, "gpt4", use_c=False)
        got = [tok.encode_ordinary(t) for t in ENCODE_TEXTS]
        got_new = [relabelled.encode_ordinary(t) for t in ENCODE_TEXTS]
    for text, g, w, gn in zip(ENCODE_TEXTS, got, want, got_new):
        equal(f"encode_ordinary({text!r})", g, w)
        equal(f"encode_ordinary({text!r}) with byte_ids and merge_ids of another layout", gn,
              [to_new(i) for i in w])
