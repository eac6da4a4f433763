"""Page bundling (minillm/crawl/bundle.py): which documents share a page.

    python -m pytest -q tests/crawl/test_bundle.py

Hand-made documents of unique words (no 5-gram in common unless a test wants one) on the
real sites of data/crawl/sites.json; no world, no crawl, no files written.
"""
from collections import Counter

import pytest

from minillm.crawl import noise, pages, sites as S
from minillm.crawl.bundle import KIND_LIMITS, OPEN_PAGES, PAGE_WORDS, Bundle, Bundler
from fake_world import Doc      # the stand-in for a world document


def _doc(i, kind="howto", lang="en", words=60, text=None):
    """Document i: `words` words no other document shares (unless `text` is given)."""
    text = text or " ".join(f"w{i}x{k}" for k in range(words))
    return Doc(f"d{i}", kind, lang, f"Title {i}", text)


def _words(doc):
    return len(doc.text.split()) + len(doc.title.split())


def _site(host):
    return next(s for s in S.load_sites().sites if s.host == host)


def _bundle_all(docs, seed=0, page_words=PAGE_WORDS):
    """(bundles closed by add, bundles closed by flush) for the documents in order."""
    bundler = Bundler(seed, S.load_sites().sites, page_words)
    closed = [b for j, d in enumerate(docs) for b in bundler.add(d, j)]
    return closed, bundler.flush()


def test_takes_counts_documents_per_kind_and_refuses_repeated_5grams():
    b = Bundle(_site("www.learnbright-guides.org"), key=0, target=300)
    b.add(_doc(0, "worksheet"), noise.shingles("a b c d e f g h i j k l m n"), 14)
    assert not b.takes("worksheet", None)                   # 1 worksheet per page
    assert b.takes("howto", None)
    for i in range(KIND_LIMITS["forum"][0]):
        assert b.takes("forum", None)
        b.add(_doc(i + 1, "forum"), set(), 10)
    assert not b.takes("forum", None)                       # 4 forum threads per page
    on_page = sorted(b.grams)                               # 10 5-grams
    new = {(str(k),) * 5 for k in range(9)}
    assert b.takes("howto", new | set(on_page[:1]))         # 1 of 10 on the page: 10% < 20%
    assert not b.takes("howto", new - {("0",) * 5} | set(on_page[:2]))  # 2 of 10: 20% is too many


def test_full_needs_the_target_length_and_every_kind_within_its_share():
    b = Bundle(_site("www.learnbright-guides.org"), key=0, target=100)
    b.add(_doc(0, "worksheet"), set(), 40)
    b.add(_doc(1, "howto"), set(), 50)
    assert not b.full()                                     # 90 words < 100
    b.add(_doc(2, "howto"), set(), 20)
    assert b.words == 110 and not b.full()                  # worksheet 40/110 = 36% > 30%
    b.add(_doc(3, "lesson"), set(), 30)
    assert b.full()                                         # 40/140 = 29%


def test_every_document_lands_once_on_a_page_of_its_site_and_language():
    kinds = ["encyclopedia", "biography", "news", "story", "forum", "howto", "worksheet", "list"]
    docs = [_doc(i, kinds[i % len(kinds)], "fr" if i % 25 == 0 else "en", words=40 + i % 50)
            for i in range(400)]
    bundler = Bundler(0, S.load_sites().sites)
    closed, evicted = [], 0
    for j, d in enumerate(docs):
        open_before = {key: list(bs) for key, bs in bundler.open.items()}
        for b in bundler.add(d, j):
            closed.append(b)
            if b.full():                                    # closed once long enough ...
                assert PAGE_WORDS[0] <= b.target <= PAGE_WORDS[1] and b.docs[-1] is d
                before = Bundle(b.site, b.key, b.target)    # ... by its last document
                for x in b.docs[:-1]:
                    before.add(x, set(), _words(x))
                assert not before.full()
            else:                                           # or the oldest of OPEN_PAGES open
                site_pages = open_before[(b.site.host, d.lang)]
                assert len(site_pages) == OPEN_PAGES and site_pages[0] is b and d not in b.docs
                evicted += 1
    flushed = bundler.flush()
    assert len(closed) > 30 and len(flushed) >= 1 and evicted < len(closed) / 2
    placed = [d.id for b in closed + flushed for d in b.docs]
    assert sorted(placed) == sorted(d.id for d in docs)
    for b in closed + flushed:
        assert b.key == int(b.docs[0].id[1:])               # named by its first document
        assert {d.lang for d in b.docs} == {b.site.lang}
        assert all(d.kind in b.site.kinds or "*" in b.site.kinds for d in b.docs)
        kinds_on_page = Counter(d.kind for d in b.docs)
        assert all(kinds_on_page[k] <= n for k, (n, _) in KIND_LIMITS.items())


def test_near_identical_documents_do_not_share_an_open_page():
    template = " ".join(f"step {k} of the same guide says to turn the handle" for k in range(8))
    docs = [_doc(i, "news", text=template + f" edition {i}") for i in range(6)]
    bundler = Bundler(0, S.load_sites().sites)
    assert [bundler.add(d, j) for j, d in enumerate(docs)] == [[]] * 6
    open_pages = [b for bs in bundler.open.values() for b in bs]
    assert len(open_pages) == 6 and all(len(b.docs) == 1 for b in open_pages)


def test_open_pages_are_bounded_per_site():
    template = " ".join(f"entry {k} lists the same old stations again" for k in range(10))
    docs = [_doc(i, "news", text=template + f" number {i}") for i in range(60)]
    bundler = Bundler(0, S.load_sites().sites)
    for j, d in enumerate(docs):
        bundler.add(d, j)
        assert all(len(bs) <= OPEN_PAGES for bs in bundler.open.values())
    assert max(len(bs) for bs in bundler.open.values()) == OPEN_PAGES    # the bound was reached


def test_flush_merges_a_sites_leftovers_as_far_as_the_limits_allow():
    site = _site("www.learnbright-guides.org")
    bundler = Bundler(0, S.load_sites().sites)
    leftovers = []
    for j, kind in enumerate(["worksheet", "howto", "worksheet", "lesson", "howto"]):
        b = Bundle(site, key=10 * j, target=600)
        b.add(_doc(j, kind), set(), 50)
        leftovers.append(b)
    bundler.open = {(site.host, "en"): leftovers}
    merged = bundler.flush()
    assert [[d.kind for d in b.docs] for b in merged] == [["worksheet", "howto"], ["worksheet", "lesson", "howto"]]
    assert [b.key for b in merged] == [0, 20] and bundler.open == {}


def test_same_seed_same_pages_and_page_words_sets_the_length():
    docs = [_doc(i, ["news", "story", "howto"][i % 3]) for i in range(120)]

    def layout(seed, page_words=PAGE_WORDS):
        closed, flushed = _bundle_all(docs, seed, page_words)
        return [(b.site.host, [d.id for d in b.docs]) for b in closed + flushed]

    assert layout(0) == layout(0) != layout(1)
    one_each = layout(0, (1, 1))
    assert [ids for _, ids in one_each] == [[d.id] for d in docs]   # every document its own page


def test_sites_share_a_kind_by_their_weights_in_sites_json():
    """biography: wikiverse 1, talkhollow 2, learnbright 2 (sites.json), after one English
    document in ten goes to the catch-all site: expected shares 0.18, 0.36, 0.36, 0.10."""
    weights = {s.host: s.weights[s.kinds.index("biography")] for s in S.load_sites().sites if "biography" in s.kinds}
    assert sorted(weights.values()) == [1, 2, 2]
    n = 3000
    closed, _ = _bundle_all([_doc(i, "biography", words=6) for i in range(n)], page_words=(1, 1))
    got = Counter(b.site.host for b in closed)
    assert sum(got.values()) == n
    total = sum(weights.values())
    for host, w in weights.items():
        assert got[host] / n == pytest.approx(0.9 * w / total, abs=0.03), (host, got)
    assert got["www.oldtown-gazette.net"] / n == pytest.approx(0.1, abs=0.02)


def test_pages_uses_the_bundler_with_its_page_words():
    """pages.py bundles with pages.PAGE_WORDS (a test may patch it there)."""
    assert pages.Bundler is Bundler and pages.PAGE_WORDS == PAGE_WORDS == (250, 600)
