"""Language identification: a naive Bayes classifier over character 1-4-grams.

The third stage of the cleaning pipeline. FineWeb keeps pages that fastText's language
model calls English with a score >= 0.65; we train our own, much smaller model on text
written for this project (data/langid/<lang>.txt: en, fr, de, es -- the mini-world's
languages -- and a little of twelve other Latin-script languages, so that a page in one
of those has a better home than en/fr/de/es). A text is scored by

    log P(text | lang) = sum over its n-grams g of log P(g | lang)   (smoothed: see train)

and the posterior over languages (uniform prior) gives the decision and its confidence
(scaled: see scores). The confidence also asks how well the winner explains the text
("coverage"); text of another script is "other" at once (see identify).

    python -m minillm.internet.langid "Le chat dort sur le canapé."   # -> fr 0.99...

Read filters.py next (the quality rules).
"""
import functools
import sys
from dataclasses import dataclass

import numpy as np
import regex

from minillm.common import data_path
from minillm.internet.dedup import mix64

# The four languages of the mini-world, then neighbours and other languages written with
# Latin letters, so that a page in one of those has a better home than en/fr/de/es.
LANGS = ("en", "fr", "de", "es", "nl", "it", "pt", "ca", "ro", "sv", "da", "pl", "cs", "fi", "tr", "id")
ORDERS = (1, 2, 3, 4)
BUCKETS = {1: 1 << 12, 2: 1 << 15, 3: 1 << 16, 4: 1 << 16}   # hashed rows per n-gram order
MIX = 0.9                 # weight of a language's own n-gram frequencies (see train)
DEPENDENCE = 2.0          # extra down-weighting of overlapping n-grams (see scores)
MAX_CHARS = 2000          # classify on at most this many characters of normalised text
MIN_LATIN = 0.5           # share of letters that must be Latin script for a Latin-language guess
MIN_COVERAGE = 0.35       # below this share of seen 3/4-grams, the winner does not fit the text
FULL_COVERAGE = 0.55      # at or above this, the fit does not lower the confidence
MIN_CONFIDENCE = 0.5      # below it, identify() answers "other"

_NON_LETTERS = regex.compile(r"[^\p{L}']+")
_OFFSET = {n: sum(BUCKETS[m] for m in ORDERS if m < n) for n in ORDERS}   # first row of each order
_ROWS = sum(BUCKETS.values())
_POLY = np.uint64(1000003)


@dataclass
class LangModel:
    """Per-language log-probabilities of hashed character n-grams."""
    langs: tuple           # (L,) language codes
    logp: np.ndarray       # (R, L) log P(g | lang) by n-gram row (0 where no language saw it)
    seen: np.ndarray       # (R, L) bool: the language saw an n-gram of this row in training


@dataclass
class Guess:
    lang: str              # a code from LANGS, or "other"
    confidence: float      # in [0, 1]
    best: str              # the most likely trained language, even when lang is "other"
    coverage: float        # share of the text's 3/4-grams that `best` saw in training


def normalize(text):
    """Lowercase letters and apostrophes; every other run of characters becomes one space."""
    return " " + _NON_LETTERS.sub(" ", text.lower()).strip() + " "


def ngram_rows(norm):
    """Rows of every character n-gram (n in ORDERS) of a normalised text, (G,) int64.

    # subtle: n-grams are hashed (the "hashing trick", as fastText does) instead of looked
    # up in a dict: a polynomial hash of the code points, vectorised over all positions,
    # salted by the order and reduced into that order's own block of BUCKETS[n] rows. A
    # collision merges two rare n-grams; with ~25k distinct 4-grams in 65k rows that is
    # harmless for language ID, and scoring becomes NumPy array indexing, not a Python loop."""
    codes = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)  # (C,)
    rows = []
    for n in ORDERS:
        m = len(codes) - n + 1
        if m <= 0:
            continue
        h = np.zeros(m, dtype=np.uint64)                                        # (m,)
        for k in range(n):
            h = h * _POLY + codes[k:k + m]
        h = mix64(h + np.uint64(n))
        rows.append(_OFFSET[n] + (h % np.uint64(BUCKETS[n])).astype(np.int64))
    return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)


def train(texts, mix=MIX):
    """texts: dict lang -> training text. Returns a LangModel.

    P(g | lang) = mix * c_lang(g) / N_lang,n  +  (1 - mix) * P_all(g)

    where c_lang(g) counts n-gram g (of order n) in the language's text, N_lang,n counts all
    its n-grams of that order, and P_all(g) is the average of that relative frequency over
    all languages. # subtle: smoothing towards the shared P_all (Jelinek-Mercer) rather than
    add-alpha matters here: with add-alpha, a language trained on less text gives unseen
    n-grams more mass, so spam full of rare n-grams would drift to the smallest language.
    Here an n-gram a language never saw costs every such language the same, and one that
    no language saw costs nothing (its row is 0)."""
    langs = tuple(texts)
    table = np.stack([np.bincount(ngram_rows(normalize(texts[lang])), minlength=_ROWS)
                      for lang in langs], axis=1).astype(np.float64)     # (R, L) counts
    freq = np.zeros_like(table)                                         # (R, L) c / N_lang,n
    for n in ORDERS:
        block = slice(_OFFSET[n], _OFFSET[n] + BUCKETS[n])
        freq[block] = table[block] / np.maximum(table[block].sum(0), 1)
    shared = freq.mean(1, keepdims=True)                                # (R, 1) P_all
    with np.errstate(divide="ignore"):
        logp = np.where(shared > 0, np.log(mix * freq + (1 - mix) * shared), 0.0)  # (R, L)
    return LangModel(langs, logp.astype(np.float32), table > 0)


@functools.lru_cache(maxsize=None)
def default_model():
    """The model trained on data/langid/*.txt (trained on first use)."""
    texts = {lang: data_path("langid", f"{lang}.txt").read_text(encoding="utf-8") for lang in LANGS}
    return train(texts)


def latin_share(norm):
    """Share of the letters of a normalised text that are Latin script (Basic Latin to
    Latin Extended-B, and Latin Extended Additional); 1.0 for a text without letters."""
    codes = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32)          # (C,)
    letters = codes[(codes != 32) & (codes != 39)]                             # no space, '
    latin = (letters < 0x250) | ((letters >= 0x1E00) & (letters < 0x1F00))
    return float(latin.mean()) if len(letters) else 1.0


def scores(norm, model):
    """Per-language scaled log-likelihoods (L,) and the coverage of each language (L,),
    for a normalised text. # subtle: the n-grams of one text overlap (each character sits
    in up to 4 of them per order), so they are far from independent and the raw naive
    Bayes posterior is absurdly sure of itself. Dividing the log-likelihoods by the number
    of orders times DEPENDENCE before the softmax makes the confidence of short snippets
    meaningful ("Merci" is fr at 0.9, not 1 - 1e-30)."""
    rows = ngram_rows(norm[:MAX_CHARS])                                         # (G,)
    loglik = model.logp[rows].sum(0)                                            # (L,)
    long_rows = rows[rows >= _OFFSET[3]]                                        # (G3,) 3/4-grams
    coverage = model.seen[long_rows].sum(0) / max(len(long_rows), 1)            # (L,)
    return loglik / (len(ORDERS) * DEPENDENCE), coverage


def identify(text, model=None):
    """Guess the language of `text`: Guess(lang, confidence, best, coverage).

    A text in a language the model has never seen still gets *some* best language, so
    the confidence is scaled down when the winner has seen few of the text's 3- and
    4-grams (coverage below FULL_COVERAGE). Text of another script (zh, ru, ar, ...) has
    almost no Latin letters and is "other" at once, and so is any text whose confidence
    stays below MIN_CONFIDENCE."""
    model = model or default_model()
    norm = normalize(text[:3 * MAX_CHARS])
    latin = latin_share(norm)
    if latin < MIN_LATIN or not norm.strip():
        return Guess("other", 1.0 - latin, "", 0.0)
    loglik, coverage = scores(norm, model)
    post = np.exp(loglik - loglik.max())
    post /= post.sum()                                                          # (L,)
    j = int(post.argmax())
    fit = min(1.0, max(0.0, float(coverage[j] - MIN_COVERAGE) / (FULL_COVERAGE - MIN_COVERAGE)))
    confidence = float(post[j]) * fit
    lang = model.langs[j] if confidence >= MIN_CONFIDENCE else "other"
    return Guess(lang, confidence, model.langs[j], float(coverage[j]))


if __name__ == "__main__":
    g = identify(" ".join(sys.argv[1:]) or sys.stdin.read())
    print(f"{g.lang} {g.confidence:.3f} (best {g.best}, coverage {g.coverage:.2f})")
