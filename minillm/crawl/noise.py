"""What the crawl mixes in besides good articles: spam, junk, boilerplate-only pages,
blocklisted hosts, near-duplicate edits and PII.

Used by planner.py (and bundle.py, pages.py for shingles and the duplicate index). Each
generator returns the page's title and its true main text, and is built so that a standard filter
can catch it -- these are realistic positives, not adversarial ones:

  spam         keyword stuffing (the top 2-gram covers far more than Gopher's 20% of
               characters), spun copy (the same paragraph three or more times: Gopher's
               duplicate-paragraph rule), doorway pages (dozens of short lines without
               punctuation: FineWeb's line rules)
  junk         word salad without function words (Gopher: fewer than 2 stop words),
               lorem ipsum (C4's rule), data dumps (Gopher: under 80% alphabetic words)
  boilerplate  a 404 / paywall / login stub: under Gopher's 50 words
  blocklisted  hosts whose URL FineWeb's URL filter bans (a banned word as a URL token,
               two soft-banned words, or a banned sub-word anywhere in the URL)

The URL word lists are FineWeb's when found (see url_lists); data/crawl/blocklist_fallback.txt
is our own small stand-in when they are absent. cli.py (`minillm crawl`) ties it all together.
"""
import functools
import ipaddress
import json
import os
import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minillm.common import data_path
from minillm.internet.filters import check_url_filter

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_NON_WORD_U = re.compile(r"[\W_]+")


@functools.lru_cache(maxsize=1)
def load_noise():
    return json.loads(data_path("crawl", "noise.json").read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- URL lists


@dataclass(frozen=True)
class UrlLists:
    banned_words: frozenset
    soft_words: frozenset
    subwords: frozenset
    source: str


def _norm(word):
    return _NON_ALNUM.sub("", word.lower())


def _read_list(path):
    return frozenset(w for w in (_norm(x) for x in path.read_text(encoding="utf-8").splitlines()
                                 if x.strip() and not x.startswith("#")) if w)


@functools.lru_cache(maxsize=4)
def url_lists(word_dir=None):
    """FineWeb's URL word lists from the first directory that holds them: `word_dir`,
    $MINILLM_URL_FILTER; else our fallback list. A `word_dir` without the
    lists is a UserError, never a silent fall back."""
    check_url_filter(word_dir)
    for d in (word_dir, os.environ.get("MINILLM_URL_FILTER")):
        if d and (Path(d) / "banned_words.txt").is_file():
            d = Path(d)
            return UrlLists(_read_list(d / "banned_words.txt"), _read_list(d / "soft_banned_words.txt"),
                            _read_list(d / "banned_subwords.txt"), str(d))
    sections, current = {}, None
    path = data_path("crawl", "blocklist_fallback.txt")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], set())
        elif line.strip() and not line.startswith("#") and current is not None:
            current.add(_norm(line))
    return UrlLists(frozenset(sections["banned_words"]), frozenset(sections["soft_banned_words"]),
                    frozenset(sections["banned_subwords"]), str(path))


def url_block_reason(url, lists):
    """Why FineWeb's URL filter would drop `url` ("banned_word", "soft_words",
    "banned_subword"), or None. Tokens are compared lower-cased (stricter than datatrove,
    which is case-sensitive on the URL), so our labels never depend on letter case."""
    low = url.lower()
    tokens = set(_NON_ALNUM.split(low))
    if tokens & lists.banned_words:
        return "banned_word"
    if len(tokens & lists.soft_words) >= 2:
        return "soft_words"
    squashed = _NON_ALNUM.sub("", low)
    if any(sub in squashed for sub in lists.subwords):
        return "banned_subword"
    return None


def blocklisted_host(rng, lists):
    """(host, reason): an invented host that the URL filter bans, built from the lists."""
    filler = rng.choice(["zone", "hub", "club", "world", "planet", "place", "central", "land"])
    tld = rng.choice(["com", "net", "xyz", "tv", "info"])
    how = rng.choice(["banned_word", "soft_words", "banned_subword"])
    if how == "soft_words" and len(lists.soft_words) >= 2:
        a, b = rng.sample(sorted(lists.soft_words), 2)
        host = f"{a}-{b}-{filler}.{tld}"
    elif how == "banned_subword" and lists.subwords:
        host = f"www.{filler}{rng.choice(sorted(lists.subwords))}.{tld}"
    else:
        host = f"{rng.choice(sorted(lists.banned_words))}-{filler}{rng.randint(1, 99)}.{tld}"
    return host, url_block_reason(f"https://{host}/", lists)


# ----------------------------------------------------------------------------- page text


def _fill(template, kw, year=2024, town=""):
    return template.format(kw=kw, Kw=kw[:1].upper() + kw[1:], year=year, town=town)


def spam_page(rng):
    """A spam page: dict(title, text, subtype, keyword)."""
    n = load_noise()
    kw = rng.choice(n["spam_products"])
    Kw = kw[:1].upper() + kw[1:]
    subtype = rng.choice(["stuffing", "stuffing", "spun", "doorway"])
    if subtype == "stuffing":
        pars = [" ".join(_fill(rng.choice(n["spam_stuffing"]), kw) for _ in range(rng.randint(4, 7)))
                for _ in range(rng.randint(3, 6))]
        title = f"{Kw} - Best {Kw} Online - Buy {Kw} Cheap"
    elif subtype == "spun":
        par = _fill(rng.choice(n["spam_spun"]), kw)
        pars = [par] * rng.randint(3, 5)
        pars.insert(rng.randint(0, len(pars)), _fill(rng.choice(n["spam_stuffing"]), kw))
        title = f"{Kw} | Lowest Price Guaranteed"
    else:
        towns = rng.sample(n["towns"], rng.randint(14, 22))
        pars = ["\n".join(_fill(rng.choice(n["spam_doorway"]), kw, town=t) for t in towns)]
        title = f"{Kw} near you"
    return {"title": title, "text": "\n\n".join(pars), "subtype": subtype, "keyword": kw}


def junk_page(rng):
    """Machine-generated junk: dict(title, text, subtype, lang)."""
    n = load_noise()
    subtype = rng.choice(["salad", "lorem", "dump"])
    if subtype == "salad":  # no function words at all: Gopher's stop-word rule
        def sentence():
            s = " ".join(rng.choice(n["salad_words"]) for _ in range(rng.randint(6, 14)))
            return s[:1].upper() + s[1:] + "."
        pars = [" ".join(sentence() for _ in range(rng.randint(3, 6))) for _ in range(rng.randint(3, 6))]
        return {"title": " ".join(rng.sample(n["salad_words"], 3)).title(), "text": "\n\n".join(pars),
                "subtype": subtype, "lang": "en"}
    if subtype == "lorem":
        words = n["lorem"]
        pars = []
        for i in range(rng.randint(3, 6)):
            w = [rng.choice(words) for _ in range(rng.randint(30, 60))]
            s = ("lorem ipsum dolor sit amet " if i == 0 else "") + " ".join(w)
            pars.append(s[:1].upper() + s[1:] + ".")
        return {"title": "Sample Page", "text": "\n\n".join(pars), "subtype": subtype, "lang": "und"}
    rows = []
    for _ in range(rng.randint(15, 30)):
        rows.append(" ".join(rng.choice([f"{rng.randint(0, 99999)}", f"0x{rng.randint(0, 65535):04x}",
                                         f"{rng.randint(0, 999)}.{rng.randint(0, 99):02d}", "|", "--"])
                             for _ in range(rng.randint(6, 10))))
    return {"title": f"export_{rng.randint(1000, 9999)}.csv", "text": "\n".join(rows), "subtype": subtype,
            "lang": "und"}


def boilerplate_page(rng, categories):
    """A page with no content of its own: dict(title, text, subtype). A tag page is only a
    list of links (its main text is the heading alone)."""
    if rng.chance(0.3):
        return {"title": f"Posts tagged \u201c{rng.choice(categories)}\u201d", "text": "", "subtype": "tag"}
    title, text = rng.choice(load_noise()["boilerplate_pages"])
    return {"title": title, "text": text, "subtype": "stub"}


def blocked_filler(rng):
    """Text for a page on a blocklisted host (its URL is what gives it away)."""
    lines = load_noise()["blocked_filler"]
    pars = [" ".join(rng.sample(lines, rng.randint(2, 4))) for _ in range(rng.randint(2, 4))]
    return {"title": rng.choice(["Members area", "Welcome", "Enter", "New today", "Top picks"]),
            "text": "\n\n".join(pars)}


# ----------------------------------------------------------------------------- duplicates


def normal_words(text):
    """The words near-duplicate detection compares: NFKC, lower case, punctuation and
    underscores dropped (digits kept)."""
    return _NON_WORD_U.sub(" ", unicodedata.normalize("NFKC", text).lower()).split()


def shingles(text, n=5):
    """The set of word n-grams of normal_words(text)."""
    words = normal_words(text)
    return {tuple(words[i:i + n]) for i in range(max(len(words) - n + 1, 1))}


def jaccard(a, b, n=5):
    sa, sb = shingles(a, n), shingles(b, n)
    return len(sa & sb) / max(len(sa | sb), 1)


def _swap_words(text, rng, k):
    """Replace up to k words from the synonym table (whole alphabetic tokens only, so
    e-mail addresses and numbers are never touched)."""
    syn = load_noise()["synonyms"]
    tokens = re.split(r"(\s+)", text)
    spots = [i for i, t in enumerate(tokens) if t.lower().strip(".,;:!?") in syn and t.strip(".,;:!?").isalpha()]
    for i in rng.sample(spots, k):
        t = tokens[i]
        core = t.strip(".,;:!?")
        new = syn[core.lower()]
        new = new[:1].upper() + new[1:] if core[:1].isupper() else new
        tokens[i] = t.replace(core, new, 1)
    return "".join(tokens)


def near_duplicate(text, rng, source_name, title="", lo=0.82, hi=0.97):
    """A syndicated copy of `text` with small edits: some words swapped for synonyms (up
    to one per 60 words) and an attribution line, or a dropped closing paragraph. Returns (new_text, jaccard) with
    lo <= jaccard < hi on the word 5-gram shingles of title + text, or (None, 0.0) if no
    edit lands there."""
    n = load_noise()
    pars = text.split("\n\n")
    attribution = rng.choice(n["attributions"]).format(src=source_name)
    most = max(4, len(text.split()) // 60)  # a swap changes ~5 shingles: scale with length
    for k in range(most, -1, -1):
        edited = _swap_words(text, rng, k)
        if rng.chance(0.5) or k == 0:
            edited = f"{edited}\n\n{attribution}" if rng.chance(0.7) else f"{attribution}\n\n{edited}"
        elif len(pars) >= 5 and rng.chance(0.5):
            edited = "\n\n".join(edited.split("\n\n")[:-1])
        j = jaccard(f"{title}\n\n{text}", f"{title}\n\n{edited}")
        if lo <= j < hi:
            return edited, j
    return None, 0.0


# ----------------------------------------------------------------------------- PII


def _phone(rng):
    d = lambda k: "".join(str(rng.below(10)) for _ in range(k))  # noqa: E731
    area = f"{rng.randint(2, 9)}{d(2)}"
    return rng.choice([f"({area}) {d(3)}-{d(4)}", f"{area}-{d(3)}-{d(4)}", f"{area}.{d(3)}.{d(4)}",
                       f"+1 {area} {d(3)} {d(4)}", f"+44 20 {d(4)} {d(4)}", f"+49 30 {d(8)}",
                       f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}"])


def _ip(rng):
    while True:
        ip = ".".join(str(x) for x in (rng.randint(1, 223), rng.below(256), rng.below(256), rng.randint(1, 254)))
        if ipaddress.ip_address(ip).is_global:
            return ip


def _email(rng):
    n = load_noise()
    first, last = rng.choice(n["first_names"]), rng.choice(n["last_names"])
    user = rng.choice([f"{first}.{last}", f"{first}{last[0]}", f"{first[0]}{last}{rng.randint(1, 99)}", first])
    return f"{user}@{rng.choice(n['email_domains'])}"


def insert_pii(text, rng):
    """Add one or two sentences carrying an e-mail address, phone number or IP address to
    `text` (at the end of a random paragraph). Returns (new_text, [{"type", "value"}])."""
    n = load_noise()
    pars = text.split("\n\n")
    spans = []
    for _ in range(1 if rng.chance(0.7) else 2):
        kind = rng.choice(["email", "email", "phone", "phone", "ip"])
        value = {"email": _email, "phone": _phone, "ip": _ip}[kind](rng)
        sentence = rng.choice(n["pii_sentences"][kind]).format(**{kind: value})
        i = rng.below(len(pars))
        pars[i] = f"{pars[i]} {sentence}" if pars[i].strip() else sentence
        spans.append({"type": kind, "value": value})
    return "\n\n".join(pars), spans


class DupIndex:
    """Finds the pages that duplicate an earlier one, so the truth labels are exact even
    where the world itself repeats (two documents from one template).

    Exact: the same normal_words(). Near: word 5-gram Jaccard >= `threshold` with an
    earlier page, found by MinHash LSH (112 hashes in 28 bands of 4: looser than FineWeb's
    14 x 8, so that no pair at 0.8 is missed) and then checked exactly against the stored text. Pages must be added in crawl order.
    Memory: the normalised text of every indexed page plus 28 band keys per page.
    """

    BANDS, ROWS, PRIME = 28, 4, 4294967291   # P(candidate | J=0.8) = 1 - 4e-7

    def __init__(self, threshold=0.8):
        self.threshold = threshold
        gen = np.random.default_rng(20240518)
        n = self.BANDS * self.ROWS
        self.a = gen.integers(1, self.PRIME, n, dtype=np.uint64)       # (112,)
        self.b = gen.integers(0, self.PRIME, n, dtype=np.uint64)       # (112,)
        self.exact, self.bands, self.texts = {}, {}, []                 # key -> url; band -> [page]; (url, words)

    def _band_keys(self, words):
        h = np.array([zlib.crc32(w.encode("utf-8")) for w in words] or [0], dtype=np.uint64)  # (W,)
        n = max(len(h) - 4, 1)
        g = h[:n].copy()                                                # (S,) shingle hashes
        for k in range(1, min(5, len(h))):                              # polynomial in the 5 words
            g = (g * np.uint64(1000003) + h[k:k + n]) & np.uint64(0xFFFFFFFF)
        sig = ((g[:, None] * self.a[None, :] + self.b[None, :]) % np.uint64(self.PRIME)).min(axis=0)  # (112,)
        return [(i, tuple(sig[i * self.ROWS:(i + 1) * self.ROWS].tolist())) for i in range(self.BANDS)]

    def check_and_add(self, url, text):
        """("exact" | "near" | None, url of the earlier page, jaccard) for `text`; then
        remember it as a possible original for later pages."""
        words = normal_words(text)
        key = " ".join(words)
        if key in self.exact:
            return "exact", self.exact[key], 1.0
        grams = {tuple(words[i:i + 5]) for i in range(max(len(words) - 4, 1))}
        keys = self._band_keys(words)
        hits = Counter(p for k in keys for p in self.bands.get(k, ()))
        # subtle: a pair at J = 0.8 shares a band with probability 0.8^4 = 0.41, so it
        # meets in ~11 of the 28 bands and in fewer than 2 with probability < 1e-5. Checking
        # only the 32 candidates with the most shared bands bounds the cost on templated text.
        best = sorted((c for c, n in hits.items() if n >= 2), key=lambda c: (-hits[c], c))[:32]
        found = (None, None, 0.0)
        for cand in sorted(best):
            other_url, other = self.texts[cand]
            og = {tuple(other[i:i + 5]) for i in range(max(len(other) - 4, 1))}
            jac = len(grams & og) / len(grams | og)
            if jac >= self.threshold:
                found = ("near", other_url, round(jac, 4))
                break
        self.exact[key] = url
        for k in keys:
            self.bands.setdefault(k, []).append(len(self.texts))
        self.texts.append((url, words))
        return found
