"""The crawl's web sites (minillm/crawl/sites.py): articles, slugs, every template."""
from minillm.crawl import sites
from minillm.crawl.planner import CRAWL_START


def test_article_html_escapes_and_keeps_text():
    html = sites.article_html("A <b> & C", "Intro line\n\nFirst para has <tags> & more.\nSecond line.\n\nEnd.")
    assert html.startswith("<h1>A &lt;b&gt; &amp; C</h1>")
    assert "<h2>Intro line</h2>" in html and "<br>" in html and "&lt;tags&gt;" in html
    assert sites.slugify("Café de la Gare (1907)") == "cafe-de-la-gare-1907"
    for site in sites.load_sites().sites + sites.load_sites().syndicators:  # every template fills
        out = sites.render_page(site, sites.Rng(0), title="T", main_html="<p>x</p>", date=CRAWL_START,
                                related=("R1", "R2"), n_comments=2)
        assert "$" not in out and "<p>x</p>" in out
