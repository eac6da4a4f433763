"""HTML -> main text (minillm/internet/extract.py): boilerplate goes, the article stays.

    python -m pytest tests/internet/test_extract.py
"""
import gzip
import re
from collections import Counter

from minillm.internet.extract import extract_blocks, extract_text, parse_html
from minillm.internet.warc import iter_records

ARTICLE = [
    "The harbour of Velmar was built in 1821 by the merchants of the lower town.",
    "Its two stone piers still shelter the fishing fleet from the winter storms.",
    "Today the old customs house holds a small museum about the town's trade.",
]

PAGE = f"""<!DOCTYPE html><html><head><title>Velmar harbour</title>
<style>p {{ color: red }}</style><script>var x = "<p>not text</p>";</script></head>
<body>
<div class="cookie-banner">We use cookies to improve your experience. <button>Accept</button></div>
<header><div class="logo">Velmar Gazette</div><nav><ul><li><a href="/">Home</a></li>
<li><a href="/news">News</a></li><li><a href="/about">About us</a></li></ul></nav></header>
<div class="layout">
 <aside class="sidebar"><h3>Popular</h3><p>Sidebar teaser that is not the article.</p></aside>
 <main>
  <article>
   <header><h1>The harbour of Velmar</h1></header>
   <p>{ARTICLE[0]}</p>
   <p>{ARTICLE[1]}
   <p>{ARTICLE[2]}</p>
   <h2>Opening hours</h2>
   <ul><li>Monday to Friday, 9 to 5 &amp; Saturday mornings.</li><li>Closed on public holidays.</li></ul>
   <div class="share-buttons"><a href="#">Share on Twitter</a> <a href="#">Share on Facebook</a></div>
   <ul class="links"><li><a href="/a">Read more about piers</a></li><li><a href="/b">Storm season</a></li></ul>
  </article>
  <section id="comments"><h3>3 comments</h3><p>Great article, thanks!</p></section>
 </main>
</div>
<form><input name="q"><label>Search the site</label></form>
<footer><p>Copyright 2024 Velmar Gazette. All rights reserved.</p></footer>
<div style="display: none">Hidden tracking text.</div>
</body></html>"""

BOILERPLATE = ["cookies", "Accept", "Home", "About us", "Velmar Gazette", "Sidebar teaser",
               "Share on", "Read more", "Storm season", "Great article", "Search the site",
               "Copyright", "Hidden tracking", "not text", "color: red"]


def test_docstring_example():
    html = ("<nav><a href=/>Home</a></nav><article><h1>Tides</h1>"
            "<p>The moon pulls the sea.</p></article><footer>(c) 2024</footer>")
    assert extract_text(html) == "Tides\nThe moon pulls the sea."


def test_keeps_article_headings_and_lists_drops_boilerplate():
    blocks = extract_blocks(PAGE)
    assert blocks == ["The harbour of Velmar", *ARTICLE, "Opening hours",
                      "Monday to Friday, 9 to 5 & Saturday mornings.", "Closed on public holidays."]
    text = extract_text(PAGE)
    for junk in BOILERPLATE:
        assert junk not in text, junk


def test_without_main_element_uses_body_and_drops_link_lists():
    html = """<body><div id="menu"><a href="/">Start</a> | <a href="/x">Products</a></div>
    <div class="content"><p>First paragraph of a plain page without any main element.</p>
    <p>Second paragraph, also kept.</p></div>
    <ul><li><a href="/1">Link one</a></li><li><a href="/2">Link two</a></li><li><a href="/3">Link three</a></li></ul>
    </body>"""
    assert extract_blocks(html) == ["First paragraph of a plain page without any main element.",
                                    "Second paragraph, also kept."]


def test_link_rich_prose_is_kept_but_pure_link_lines_are_not():
    prose = ('<p><a href="/a">Escopete</a> is a village in the <a href="/p">province of Guadalajara</a>, '
             'in <a href="/c">Castile-La Mancha</a>, <a href="/s">Spain</a>, and it has about '
             'eighty inhabitants who live from farming.</p>')
    links = '<p><a href="/1">Next page</a> <a href="/2">Previous page</a></p>'
    assert extract_blocks(f"<body>{prose}{links}</body>") == [
        "Escopete is a village in the province of Guadalajara, in Castile-La Mancha, Spain, "
        "and it has about eighty inhabitants who live from farming."]


def test_broken_html_and_entities():
    html = "<body><p>One &lt;tag&gt; &eacute;t&eacute;<p>Two<div>Three</span></div><li>Four<li>Five"
    assert extract_blocks(html) == ["One <tag> été", "Two", "Three", "Four", "Five"]
    root = parse_html("<p>a<p>b")
    assert [c.tag for c in root.children] == ["p", "p"]     # <p> closes the open <p>


def test_empty_and_boilerplate_only_pages():
    assert extract_text("") == ""
    only_chrome = "<body><nav><a href='/'>Home</a></nav><footer>(c) Example</footer></body>"
    assert extract_text(only_chrome) == ""


def _words(text):
    return Counter(re.findall(r"\w+", text.lower()))


def test_whirlwind_page_against_common_crawl_wet(shared_data):
    """Common Crawl's WET keeps every text node (menus, the language list, tools). Stated
    bounds: >= 97% of our words also occur in the WET text (we add nothing); every long
    WET line (>= 100 characters: the prose) is one of our lines, except the licence
    footer, which is boilerplate; and we output under half the WET's words."""
    html = next(r for r in iter_records(shared_data / "crawl" / "whirlwind.warc.gz") if r.type == "response").text()
    wet = gzip.open(shared_data / "crawl" / "whirlwind.warc.wet.gz", "rt", encoding="utf-8").read()
    wet_body = wet.split("Content-Length:")[-1].split("\n", 2)[-1]
    text = extract_text(html)
    ours, theirs = _words(text), _words(wet_body)
    assert sum((ours & theirs).values()) / sum(ours.values()) >= 0.97
    long_lines = [ln for ln in wet_body.splitlines() if len(ln) >= 100]
    missed = [ln for ln in long_lines if ln not in text.splitlines()]
    assert len(long_lines) == 7 and len(missed) == 1 and "Licencia Creative Commons" in missed[0]
    assert sum(ours.values()) < 0.5 * sum(theirs.values())
    for menu_line in ["Menú principal", "Ferramientas personals", "Descargar como PDF"]:
        assert menu_line not in text


def test_date_only_blocks_are_metadata():
    html = ("<body><div class='posted'>May 18, 2024</div><article><p>Posted on 3 March 2021</p>"
            "<p>In May 2024 the bridge reopened after a long repair.</p><p>18.05.2024</p></article></body>")
    assert extract_blocks(html) == ["In May 2024 the bridge reopened after a long repair."]


PROSE = ("<p>The ferry to the island leaves twice a day in summer and once a day in winter, weather "
         "permitting, from the stone quay below the old customs house.</p>"
         "<p>Tickets are sold on board, and bicycles travel free if there is room on the deck.</p>")


def test_class_words_are_evidence_not_a_verdict():
    """Boilerplate words inside the class of the main text's container do not drop it;
    the same words on a link list do."""
    for cls in ["elementor-widget-container", "entry-content no-share", "o-section--has-ads",
                "main-content-wrapper with-double-sidebar", "site-header"]:
        html = (f"<body><div class='{cls}'>{PROSE}</div>"
                "<div class='sidebar'><a href=/1>One link</a> <a href=/2>Another link</a></div></body>")
        text = extract_text(html)
        assert "ferry to the island" in text and "bicycles travel free" in text, cls
        assert "One link" not in text, cls
    article = PROSE.replace("ferry", "boat") * 2
    comments = extract_text(f"<body><div>{article}</div><div class='comments'>{PROSE}</div></body>")
    assert "boat" in comments and "ferry" not in comments        # a strong word, on less than half


def test_header_holding_the_post_is_kept_but_page_chrome_is_not():
    html = (f"<body><header class='nav'><a href=/>Home</a></header><header class='post'>{PROSE * 2}</header>"
            "<footer>Call us on 555 0100 any weekday morning.</footer></body>")
    text = extract_text(html)
    assert "ferry to the island" in text and "Home" not in text and "Call us" not in text


def test_a_small_article_is_not_the_root():
    html = f"<body><div class='bio'>{PROSE}</div><article><span>Author Name</span></article></body>"
    assert "ferry to the island" in extract_text(html)
    big = f"<body><p>Teaser line of the index page.</p><article>{PROSE}</article></body>"
    assert "Teaser" not in extract_text(big) and "ferry" in extract_text(big)


def test_missing_head_end_pre_and_deep_nesting():
    no_head_end = "<html><head><title>T</title><meta charset=utf-8><div><p>Text after an unclosed head.</div>"
    assert extract_text(no_head_end) == "Text after an unclosed head."
    pre = "<body><pre>def f(x):\n    return x + 1\n</pre><p>After.</p></body>"
    assert extract_blocks(pre) == ["def f(x):\n    return x + 1", "After."]
    deep = "<body>" + "<div><font>" * 3000 + "Deep words here." + "<p><font>x" * 3000 + "</body>"
    text = extract_text(deep)         # no RecursionError
    assert text.startswith("Deep words here.") and text.count("x") == 3000


def test_huge_pages_are_cut():
    from minillm.internet.extract import MAX_HTML_CHARS
    html = "<body><p>" + "word " * (MAX_HTML_CHARS // 5 + 1000) + "tail</p></body>"
    text = extract_text(html)
    assert "tail" not in text and len(text) < MAX_HTML_CHARS
