"""The Planner: one bundle of world documents -> the pages of the crawl that come with it.

bundle.py decides which world documents share a page; pages.py orders the pages into
shards and writes them. In between, Planner.page turns one closed bundle into:

    its page        headline: the first document's title; body: that document's text,
                    then each further document as its title and text. An English page
                    carries PII (noise.insert_pii) with probability PII_RATE.
    mixed-in pages  with per-kind probability RATES, a spam, blocklisted, junk or
                    boilerplate page (noise.py writes the text, the Planner gives it a
                    host, a site and a URL), at a random position among them
    copies          for an English page with probability COPY_RATE, an exact copy (a
                    mirror, tracking or AMP URL, or a syndicating site) or a near copy
                    (noise.near_duplicate), each with the delay after which it is emitted

Nothing is rendered here. No two articles share a URL, and only blocklisted pages may
trip the URL filter, or the labels would lie. A page's randomness is sites.Rng(seed,
"page", bundle.key). Read sites.py next.
"""
import datetime as dt
from collections import deque
from dataclasses import dataclass, field

from minillm.crawl import noise, sites as S

# The page shares the default crawl aims at: good ~69% (pages of English documents, ~10%
# of them with PII), non_english ~2% (whatever share the world has, on French, German and
# Spanish sites), spam ~8%, blocklisted ~4%, junk ~4%, boilerplate ~3%, duplicate ~4%
# (exact copies), near_duplicate ~4% (small edits: word 5-gram Jaccard 0.82-0.97).
# RATES: pages of each mixed-in kind per good or non-English page.
PAGE_SHARE = 0.73
RATES = {"spam": 0.08 / PAGE_SHARE, "blocklisted": 0.04 / PAGE_SHARE, "junk": 0.04 / PAGE_SHARE,
         "boilerplate": 0.03 / PAGE_SHARE}
COPY_RATE = 0.08 / 0.69     # duplicates (exact or near) per good English page
PII_RATE = 0.10
CRAWL_START = dt.datetime(2024, 5, 18, tzinfo=dt.timezone.utc)   # pages are published before, fetched after


@dataclass
class Page:
    """One page of the crawl: what to render and its ground truth."""
    url: str
    kind: str
    lang: str
    title: str
    text: str               # body text under the title (main text = title + text)
    site: S.Site
    published: dt.datetime
    subtype: str = ""
    doc_id: str | None = None  # the first of doc_ids
    doc_ids: tuple = ()         # the world documents on the page, in order
    doc_kinds: tuple = ()       # their kinds
    duplicate_of: str | None = None
    near_duplicate_of: str | None = None
    jaccard: float | None = None
    pii: list = field(default_factory=list)
    blocked: str | None = None
    related: tuple = ()
    n_comments: int = 0
    render_key: str = ""    # exact mirrors reuse the original's key: identical chrome
    canonical: str = ""
    source_name: str = ""
    keywords: str = ""
    crawled: dt.datetime = CRAWL_START

    @property
    def main_text(self):
        return f"{self.title}\n\n{self.text}" if self.text else self.title


# ----------------------------------------------------------------------------- planning


class Planner:
    """Turns bundles of world documents, one page at a time, into pages (no rendering here)."""

    def __init__(self, seed, lists):
        self.seed, self.lists = seed, lists
        self.all = S.load_sites()
        self.recent = {}    # lang -> deque of recent titles (for related-link lists)
        self.owed_near = 0  # near duplicates decided on but not yet made
        self.used = set()   # article URLs handed out so far
        # mixed-in kind (as in RATES) -> its page maker, called with (rng, bundle key)
        self.mixed_in = {"spam": self._spam, "blocklisted": self._blocklisted, "junk": self._junk,
                         "boilerplate": self._boilerplate}

    def _related(self, rng, lang, title):
        pool = [t for t in self.recent.setdefault(lang, deque(maxlen=40)) if t != title]
        return tuple(rng.sample(pool, rng.randint(3, 5)))

    def _safe_url(self, url, fallback):
        """`url` unless the URL filter would ban it (then `fallback`): only blocklisted
        pages may trip the filter, or the labels would lie."""
        return url if noise.url_block_reason(url, self.lists) is None else fallback

    def _article_url(self, site, title, key, published):
        """A URL for an article that no other page has (titles repeat in the world:
        "Ruter Crelfield" again becomes Ruter_crelfield_2) and the URL filter lets pass."""
        for n in range(1, 1000):
            url = S.page_url(site, title, key, published, n)
            url = self._safe_url(url, S.page_url(site, f"page {key}", key, published, n))
            if url not in self.used:
                self.used.add(url)
                return url
        raise AssertionError(f"no free URL for {title!r} on {site.host}")

    def page(self, bundle):
        """Pages for a closed bundle: its own page (headline: the first document's title;
        body: that document's text, then each further document as its title and text),
        the mixed-in pages that come with it, and copies to emit later as
        [(delay in documents, page)]."""
        j, site, docs = bundle.key, bundle.site, bundle.docs
        rng = S.Rng(self.seed, "page", j)
        published = CRAWL_START - dt.timedelta(days=rng.randint(30, 3400))
        crawled = CRAWL_START + dt.timedelta(seconds=j * 53)
        lang = docs[0].lang
        texts, pii = [d.text.strip() for d in docs], []
        english = lang == "en"
        if english and rng.chance(PII_RATE):
            i = rng.below(len(texts))
            texts[i], pii = noise.insert_pii(texts[i], rng)
        body = "\n\n".join([texts[0]] + [f"{d.title}\n\n{t}" for d, t in zip(docs[1:], texts[1:])])
        title = docs[0].title
        url = self._article_url(site, title, j, published)
        page = Page(url, "good" if english else "non_english", lang, title, body, site, published,
                    doc_id=docs[0].id, doc_ids=tuple(d.id for d in docs), doc_kinds=tuple(d.kind for d in docs),
                    pii=pii, related=self._related(rng, lang, title),
                    n_comments=rng.randint(0, 4) if site.lang == "en" else 0, render_key=url, crawled=crawled)
        self.recent.setdefault(lang, deque(maxlen=40)).extend(d.title for d in docs)
        pages = [page]
        for kind, rate in RATES.items():
            if rng.chance(rate):
                extra = self.mixed_in[kind](rng, j)
                extra.crawled = crawled + dt.timedelta(seconds=rng.randint(1, 50))
                pages.insert(rng.below(len(pages) + 1), extra)
        copies = []
        if english and rng.chance(COPY_RATE):
            if rng.chance(0.5):
                self.owed_near += 1     # made below, from this or a later page
            else:
                copies.append((rng.randint(5, 200), self._exact_copy(page, rng, j)))
        if english and self.owed_near:
            near = self._near_copy(page, rng, j)
            if near is not None:
                self.owed_near -= 1
                copies.append((rng.randint(5, 200), near))
        return pages, copies

    def _near_copy(self, orig, rng, j):
        """A syndicated copy of `orig` with small edits, or None when no small edit keeps
        the copy similar enough (short documents: one changed word is already 10%)."""
        edited, jac = noise.near_duplicate(orig.text, rng, orig.site.site_name, orig.title)
        if edited is None:
            return None
        site = rng.choice(self.all.syndicators)
        url = self._article_url(site, orig.title, f"{j}n", orig.published)
        return Page(url, "near_duplicate", orig.lang, orig.title, edited, site, orig.published,
                    subtype="syndicated", doc_id=orig.doc_id, doc_ids=orig.doc_ids,
                    doc_kinds=orig.doc_kinds, near_duplicate_of=orig.url,
                    jaccard=round(jac, 4), pii=[p for p in orig.pii if p["value"] in edited],
                    related=orig.related, render_key=url, canonical=orig.url, source_name=orig.site.site_name)

    def _exact_copy(self, orig, rng, j):
        """The same page under a mirror URL, or the same text on a syndicating site."""
        src = orig.site.site_name
        if rng.chance(0.5):  # the very same page under another URL
            how = rng.choice(["mirror", "tracking", "amp"])
            host = orig.site.host.replace("www.", "", 1)
            url = {"mirror": orig.url.replace(orig.site.host, f"mirror.{host}", 1),
                   "tracking": orig.url + ("&" if "?" in orig.url else "?") + "utm_source=newsletter&utm_medium=email",
                   "amp": orig.url.replace(orig.site.host, f"amp.{host}", 1)}[how]
            return Page(url, "duplicate", orig.lang, orig.title, orig.text, orig.site, orig.published,
                        subtype=how, doc_id=orig.doc_id, doc_ids=orig.doc_ids,
                        doc_kinds=orig.doc_kinds, duplicate_of=orig.url, pii=orig.pii,
                        related=orig.related, n_comments=orig.n_comments, render_key=orig.render_key)
        site = rng.choice(self.all.syndicators)
        url = self._article_url(site, orig.title, f"{j}s", orig.published)
        return Page(url, "duplicate", orig.lang, orig.title, orig.text, site, orig.published,
                    subtype="syndicated", doc_id=orig.doc_id, doc_ids=orig.doc_ids,
                    doc_kinds=orig.doc_kinds, duplicate_of=orig.url, pii=orig.pii,
                    related=orig.related, render_key=url, canonical=orig.url, source_name=src)

    def _spam(self, rng, j):
        p = noise.spam_page(rng)
        kw = S.slugify(p["keyword"])
        tld = rng.choice(noise.load_noise()["spam_tlds"])
        host = f"{kw}-{rng.choice(['store', 'deals', 'online', 'outlet', 'best'])}{rng.randint(1, 999)}.{tld}"
        url = self._safe_url(f"http://{host}/{kw}-{j}.html", f"http://best-deals-{j}.{tld}/offer-{j}.html")
        site = S.adhoc_site(url.split("/")[2], p["title"].split(" - ")[0], nav=[p["keyword"].title(), "Deals", "Contact"])
        n = noise.load_noise()
        towns = rng.sample(n["towns"], 8)
        farm = tuple(f"{p['keyword']} {t}" for t in towns)
        return Page(url, "spam", "en", p["title"], p["text"], site, CRAWL_START, subtype=p["subtype"],
                    related=farm, render_key=url, keywords=", ".join([p["keyword"]] * 6))

    def _junk(self, rng, j):
        p = noise.junk_page(rng)
        word = rng.choice(["autogen", "pagecache", "datafeed", "textbank", "contentfarm", "mirrorlist"])
        host = f"{word}{rng.randint(10, 999)}.{rng.choice(['info', 'xyz', 'top', 'net'])}"
        url = self._safe_url(f"https://{host}/p/{j}", f"https://pages{j}.info/p/{j}")
        template = "blog.html" if p["subtype"] == "lorem" else "spam.html"
        site = S.adhoc_site(url.split("/")[2], host.split(".")[0].title(), template)
        return Page(url, "junk", p["lang"], p["title"], p["text"], site, CRAWL_START, subtype=p["subtype"],
                    render_key=url)

    def _boilerplate(self, rng, j):
        site = rng.choice([s for s in self.all.sites if s.lang == "en"])
        p = noise.boilerplate_page(rng, self.all.chrome["categories"])
        path = f"tag/{S.slugify(p['title'])}-{j}/" if p["subtype"] == "tag" else f"{S.slugify(p['title'])}?ref={j}"
        url = self._safe_url(f"https://{site.host}/{path}", f"https://{site.host}/page?ref={j}")
        related = self._related(rng, "en", "") if p["subtype"] == "tag" else ()
        return Page(url, "boilerplate", "en", p["title"], p["text"], site, CRAWL_START, subtype=p["subtype"],
                    related=related, render_key=url)

    def _blocklisted(self, rng, j):
        host, reason = noise.blocklisted_host(rng, self.lists)
        p = noise.blocked_filler(rng)
        site = S.adhoc_site(host, host.split(".")[-2].title(), rng.choice(["spam.html", "blog.html"]),
                            nav=["Home", "New", "Popular", "Join"])
        url = f"https://{host}/{rng.choice(['video', 'members', 'gallery', 'chat'])}/{j}.html"
        return Page(url, "blocklisted", "en", p["title"], p["text"], site, CRAWL_START,
                    blocked=noise.url_block_reason(url, self.lists) or reason, render_key=url)
