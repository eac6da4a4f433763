"""What the crawl mixes in (minillm/crawl/noise.py): URL lists and blocklisted hosts, and
the duplicate index that labels repeats; the pages themselves are checked in test_pages.py."""
from minillm.crawl import noise, sites


def test_fallback_blocklist_when_fineweb_lists_are_absent(tmp_path, monkeypatch):
    monkeypatch.delenv("MINILLM_URL_FILTER", raising=False)
    noise.url_lists.cache_clear()
    try:
        lists = noise.url_lists()
        assert lists.source.endswith("blocklist_fallback.txt") and "xxx" in lists.banned_words
        rng = sites.Rng("t")
        for _ in range(30):
            host, reason = noise.blocklisted_host(rng, lists)
            assert reason is not None, host
        assert noise.url_block_reason("https://www.dailyharbor-news.com/2020/01/02/x", lists) is None
    finally:
        noise.url_lists.cache_clear()


def test_dup_index_finds_exact_and_near_repeats_only():
    base = " ".join(f"word{i} sits beside the river number {i % 7} today" for i in range(20))
    idx = noise.DupIndex()
    assert idx.check_and_add("u0", base) == (None, None, 0.0)
    assert idx.check_and_add("u1", base.upper() + " !!!") == ("exact", "u0", 1.0)  # case, punctuation
    near = base.replace("word3 sits", "word3 rests", 1)
    how, orig, jac = idx.check_and_add("u2", near)
    assert (how, orig) == ("near", "u0") and jac == round(noise.jaccard(base, near), 4) and 0.8 <= jac < 1
    other = " ".join(f"item{i} stands under a different tree {i}" for i in range(20))
    assert idx.check_and_add("u3", other)[0] is None
    far = " ".join(base.split()[:90]) + " " + other  # Jaccard well below 0.8 with both
    assert idx.check_and_add("u4", far)[0] is None
