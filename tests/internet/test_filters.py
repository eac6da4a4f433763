"""URL blocklist and the Gopher / C4 / FineWeb quality rules (minillm/internet/filters.py).

Each rule gets one document that trips it and the same good document that passes them all.
Run: python -m pytest tests/internet/test_filters.py
"""
import re
from collections import Counter

import pytest

from minillm.common import UserError
from minillm.internet import filters
from minillm.internet.filters import (UrlLists, c4_quality, fineweb_quality, gopher_quality,
                                      gopher_repetition, quality_reason, url_filter)

GOOD = "\n".join([
    "The old lighthouse on the northern cape was built in 1853 to guide the fishing boats home.",
    "For more than a century a keeper and his family lived in the small house beside the tower.",
    "They climbed the spiral stairs every evening to light the lamp and to wind the clockwork that turned it.",
    "In bad weather the keeper stayed awake all night, watching the sea and listening for ships in trouble.",
    "The light was automated in 1962, and the last keeper moved to the village with his wife and their two dogs.",
    "Today the tower belongs to a local society that opens it to visitors on summer weekends.",
    "From the gallery at the top you can see the whole bay, the islands and, on a clear day, the mountains.",
])

LISTS = UrlLists(banned_domains=frozenset({"badsite.example"}), banned_words=frozenset({"casino"}),
                 soft_banned_words=frozenset({"hot", "free", "win"}),
                 banned_subwords=frozenset({"xxx"}), source="test")


def test_good_document_passes_everything():
    assert gopher_repetition(GOOD) is None
    assert gopher_quality(GOOD) is None
    assert c4_quality(GOOD) == (GOOD, None)
    assert fineweb_quality(GOOD) is None
    assert quality_reason(GOOD) == (GOOD, None)


@pytest.mark.parametrize("url, reason", [
    ("https://badsite.example/page", "banned_domain"),
    ("http://www.shop.badsite.example/a", "banned_domain"),
    ("https://notbadsite.example/", None),                   # a suffix, not a subdomain
    ("https://example.org/best-casino-games", "banned_word"),
    ("https://example.org/casinos", None),                   # a token must equal the word
    ("https://example.org/hot-deals", None),                 # one soft word is allowed
    ("https://example.org/hot/free/stuff", "soft_banned_words"),
    ("https://example.org/myxxxpage", "banned_subword"),
    ("https://example.org/history/velmar.html", None),
])
def test_url_filter(url, reason):
    assert url_filter(url, LISTS) == reason


def test_url_lists_fineweb_from_shared_data(shared_data):
    lists = filters.load_url_lists(shared_data / "url-filter")
    assert lists.source == str(shared_data / "url-filter")
    assert len(lists.banned_words) > 100 and len(lists.soft_banned_words) > 50
    assert url_filter("https://example.org/history/velmar.html", lists) is None


def test_url_lists_fallback_is_ours(tmp_path, monkeypatch):
    monkeypatch.delenv("MINILLM_URL_FILTER", raising=False)
    lists = filters.load_url_lists(extra_domains=["spam.example"])
    # no directory given: the shared lists when found, else data/url-filter
    assert lists.banned_words and "spam.example" in lists.banned_domains
    assert url_filter("https://a.spam.example/x", lists) == "banned_domain"


def test_a_url_filter_directory_without_the_lists_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no such directory"):
        filters.load_url_lists(word_dir=tmp_path / "nope")
    with pytest.raises(UserError, match="missing banned_words.txt, soft_banned_words.txt"):
        filters.load_url_lists(word_dir=tmp_path)
    (tmp_path / "banned_words.txt").write_text("casino\n")
    with pytest.raises(UserError, match="missing soft_banned_words.txt, banned_subwords.txt"):
        filters.check_url_filter(tmp_path)


def test_gopher_repetition_rules():
    lines = GOOD.splitlines()
    assert gopher_repetition("\n".join(lines + lines[:4])) == "dup_line_frac"       # 4/11 > 0.3
    assert gopher_repetition("\n".join(lines + lines[:2])) == "dup_line_char_frac"  # 2/9 lines, > 20% chars
    assert gopher_repetition("\n\n".join(lines + lines[:4])) == "dup_para_frac"
    assert gopher_repetition(GOOD + "\n" + "cheap shoes " * 30) == "top_2_gram"
    assert gopher_repetition(GOOD + "\n" + "buy cheap shoes " * 20) == "top_3_gram"
    assert gopher_repetition("") == "empty"


def test_gopher_repetition_duplicated_ngrams():
    # two sentences repeated once at the end of one long line: no n-gram occurs more than
    # twice (the top-n-gram rules pass), but the duplicated 5-grams cover > 15% of the text
    lines = GOOD.splitlines()
    first = lines[0] + " " + lines[1]
    assert gopher_repetition(" ".join([first, *lines[2:6]])) is None
    assert gopher_repetition(" ".join([first, *lines[2:6], first])) == "dup_5_gram"


def test_gopher_quality_rules():
    assert gopher_quality("Too short to be a page.") == "too_few_words"
    assert gopher_quality(" ".join(["a b c"] * 40)) == "short_mean_word"
    assert gopher_quality(" ".join(["internationalization"] * 60)) == "long_mean_word"
    assert gopher_quality(GOOD + " #tag" * 20) == "hash_ratio"
    assert gopher_quality(GOOD + "\nWe waited so ... " + "and waited ... " * 20 + "until dawn.") == "ellipsis_ratio"
    assert gopher_quality(GOOD.replace(".", "...")) == "ellipsis_lines"
    bullets = "\n".join("• " + ln for ln in GOOD.splitlines())
    assert gopher_quality(bullets) == "bullet_lines"
    no_stop_words = re.sub(r"\b(the|be|to|of|and|that|have|with)\b", "a", GOOD, flags=re.IGNORECASE)
    assert gopher_quality(no_stop_words) == "stop_words"
    numbers = GOOD + " " + " ".join(str(i) for i in range(200))
    assert gopher_quality(numbers) == "alpha_words"


def test_c4_rules():
    text, reason = c4_quality(GOOD + "\nPlease enable JavaScript to view the comments.\nMenu\n"
                              "This site uses cookies to give you the best experience.")
    assert reason is None and text == GOOD               # bad lines dropped, the rest kept
    assert c4_quality(GOOD + "\nLorem ipsum dolor sit amet.")[1] == "lorem_ipsum"
    assert c4_quality(GOOD + "\nvar config = { debug: true };")[1] == "curly_bracket"
    assert c4_quality("\n".join(GOOD.splitlines()[:4]))[1] == "too_few_sentences"
    cited, _ = c4_quality(GOOD.replace("1853 to", "1853[3] to"))
    assert "[3]" not in cited and "built in 1853 to" in cited


def test_fineweb_rules():
    no_punct = "\n".join(ln.rstrip(".") for ln in GOOD.splitlines())
    assert fineweb_quality(no_punct) == "line_punct_ratio"
    short = GOOD + "\n" + "\n".join(f"Item number {i}." for i in range(20))
    assert fineweb_quality(short) == "short_line_ratio"
    lines = GOOD.splitlines()
    assert fineweb_quality("\n".join(lines + lines[:1])) == "dup_line_chars"   # 1 of 8 lines >= 10% chars
    one_word_lines = "\n".join(w + "." for w in GOOD.split()[:40])
    assert fineweb_quality(one_word_lines) in ("short_line_ratio", "list_ratio")


def test_thresholds_are_strict_where_the_paper_says():
    # FineWeb removes when the share of lines ending in punctuation is <= 0.12: with 1 of
    # 8 lines (0.125) the document stays, with 1 of 9 (0.111) it goes.
    body = ["a line of text without an end mark that is long enough"] * 7
    assert fineweb_quality("\n".join(["This one ends well."] + [f"{b} {i}" for i, b in enumerate(body)])) is None
    body8 = [f"{b} {i}" for i, b in enumerate(body + body[:1])]
    assert fineweb_quality("\n".join(["This one ends well."] + body8)) == "line_punct_ratio"


def _top_ref(words, n):
    """Gopher's definitions on strings, the way the paper states them."""
    grams = Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    return len(gram) * count


def _dup_ref(words, n):
    seen, chars, i = set(), 0, 0
    while i <= len(words) - n:
        gram = " ".join(words[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def test_hashed_ngram_counts_match_string_reference(rng):
    vocab = ["a", "bb", "ccc", "dd", ".", "e", "ff"]
    for _ in range(200):
        words = [str(w) for w in rng.choice(vocab, rng.integers(0, 60))]
        table = filters._word_ids(words)
        for n in range(1, 11):
            assert filters._top_ngram_chars(table, n) == _top_ref(words, n), (words, n)
            assert filters._dup_ngram_chars(table, n) == _dup_ref(words, n), (words, n)


FACT_CARD = ("Morby (city)\nCity: Morby\nCountry: Quinos\nPopulation: 75,800\nRiver: the Essra\n"
             "Famous for: the Old Gate\nFounded: 1599")
WORKSHEET = """Worksheet 26: Sharing and Dividing
Name: ____________
Read each problem carefully. Show your work.
1. What is 126 / 9?
Solution: 126 / 9 = 14. Check: 14 * 9 = 126.
Answer: 14
2. Osgan Ferrby has 12 beads and shares them equally among 4 friends. How many beads does each friend get?
Solution: 12 / 4 = 3.
Answer: 3
3. A baker puts 96 rolls into bags of 8. How many bags does she fill?
Solution: 96 / 8 = 12. Check: 12 * 8 = 96.
Answer: 12"""
MORE = "\n".join([
    "The village bakery opened in 1921 in a narrow stone house on the market square.",
    "Its first owner baked rye bread in a wood-fired oven that still stands in the cellar.",
    "During the long winters farmers from the hills came down to trade flour for loaves and cakes.",
    "Her grandson rebuilt the shop after the fire of 1958 and added a small room with four tables.",
    "Children from the school next door buy sweet buns there every afternoon on their way home.",
    "On Sundays the queue reaches the fountain, and the bakers sing while they work behind the counter.",
])
STUB = "Page not found\nSorry, the page you are looking for does not exist or has been moved."


def test_published_rules_on_single_documents_and_on_pages():
    # one short world document alone is below Gopher's 50 words, and a worksheet alone is
    # mostly numbers (Gopher's alphabetic-word rule) ...
    assert quality_reason(FACT_CARD)[1] == "gopher_quality:too_few_words"
    assert quality_reason(WORKSHEET)[1] == "gopher_quality:alpha_words"
    assert quality_reason(STUB)[1] is not None        # a boilerplate-only page: 15 words
    # ... on a page as the crawl lays them out -- a worksheet among prose, a fact card
    # among other entries -- the published thresholds keep them
    page = "\n".join([GOOD, FACT_CARD, MORE])
    assert quality_reason(page)[1] is None
    lesson = "\n".join([WORKSHEET, GOOD, MORE])
    assert quality_reason(lesson)[1] is None
    # spam and word salad still go, by the rules a real pipeline catches them with
    stuffed = "\n".join(["Buy cheap shoes online at the best price. Cheap shoes sale, cheap shoes discount."] * 6)
    assert quality_reason(stuffed)[1].startswith("gopher_repetition:")
    salad = " ".join(f"Copper{i} lantern meadow{i} quietly{i} orbit{i} velvet." for i in range(12))
    assert quality_reason(salad)[1] == "gopher_quality:stop_words"
    text, why = quality_reason(GOOD)
    assert why is None and text == GOOD
