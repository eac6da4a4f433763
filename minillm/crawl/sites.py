"""The crawl's web sites: invented hosts, each with its own HTML template and page chrome.

Used by bundle.py, planner.py and pages.py. A real page is
mostly not its article: navigation, cookie banners, ads, share buttons, related-story
lists, comment sections, sidebars, footers. data/crawl/sites.json lists the sites (host,
language, the document kinds each publishes, URL pattern, charset and where it is
declared), data/crawl/templates/*.html their page layouts (string.Template, `$main` is the
article), data/crawl/chrome.json the furniture they are filled with.

    site = pick_site(load_sites().sites, doc.kind, doc.lang, rng)
    url = page_url(site, title, key, date)
    html = render_page(site, rng, title=title, main_html=article_html(title, text), ...)
    body, headers = encode_page(site, html, date)      # bytes in the site's charset

The layouts differ on purpose, as on the real web: semantic <main>/<article>/<nav>/
<footer> on some sites, class-named <div>s on others, a 1990s table layout on one, so an
extractor cannot key on a single convention. Read noise.py next.
"""
import functools
import html as htmlmod
import json
import random
import re
import string
import unicodedata
from dataclasses import dataclass

from minillm.common import data_path

MONTHS = ("January February March April May June July August September October November "
          "December").split()


@dataclass(frozen=True)
class Site:
    """One invented web site (a row of data/crawl/sites.json plus its parsed template)."""
    name: str
    host: str
    site_name: str
    lang: str
    kinds: tuple        # world document kinds it publishes ("*": any)
    template: string.Template
    url: str
    charset: str        # the label sent ("utf-8", "iso-8859-1", "windows-1252")
    declare: str        # where: "header", "meta" or "both"
    server: str
    nav: tuple
    weights: tuple = ()  # per kind: its share of that kind against other sites listing it


@dataclass(frozen=True)
class Sites:
    sites: tuple        # publishers of world documents
    syndicators: tuple  # aggregators and scrapers that republish them (duplicates)
    chrome: dict        # cookie banners, ads, comments, categories by language


class Rng:
    """Deterministic randomness from random.Random.random() only (stable across Pythons)."""

    def __init__(self, *parts):
        self._r = random.Random("/".join(str(p) for p in parts))

    def random(self):
        return self._r.random()

    def below(self, n):
        return min(int(self._r.random() * n), n - 1)

    def randint(self, lo, hi):
        return lo + self.below(hi - lo + 1)

    def chance(self, p):
        return self._r.random() < p

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def sample(self, seq, k):
        pool = list(seq)
        return [pool.pop(self.below(len(pool))) for _ in range(min(k, len(pool)))]


def _site(row):
    text = data_path("crawl", "templates", row["template"]).read_text(encoding="utf-8")
    kinds = row.get("kinds", {})   # {kind: weight}
    return Site(row["name"], row["host"], row["site_name"], row["lang"], tuple(kinds),
                string.Template(text), row["url"], row["charset"], row["declare"], row["server"],
                tuple(row["nav"]), tuple(kinds.values()))


@functools.lru_cache(maxsize=1)
def load_sites():
    """The sites, syndicators and chrome from data/crawl (read once per process)."""
    spec = json.loads(data_path("crawl", "sites.json").read_text(encoding="utf-8"))
    chrome = json.loads(data_path("crawl", "chrome.json").read_text(encoding="utf-8"))
    return Sites(tuple(_site(r) for r in spec["sites"]), tuple(_site(r) for r in spec["syndicators"]), chrome)


def pick_site(sites, kind, lang, rng):
    """The site a document of `kind` in `lang` is published on: a site of that language
    listing the kind (drawn by the kind's weights when several do), else that language's
    catch-all ("*") site. One English document in ten lands on the catch-all site
    whatever its kind."""
    same_lang = [s for s in sites if s.lang == lang] or [s for s in sites if s.lang == "en"]
    catch_all = [s for s in same_lang if "*" in s.kinds] or same_lang
    exact = [(s, s.weights[s.kinds.index(kind)]) for s in same_lang if kind in s.kinds]
    if not exact or rng.chance(0.1):
        return rng.choice(catch_all)
    x = rng.random() * sum(w for _, w in exact)
    for site, w in exact:
        x -= w
        if x < 0:
            return site
    return exact[-1][0]


def slugify(title, max_words=8):
    """"Café de la Gare (1907)" -> "cafe-de-la-gare-1907"."""
    ascii_ = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_.lower())[:max_words]
    return "-".join(words) or "page"


def page_url(site, title, key, date, n=1):
    """The URL of a page on `site`: its pattern filled with the title's slug (plus "-n"
    for the n-th page of that title), a key and the publication date (a datetime)."""
    slug = slugify(title) + (f"-{n}" if n > 1 else "")
    return site.url.format(host=site.host, slug=slug, Slug=slug.replace("-", "_").capitalize(),
                           id=key, yyyy=f"{date.year:04d}", mm=f"{date.month:02d}", dd=f"{date.day:02d}")


def _esc(text):
    return htmlmod.escape(text, quote=True)


def _is_heading(par, last):
    return (not last and "\n" not in par and len(par) <= 60 and par[-1:] not in ".!?:;,\"')"
            and len(par.split()) <= 8)


def article_html(title, text, heading_tag="h1"):
    """The article: the title as a heading, then one <p> per paragraph (blank-line
    separated; a line break inside a paragraph becomes <br>). A short line without final
    punctuation between paragraphs is a section heading (<h2>). The visible text is
    exactly `title` and `text`: that is the main text the extractor should recover."""
    out = [f"<{heading_tag}>{_esc(title)}</{heading_tag}>"]
    pars = [p.strip() for p in text.split("\n\n") if p.strip()]
    for i, par in enumerate(pars):
        if _is_heading(par, i == len(pars) - 1):
            out.append(f"<h2>{_esc(par)}</h2>")
        else:
            out.append("<p>" + "<br>\n".join(_esc(line) for line in par.split("\n")) + "</p>")
    return "\n".join(out)


def human_date(d, lang):
    if lang == "en":
        return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"
    return f"{d.day:02d}.{d.month:02d}.{d.year}" if lang == "de" else f"{d.day:02d}/{d.month:02d}/{d.year}"


def links_html(titles, prefix="/"):
    return "".join(f'<li><a href="{prefix}{slugify(t)}">{_esc(t)}</a></li>' for t in titles)


def _comments(rng, chrome, date, n):
    out = []
    for _ in range(n):
        who, what = rng.choice(chrome["commenters"]), rng.choice(chrome["comments"])
        out.append(f'<div class="comment"><span class="comment-author">{_esc(who)}</span> '
                   f'<time>{human_date(date, "en")}</time><p>{_esc(what)}</p>'
                   f'<a class="reply" href="#respond">Reply</a></div>')
    return "\n".join(out) if out else "<p>No comments yet.</p>"


def _charset_meta(site):
    if site.declare == "header":
        return ""
    if site.charset == "windows-1252":  # the old http-equiv form, as older CMSs write it
        return f'<meta http-equiv="Content-Type" content="text/html; charset={site.charset}">\n'
    return f'<meta charset="{site.charset}">\n'


def render_page(site, rng, *, title, main_html, date, related=(), n_comments=0, description="",
                canonical="", source_name="", keywords=""):
    """Fill the site's template around `main_html`. Every piece of chrome comes from `rng`,
    so the same arguments give the same bytes."""
    chrome = load_sites().chrome
    lang = site.lang if site.lang in chrome["cookie"] else "en"
    jsonld = json.dumps({"@context": "https://schema.org", "@type": "Article", "headline": title,
                         "datePublished": date.strftime("%Y-%m-%d"), "publisher": site.site_name},
                        ensure_ascii=False).replace("</", "<\\/")
    fields = {
        "lang": site.lang, "charset_meta": _charset_meta(site), "title": _esc(title),
        "site_name": _esc(site.site_name), "description": _esc(description[:160]), "jsonld": jsonld,
        "nav": links_html(site.nav, "/section/"), "main": main_html, "related": links_html(related),
        "comments": _comments(rng, chrome, date, n_comments), "cookie": rng.choice(chrome["cookie"][lang]),
        "ad": rng.choice(chrome["ad"][lang]), "ad2": rng.choice(chrome["ad"][lang]),
        "date": human_date(date, site.lang), "year": str(date.year + 1), "online": str(rng.randint(12, 480)),
        "categories": ", ".join(f'<a href="/category/{slugify(c)}">{_esc(c)}</a>'
                                for c in rng.sample(chrome["categories"], 2)),
        "canonical": _esc(canonical), "source_name": _esc(source_name), "keywords": _esc(keywords),
    }
    return site.template.substitute(fields)


def encode_page(site, html, served):
    """HTML -> (body bytes in the site's charset, HTTP response headers). Characters the
    charset lacks become numeric character references (&#339;), as browsers send them."""
    codec = "cp1252" if site.charset == "windows-1252" else site.charset
    body = html.encode(codec, errors="xmlcharrefreplace")
    ctype = f"text/html; charset={site.charset.upper() if site.charset != 'utf-8' else 'utf-8'}"
    headers = [("Date", served.strftime("%a, %d %b %Y %H:%M:%S GMT")), ("Server", site.server),
               ("Content-Type", ctype if site.declare in ("header", "both") else "text/html"),
               ("Cache-Control", "max-age=600"), ("Content-Length", str(len(body)))]
    return body, headers


@functools.lru_cache(maxsize=None)
def _template(name):
    return string.Template(data_path("crawl", "templates", name).read_text(encoding="utf-8"))


def adhoc_site(host, site_name, template="spam.html", *, nav=(), lang="en", charset="utf-8",
               declare="both", server="nginx"):
    """A one-off site (spam, junk and blocklisted hosts) on one of the shared templates."""
    return Site(host.split(".")[0], host, site_name, lang, (), _template(template),
                "https://{host}/", charset, declare, server, tuple(nav))
