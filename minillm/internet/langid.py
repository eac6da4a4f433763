"""Language identification: the script first, then naive Bayes over character 1-4-grams.

The third stage of the cleaning pipeline. FineWeb keeps pages that fastText's language
model calls English with a score >= 0.65; we train our own, much smaller model on text
written for this project (data/langid/<lang>.txt: en, fr, de, es -- the mini-world's
languages -- and a paragraph or a few of the other languages that make up most of Common
Crawl, so that a page in one of those has a home of its own). Two steps:

  1. the script: count the letters of each writing system (Latin, Cyrillic, Arabic, Han,
     kana, Hangul, Greek, ...). A script that one language writes decides it at once
     (Hangul: ko, kana among the Han characters: ja, Han alone: zh, Greek: el, ...);
  2. the n-grams, among the trained languages of that script (Latin: en, fr, nl, ...;
     Cyrillic: ru, uk, bg; Arabic: ar, fa). A text is scored by

        log P(text | lang) = sum over its n-grams g of log P(g | lang)   (smoothed: see train)

     and the posterior over those languages (uniform prior) gives the decision and its
     confidence (scaled: see scores), lowered when the winner has seen few of the text's
     n-grams ("coverage", see identify).

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

# The four languages of the mini-world, then other languages of Common Crawl by script.
LANGS = ("en", "fr", "de", "es", "nl", "it", "pt", "ca", "ro", "sv", "da", "pl", "cs", "fi", "tr", "id",
         "vi", "hu", "ru", "uk", "bg", "ar", "fa")
LANG_SCRIPT = {**{lang: "latin" for lang in LANGS}, "ru": "cyrillic", "uk": "cyrillic", "bg": "cyrillic",
               "ar": "arabic", "fa": "arabic"}
# Writing systems as Unicode code point ranges [lo, hi); normalize() leaves only letters.
SCRIPTS = {
    "latin": [(0x0, 0x250), (0x1E00, 0x1F00)],
    "greek": [(0x370, 0x400), (0x1F00, 0x2000)],
    "cyrillic": [(0x400, 0x530)],
    "armenian": [(0x530, 0x590)],
    "hebrew": [(0x590, 0x600)],
    "arabic": [(0x600, 0x700), (0x750, 0x780), (0xFB50, 0xFE00), (0xFE70, 0xFF00)],
    "devanagari": [(0x900, 0x980)],
    "thai": [(0xE00, 0xE80)],
    "georgian": [(0x10A0, 0x1100)],
    "hangul": [(0x1100, 0x1200), (0x3130, 0x3190), (0xAC00, 0xD7B0)],
    "kana": [(0x3040, 0x3100), (0x31F0, 0x3200)],
    "han": [(0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00)],
}
# Scripts one language writes (of those on the web in quantity): the script decides.
SCRIPT_LANG = {"greek": "el", "armenian": "hy", "hebrew": "he", "devanagari": "hi", "thai": "th",
               "georgian": "ka", "hangul": "ko", "kana": "ja", "han": "zh"}
KANA_FOR_JA = 0.1         # Japanese: kana are at least this share of its Han + kana letters
ORDERS = (1, 2, 3, 4)
BUCKETS = {1: 1 << 12, 2: 1 << 15, 3: 1 << 16, 4: 1 << 16}   # hashed rows per n-gram order
MIX = 0.9                 # weight of a language's own n-gram frequencies (see train)
DEPENDENCE = 2.0          # extra down-weighting of overlapping n-grams (see scores)
MAX_CHARS = 2000          # classify on at most this many characters of normalised text
MIN_SCRIPT = 0.5          # share of letters the main script must have; else "other"
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


def script_shares(norm):
    """{script: share of the letters of a normalised text}, scripts with letters only;
    Han and kana count once more each, a CJK character holding about a word's worth.
    {} for a text without letters."""
    codes = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32)          # (C,)
    letters = codes[(codes != 32) & (codes != 39)]                             # no space, '
    counts = {}
    for script, ranges in SCRIPTS.items():
        n = sum(int(((letters >= lo) & (letters < hi)).sum()) for lo, hi in ranges)
        if n:
            counts[script] = n * (2 if script in ("han", "kana") else 1)
    total = sum(counts.values())
    return {script: n / total for script, n in counts.items()}


def main_script(shares):
    """(script, share) of a script_shares dict; Han with kana is Japanese ("kana")."""
    cjk = shares.get("han", 0.0) + shares.get("kana", 0.0)
    if cjk and cjk >= max(shares.values()):
        return ("kana" if shares.get("kana", 0.0) >= KANA_FOR_JA * cjk else "han"), cjk
    return max(shares.items(), key=lambda kv: kv[1]) if shares else ("", 0.0)


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

    The main script first (script_shares): below MIN_SCRIPT of the letters, "other"; a
    script of one language (SCRIPT_LANG) gives it, with the script's share as confidence.
    Otherwise the n-gram model picks among the trained languages of that script. A Latin
    text in a language the model has never seen still gets *some* best language, so the
    confidence is scaled down when the winner has seen few of the text's 3- and 4-grams
    (coverage below FULL_COVERAGE); below MIN_CONFIDENCE the answer is "other"."""
    model = model or default_model()
    norm = normalize(text[:3 * MAX_CHARS])
    script, share = main_script(script_shares(norm))
    if share < MIN_SCRIPT:
        return Guess("other", 1.0 - share, "", 0.0)
    if script in SCRIPT_LANG:
        return Guess(SCRIPT_LANG[script], share, SCRIPT_LANG[script], 1.0)
    cols = [j for j, lang in enumerate(model.langs) if LANG_SCRIPT.get(lang) == script]
    if not cols:
        return Guess("other", share, "", 0.0)
    loglik, coverage = scores(norm, model)
    loglik, coverage = loglik[cols], coverage[cols]                              # (L',)
    post = np.exp(loglik - loglik.max())
    post /= post.sum()                                                          # (L',)
    j = int(post.argmax())
    fit = min(1.0, max(0.0, float(coverage[j] - MIN_COVERAGE) / (FULL_COVERAGE - MIN_COVERAGE)))
    # subtle: only Latin is written by many languages we did not train; in Cyrillic and
    # Arabic the trained ones are most of the web, so the fit does not lower the confidence.
    confidence = float(post[j]) * (fit if script == "latin" else 1.0)
    best = model.langs[cols[j]]
    return Guess(best if confidence >= MIN_CONFIDENCE else "other", confidence, best, float(coverage[j]))


if __name__ == "__main__":
    g = identify(" ".join(sys.argv[1:]) or sys.stdin.read())
    print(f"{g.lang} {g.confidence:.3f} (best {g.best}, coverage {g.coverage:.2f})")
