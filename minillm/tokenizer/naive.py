"""BPE training in its plainest form: count adjacent pairs, merge the most frequent, repeat.

Start here. Text is UTF-8 bytes, so the first 256 tokens are the bytes themselves. The
text is first cut into chunks by a regex (words, numbers, punctuation, whitespace) and a
merge never crosses a chunk boundary. Each round counts every adjacent pair of ids in every
chunk, picks the most frequent (ties go to the smallest pair (a, b)), and replaces it
everywhere by a new id 256 + r. Worked example, one chunk "aaabdaaabac" (a=97 b=98 c=99):

    >>> train_naive("aaabdaaabac", 3, pattern=r".+")
    [(97, 97), (97, 98), (256, 257)]

aa occurs 4 times (overlaps count) -> 256; then "Za b d Za b a c": Za and ab tie at 2 and
(97, 98) < (256, 97) -> 257; then ZY -> 258. Each round rereads the whole text, so this is
for small texts: train.py learns the same merges by updating only the counts a merge
changes, and fast.py runs that in C. tests/tokenizer/test_naive.py checks all three agree.

Read next: bpe.py (encode and decode with the merges), then train.py.
"""
from collections import Counter

import regex


def train_naive(text, n_merges, pattern):
    """Learn up to n_merges merges from text split by the regex `pattern` -> [(a, b), ...]."""
    words = [list(chunk.encode("utf-8")) for chunk in regex.findall(pattern, text)]
    merges = []
    for r in range(n_merges):
        counts = Counter(pair for ids in words for pair in zip(ids, ids[1:]))
        if not counts:
            break                                             # every chunk is one token
        pair = min(counts, key=lambda p: (-counts[p], p))     # most frequent, then smallest
        words = [merge_pair(ids, pair, 256 + r) for ids in words]
        merges.append(pair)
    return merges


def merge_pair(ids, pair, new):
    """Replace each (non-overlapping, left to right) occurrence of pair in ids by new."""
    # exercise: bpe
    out, k = [], 0
    while k < len(ids):
        if k + 1 < len(ids) and (ids[k], ids[k + 1]) == pair:
            out.append(new)
            k += 2
        else:
            out.append(ids[k])
            k += 1
    return out
    # end exercise
