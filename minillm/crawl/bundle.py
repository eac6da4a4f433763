"""Page bundles: how the crawl groups short world documents into the pages of a site.

World documents are short (median ~65 words), far shorter than a web page. A bundle is a
page being filled: world documents of one site and one language, in the order the world
yields them. planner.py turns each closed bundle into one page: the first document's
title is the headline, every further document follows as its own title and text -- an
encyclopedia page with several entries, a community page with forum threads among
members' stories, a lesson page with one worksheet among prose. Bundler.add states the
rules (site, novelty, per-kind limits, length, memory); at the end of the world
Bundler.flush merges each site's unfinished pages as far as the limits let them.

Everything is a function of (seed, the world's document order): document j's randomness
(its site, a new page's target length) is sites.Rng(seed, "doc", j), and a bundle is
named by the index of its first document (Bundle.key), which seeds its page's randomness.
`minillm crawl` (cli.py, pages.py) bundles with it. Read planner.py next.
"""
from collections import Counter
from dataclasses import dataclass, field

from minillm.crawl import noise, sites as S

PAGE_WORDS = (250, 600)     # a page's target length in words, drawn per page
OPEN_PAGES = 16             # pages a site keeps open at once (bounds memory)
MAX_OVERLAP = 0.2           # a document joins a page only if < 20% of its 5-grams are on it already
KIND_LIMITS = {"worksheet": (1, 0.3), "forum": (4, 0.4)}   # kind: (documents, share of words) per page


@dataclass
class Bundle:
    """A page being filled: world documents of one site and language."""
    site: S.Site
    key: int                # index of its first document: names the page's randomness
    target: int             # words at which it is full
    docs: list = field(default_factory=list)
    words: int = 0
    grams: set = field(default_factory=set)
    kind_docs: Counter = field(default_factory=Counter)
    kind_words: Counter = field(default_factory=Counter)

    def takes(self, kind, grams):
        """Whether a document of `kind` with word 5-grams `grams` may join (ignoring overlap
        when `grams` is None)."""
        limit = KIND_LIMITS.get(kind)
        if limit and self.kind_docs[kind] >= limit[0]:
            return False
        return grams is None or len(grams & self.grams) < MAX_OVERLAP * len(grams)

    def add(self, doc, grams, n_words):
        self.docs.append(doc)
        self.words += n_words
        self.grams |= grams
        self.kind_docs[doc.kind] += 1
        self.kind_words[doc.kind] += n_words

    def merge(self, other):
        self.docs += other.docs
        self.words += other.words
        self.grams |= other.grams
        self.kind_docs.update(other.kind_docs)
        self.kind_words.update(other.kind_words)

    def full(self):
        return self.words >= self.target and all(self.kind_words[k] <= share * self.words
                                                 for k, (_, share) in KIND_LIMITS.items())


class Bundler:
    """Groups world documents into pages, streaming. The rules (add):

    site       each document goes to the site sites.pick_site draws for its kind and
               language: data/crawl/sites.json gives every site the kinds it publishes,
               each with a weight, and a kind several sites list is shared among them in
               proportion (one English document in ten lands on the catch-all site).
    novelty    a document joins an open page of its site only if fewer than 20% of its
               word 5-grams (noise.shingles) are on that page already (MAX_OVERLAP): the
               world writes many documents from one template, and a site does not print
               two near-identical how-tos side by side.
    limits     per page at most 1 worksheet, at most 30% of its words, and at most 4
               forum threads, at most 40% of its words (KIND_LIMITS).
    length     each page draws its target length from `page_words` (PAGE_WORDS: 250-600
               words) and closes once it has that many with no kind over its share.
    memory     a site keeps at most OPEN_PAGES pages open per language; when a document
               fits none of them it joins the open page with the least overlap that has
               room for its kind, else the oldest page is closed to make room.
    """

    def __init__(self, seed, sites, page_words=PAGE_WORDS):
        self.seed, self.sites, self.page_words = seed, sites, page_words
        self.open = {}      # (host, lang) -> [Bundle], oldest first

    def add(self, doc, j):
        """Place document number `j`; returns the bundles it closed (0, 1 or 2)."""
        rng = S.Rng(self.seed, "doc", j)
        site = S.pick_site(self.sites, doc.kind, doc.lang, rng)
        pages = self.open.setdefault((site.host, doc.lang), [])
        grams = noise.shingles(f"{doc.title}\n\n{doc.text}")
        closed = []
        fits = [b for b in pages if b.takes(doc.kind, grams)]
        roomy = [b for b in pages if b.takes(doc.kind, None)]
        if fits:
            bundle = fits[0]
        elif roomy and len(pages) >= OPEN_PAGES:
            bundle = min(roomy, key=lambda b: (len(grams & b.grams), b.key))
        else:
            if len(pages) >= OPEN_PAGES:
                closed.append(pages.pop(0))
            bundle = Bundle(site, j, rng.randint(*self.page_words))
            pages.append(bundle)
        bundle.add(doc, grams, len(doc.text.split()) + len(doc.title.split()))
        if bundle.full():
            pages.remove(bundle)
            closed.append(bundle)
        return closed

    def flush(self):
        """Close every open page at the end of the crawl. A site's unfinished pages are
        merged, oldest first, as far as KIND_LIMITS let them."""
        done = []
        for pages in self.open.values():
            merged = []
            for b in pages:
                last = merged[-1] if merged else None
                if last and all(last.kind_docs[k] + b.kind_docs[k] <= n for k, (n, _) in KIND_LIMITS.items()):
                    last.merge(b)
                else:
                    merged.append(b)
            done += merged
        self.open = {}
        return sorted(done, key=lambda b: b.key)
