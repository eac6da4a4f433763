"""The filtering stages of the cleaning pipeline: the URL blocklist and the quality rules.

Each rule set is one function `text -> reason or None` (None: the document passes), its
thresholds keyword defaults taken from the paper that published them; each function's
docstring says which rules and where from:

    url_filter           FineWeb's URL filter (banned domains, words, sub-words)
    gopher_repetition    Gopher's repeated lines, paragraphs and n-grams
    gopher_quality       Gopher's word counts, lengths, symbols and stop words
    c4_quality           C4's line and document rules (rewrites the text)
    fineweb_quality      FineWeb's line rules

The pipeline runs every rule with its published thresholds. A mini-world document is
short, but the crawl bundles several on a page, so pages are several hundred words as on
the real web. Other parameters remain for experiments, e.g. fineweb_quality(text,
short_line_max=None) turns the short-line rule off. `python -m minillm.internet.filters
page.txt` prints the first rule that removes a file. Read dedup.py next.
"""
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from minillm.common import UserError, data_path

# ---------------------------------------------------------------------------- URL filter

URL_LIST_FILES = ("banned_words.txt", "soft_banned_words.txt", "banned_subwords.txt")
_URL_SPLIT = re.compile(r"[^a-z0-9]+")


@dataclass
class UrlLists:
    banned_domains: frozenset    # "casino.example": bans it and every subdomain
    banned_words: frozenset      # one of the URL's tokens is banned
    soft_banned_words: frozenset  # `soft_threshold` or more of the URL's tokens are soft-banned
    banned_subwords: frozenset   # appears anywhere in the URL squashed to [a-z0-9]
    source: str                  # where the word lists came from (for the report)


def _read_list(path):
    """One entry a line; '#' starts a comment line; entries normalised like URL tokens."""
    if not path.is_file():
        return frozenset()
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(w for w in (ln.strip().lower() for ln in lines) if w and not w.startswith("#"))


def check_url_filter(word_dir):
    """UserError unless `word_dir` (a --url-filter value; None: the default search) holds
    the three word lists. A wrong path is a mistake, never a silent fall back."""
    if word_dir is None:
        return
    missing = [f for f in URL_LIST_FILES if not (Path(word_dir) / f).is_file()]
    if not Path(word_dir).is_dir():
        raise UserError(f"--url-filter {word_dir}: no such directory (give one holding {', '.join(URL_LIST_FILES)})")
    if missing:
        raise UserError(f"--url-filter {word_dir}: missing {', '.join(missing)}")


def load_url_lists(word_dir=None, extra_domains=()):
    """FineWeb's word lists from `word_dir` (default $MINILLM_URL_FILTER), else our small
    lists in data/url-filter. Banned domains come
    from data/url-filter/banned_domains.txt plus `extra_domains`. A `word_dir` without the
    lists is a UserError (check_url_filter)."""
    check_url_filter(word_dir)
    candidates = [word_dir, os.environ.get("MINILLM_URL_FILTER")]
    words = next((Path(d) for d in candidates if d and (Path(d) / "banned_words.txt").is_file()), None)
    ours = data_path("url-filter")
    words = words or ours
    squash = lambda ws: frozenset(_URL_SPLIT.sub("", w) for w in ws) - {""}
    return UrlLists(
        banned_domains=_read_list(ours / "banned_domains.txt") | {d.lower() for d in extra_domains},
        banned_words=squash(_read_list(words / "banned_words.txt")),
        soft_banned_words=squash(_read_list(words / "soft_banned_words.txt")),
        banned_subwords=squash(_read_list(words / "banned_subwords.txt")),
        source=str(words),
    )


def url_filter(url, lists, soft_threshold=2):
    """Reason the URL is blocked ("banned_domain", "banned_word", "soft_banned_words",
    "banned_subword"), or None. FineWeb (Penedo et al. 2024, sec. 3.1): a banned domain or
    subdomain, a banned word among the URL's tokens, `soft_threshold` or more soft-banned
    words, or a banned sub-word anywhere in the URL squashed to [a-z0-9]."""
    host = (urlsplit(url).hostname or "").lower()
    labels = host.split(".")
    if any(".".join(labels[i:]) in lists.banned_domains for i in range(len(labels))):
        return "banned_domain"
    tokens = set(_URL_SPLIT.split(url.lower()))
    if tokens & lists.banned_words:
        return "banned_word"
    if len(tokens & lists.soft_banned_words) >= soft_threshold:
        return "soft_banned_words"
    squashed = _URL_SPLIT.sub("", url.lower())
    if any(w in squashed for w in lists.banned_subwords):
        return "banned_subword"
    return None


# ---------------------------------------------------------------------------- words

# A word is a run of letters/digits (with inner apostrophes); punctuation marks are tokens
# of their own, as nltk's word_tokenize (which datatrove uses) makes them.
_TOKENS = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_PARAGRAPHS = re.compile(r"\n{2,}")
_POLY = np.uint64(1000003)


def words_of(text):
    """Tokens of `text`: words and single punctuation marks."""
    return _TOKENS.findall(text)


def _is_word(tok):
    return tok[0].isalnum() or tok[0] == "_"


# ---------------------------------------------------------------------------- Gopher repetition

def _duplicates(items):
    """(number of repeated items, characters in repeated items), first occurrences excluded."""
    seen, dup_items, dup_chars = set(), 0, 0
    for x in items:
        if x in seen:
            dup_items += 1
            dup_chars += len(x)
        else:
            seen.add(x)
    return dup_items, dup_chars


def _word_ids(words):
    """(ids (W,) uint64, character offsets (W+1,) int64) of a token list, computed once per
    document for every n-gram order.

    Words get exact integer ids (by first occurrence), so two n-grams share a hash only by
    a 64-bit polynomial collision (negligible at these sizes)."""
    vocab = {}
    ids = np.array([vocab.setdefault(w, len(vocab)) for w in words], dtype=np.uint64)    # (W,)
    ends = np.concatenate([[0], np.cumsum([len(w) for w in words], dtype=np.int64)])     # (W+1,)
    return ids, ends


def _ngrams(table, n):
    """(hashes (M,) uint64, character lengths (M,) int64) of the word n-grams
    " ".join(words[i:i+n]), from the _word_ids table of the words."""
    ids, ends = table
    m = len(ids) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    h = np.zeros(m, dtype=np.uint64)                                                     # (M,)
    for k in range(n):
        h = h * _POLY + ids[k:k + m] + np.uint64(1)
    return h, ends[n:] - ends[:m] + n - 1


def _top_ngram_chars(table, n):
    """Characters covered by the most frequent n-gram, counting every occurrence (ties:
    the n-gram seen first). `table`: _word_ids(words)."""
    h, length = _ngrams(table, n)
    if not len(h):
        return 0
    _, first, counts = np.unique(h, return_index=True, return_counts=True)
    top = counts.max()
    return int(length[first[counts == top].min()]) * int(top)


def _dup_ngram_chars(table, n):
    """Characters in n-grams that repeat an earlier n-gram; a repeat skips ahead n words so
    overlapping repeats are not double counted (and skipped n-grams are not remembered).
    `table`: _word_ids(words)."""
    h, length = _ngrams(table, n)
    if len(np.unique(h)) == len(h):       # no repeats at all: the common case, no loop
        return 0
    h, length = h.tolist(), length.tolist()
    seen, chars, i = set(), 0, 0
    while i < len(h):
        if h[i] in seen:
            chars += length[i]
            i += n
        else:
            seen.add(h[i])
            i += 1
    return chars


def gopher_repetition(text, dup_line_frac=0.3, dup_para_frac=0.3, dup_line_char_frac=0.2,
                      dup_para_char_frac=0.2, top_ngrams=((2, 0.2), (3, 0.18), (4, 0.16)),
                      dup_ngrams=((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))):
    """Gopher's repetition rules (Rae et al. 2021, appendix A, table A1): duplicate lines
    and paragraphs (by count and by characters), the most frequent 2-4-grams, duplicated
    5-10-grams; reason or None."""
    if not text.strip():
        return "empty"
    paragraphs = _PARAGRAPHS.split(text.strip())
    n_dup, dup_chars = _duplicates(paragraphs)
    if n_dup / len(paragraphs) > dup_para_frac:
        return "dup_para_frac"
    if dup_chars / len(text) > dup_para_char_frac:
        return "dup_para_char_frac"
    lines = text.splitlines()
    n_dup, dup_chars = _duplicates(lines)
    if n_dup / len(lines) > dup_line_frac:
        return "dup_line_frac"
    if dup_chars / len(text) > dup_line_char_frac:
        return "dup_line_char_frac"
    table = _word_ids(words_of(text))     # once for all nine n-gram orders
    for n, frac in top_ngrams:
        if _top_ngram_chars(table, n) / len(text) > frac:
            return f"top_{n}_gram"
    for n, frac in dup_ngrams:
        if _dup_ngram_chars(table, n) / len(text) > frac:
            return f"dup_{n}_gram"
    return None


# ---------------------------------------------------------------------------- Gopher quality

STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])
BULLETS = ("•", "●", "▪", "‣", "◦", "-", "*")


def gopher_quality(text, min_words=50, max_words=100_000, min_mean_len=3, max_mean_len=10,
                   max_symbol_ratio=0.1, max_bullet_lines=0.9, max_ellipsis_lines=0.3,
                   min_alpha_words=0.8, min_stop_words=2, stop_words_from=0, stop_words=STOP_WORDS):
    """Gopher's quality rules (Rae et al. 2021, appendix A): 50..100,000 words, mean word
    length 3..10, '#' and '...' per word <= 0.1, <= 90% bullet lines, <= 30% lines ending
    in '...', >= 80% words with a letter, >= 2 English stop words; reason or None. The
    stop-word rule applies to documents of at least `stop_words_from` words (0: all, as
    published)."""
    # exercise: gopher_quality
    tokens = words_of(text)
    words = [t for t in tokens if _is_word(t)]
    n = len(words)
    if n < min_words:
        return "too_few_words"
    if n > max_words:
        return "too_many_words"
    mean_len = sum(map(len, words)) / n
    if mean_len < min_mean_len:
        return "short_mean_word"
    if mean_len > max_mean_len:
        return "long_mean_word"
    if text.count("#") / n > max_symbol_ratio:
        return "hash_ratio"
    if (text.count("...") + text.count("…")) / n > max_symbol_ratio:
        return "ellipsis_ratio"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if sum(ln.startswith(BULLETS) for ln in lines) / len(lines) > max_bullet_lines:
        return "bullet_lines"
    if sum(ln.endswith(("...", "…")) for ln in lines) / len(lines) > max_ellipsis_lines:
        return "ellipsis_lines"
    if sum(any(c.isalpha() for c in w) for w in words) / n < min_alpha_words:
        return "alpha_words"
    if n >= stop_words_from and sum(w.lower() in stop_words for w in words) < min_stop_words:
        return "stop_words"
    return None
    # end exercise


# ---------------------------------------------------------------------------- C4

CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]", re.IGNORECASE)
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies",
                  "use of cookies", "use cookies")
_SENTENCE_END = re.compile(r"[.!?]+(?:[\"'”’)\]]*)(?=\s|$)")


def count_sentences(line):
    """Sentences in one line: runs of . ! ? before a space or the end; at least 1."""
    return max(1, len(_SENTENCE_END.findall(line)))


def c4_quality(text, min_words_per_line=3, max_word_len=1000, min_sentences=5, extra_phrases=()):
    """C4's rules (Raffel et al. 2020, sec. 2.2) as FineWeb ran them, without the
    terminal-punctuation rule: drops lines with < 3 words, "javascript", cookie/terms-of-use
    phrases, citations "[1]"; drops documents with "lorem ipsum", a curly bracket, or < 5
    sentences. Returns (new_text, reason): the text with bad lines dropped, and a reason
    when the whole document goes (then new_text is None). Lines containing one of
    `extra_phrases` are dropped like C4's policy lines."""
    kept, sentences = [], 0
    for line in text.splitlines():
        line = line.strip()
        words = line.split()
        if any(len(w) > max_word_len for w in words):
            continue
        line = CITATION.sub("", line)
        if len(words) < min_words_per_line:
            continue
        lower = line.lower()
        if "lorem ipsum" in lower:
            return None, "lorem_ipsum"
        if "javascript" in lower:
            continue
        if "{" in line:
            return None, "curly_bracket"
        if any(p in lower for p in POLICY_PHRASES) or any(p in lower for p in extra_phrases):
            continue
        sentences += count_sentences(line)
        kept.append(line)
    if sentences < min_sentences:
        return None, "too_few_sentences"
    return "\n".join(kept), None


# ---------------------------------------------------------------------------- FineWeb

STOP_CHARS = (".", "'", '"', "!", "?")


def fineweb_quality(text, line_punct_max=0.12, short_line_max=0.67, short_line_len=30,
                    dup_line_chars_max=0.1, newline_per_word_max=0.3, min_words=0):
    """FineWeb's extra rules (sec. 3.3): <= 12% lines ending in punctuation, >= 67% lines
    of <= 30 characters, >= 10% characters in duplicated lines; plus datatrove's list rule
    (newlines per word > 0.3); reason or None. Documents under `min_words` words pass
    untested (0: none, as published); short_line_max None turns that rule off."""
    n_words = len(words_of(text))
    if n_words < min_words:
        return None
    lines = text.split("\n")
    if sum(ln.endswith(STOP_CHARS) for ln in lines) / len(lines) <= line_punct_max:
        return "line_punct_ratio"
    if short_line_max is not None and \
            sum(len(ln) <= short_line_len for ln in lines) / len(lines) >= short_line_max:
        return "short_line_ratio"
    non_empty = [ln for ln in lines if ln.strip()]
    chars = len(text.replace("\n", ""))
    if chars == 0 or _duplicates(non_empty)[1] / chars >= dup_line_chars_max:
        return "dup_line_chars"
    if n_words == 0 or text.count("\n") / n_words > newline_per_word_max:
        return "list_ratio"
    return None


# ---------------------------------------------------------------------------- all rules

def quality_reason(text):
    """Run every text rule in FineWeb's order with the published thresholds; returns (text
    after C4, "rule:reason") or (text, None)."""
    for name, rule in (("gopher_repetition", gopher_repetition), ("gopher_quality", gopher_quality)):
        reason = rule(text)
        if reason:
            return text, f"{name}:{reason}"
    new_text, reason = c4_quality(text)
    if reason:
        return text, f"c4_quality:{reason}"
    reason = fineweb_quality(new_text)
    return new_text, (f"fineweb_quality:{reason}" if reason else None)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        _, why = quality_reason(f.read())
    print(why or "kept")
