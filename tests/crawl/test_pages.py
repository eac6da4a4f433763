"""The crawl generator: WARC layout, determinism, resumption, and honest ground truth.

Most tests crawl a small hand-made world (fake_world.FakeWorld: Document-like objects with
the contract's fields), so they do not depend on minillm.world; one test crawls the real
mini-world.
"""
import html as htmlmod
import ipaddress
import re
from collections import Counter

import pytest

from minillm.common import UserError
from minillm.crawl import bundle, noise, pages
from minillm.internet.warc import iter_records
from minillm.world.world import World

from fake_world import FakeWorld


@pytest.fixture(scope="module")
def crawled(tmp_path_factory):
    out = tmp_path_factory.mktemp("crawl")
    summary = pages.crawl(FakeWorld(480), out, n_shards=3, seed=7, progress=False)
    truth = list(pages.load_truth(out))
    responses = {}
    for s in range(3):
        for rec in iter_records(pages.shard_paths(out, s)[0]):
            if rec.type == "response":
                responses[rec.url] = rec
    return out, summary, truth, responses


def _visible(rec):
    """Text of a response outside tags, scripts and styles, entities decoded, spaces squeezed."""
    html = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", rec.text())
    return " ".join(htmlmod.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_layout_records_and_truth_alignment(crawled):
    out, summary, truth, responses = crawled
    assert summary["pages"] == len(truth) == len(responses)
    by_url = {t["url"]: t for t in truth}
    assert len(by_url) == len(truth)  # URLs are unique
    for s in range(3):
        recs = list(iter_records(pages.shard_paths(out, s)[0]))
        assert recs[0].type == "warcinfo"
        body = recs[1:]
        assert len(body) % 3 == 0
        for i in range(0, len(body), 3):
            req, resp, meta = body[i:i + 3]
            assert (req.type, resp.type, meta.type) == ("request", "response", "metadata")
            assert resp.headers["WARC-Concurrent-To"] == req.record_id
            assert meta.headers["WARC-Concurrent-To"] == resp.record_id
            t = by_url[resp.url]
            assert (t["record_id"], t["shard"], t["index"]) == (resp.record_id, s, i // 3)
            assert resp.http_status == 200 and meta.fields["charset-detected"]


def test_shares_near_the_documented_targets(crawled):
    _, summary, truth, _ = crawled
    shares = summary["shares"]
    assert set(shares) == {"good", "non_english", "spam", "blocklisted", "junk", "boilerplate",
                           "duplicate", "near_duplicate"}
    assert 0.62 <= shares["good"] <= 0.75
    assert 0.05 <= shares["spam"] <= 0.11
    for kind in ("blocklisted", "junk", "duplicate", "near_duplicate"):
        assert 0.02 <= shares[kind] <= 0.065, kind
    assert 0.01 <= shares["boilerplate"] <= 0.05
    assert 0.06 <= summary["pii_share_of_good"] <= 0.15


def test_main_text_is_on_the_page(crawled):
    _, _, truth, responses = crawled
    for t in truth:
        visible = _visible(responses[t["url"]])
        for line in t["main_text"].split("\n"):
            assert " ".join(line.split()) in visible, (t["kind"], t["url"], line)


def test_charsets_and_languages(crawled):
    _, _, truth, responses = crawled
    seen = {}
    for t in truth:
        rec = responses[t["url"]]
        seen.setdefault(t["site"], (rec.charset, rec.http_headers["Content-Type"]))
        if t["kind"] == "non_english":
            assert t["lang"] in ("fr", "de", "es") and t["doc_id"]
            assert "\ufffd" not in rec.text()
        if t["kind"] == "good":
            assert t["lang"] == "en"
    assert seen["www.le-petit-veilleur.fr"] == ("cp1252", "text/html; charset=ISO-8859-1")
    assert seen["www.tageblatt-mitte.de"] == ("cp1252", "text/html")  # declared in <meta> only
    assert seen["en.wikiverse.org"][0] == "utf-8"


def test_blocklist_labels_are_exact(crawled):
    _, _, truth, _ = crawled
    lists = noise.url_lists()
    for t in truth:
        reason = noise.url_block_reason(t["url"], lists)
        if t["kind"] == "blocklisted":
            assert reason is not None and t["blocked"] == reason
        else:
            assert reason is None, t["url"]


def test_duplicates_follow_their_originals(crawled):
    _, _, truth, _ = crawled
    by_url = {t["url"]: t for t in truth}
    n_exact = n_near = 0
    for t in truth:
        orig_url = t["duplicate_of"] or t["near_duplicate_of"]
        if not orig_url:
            continue
        orig = by_url[orig_url]
        assert (orig["shard"], orig["index"]) < (t["shard"], t["index"])
        if t["subtype"] == "world":  # the world repeated itself: two documents, one text
            assert orig["kind"] in ("good", "duplicate", "near_duplicate", "non_english")
            assert (noise.normal_words(orig["main_text"]) == noise.normal_words(t["main_text"])
                    if t["duplicate_of"] else noise.jaccard(orig["main_text"], t["main_text"]) >= 0.8)
            continue
        assert orig["kind"] in ("good", "duplicate", "near_duplicate") and orig["doc_id"] == t["doc_id"]
        assert t["shard"] - orig["shard"] <= 1
        if t["kind"] == "duplicate":
            n_exact += 1
            assert t["main_text"] == orig["main_text"] and t["pii"] == orig["pii"]
        else:
            n_near += 1
            assert t["kind"] == "near_duplicate" and 0.82 <= t["jaccard"] < 0.97
            assert noise.jaccard(orig["main_text"], t["main_text"]) >= 0.8
            assert noise.normal_words(orig["main_text"]) != noise.normal_words(t["main_text"])
    assert n_exact > 5 and n_near > 5


def test_exact_mirrors_serve_identical_html(crawled):
    _, _, truth, responses = crawled
    mirrors = [t for t in truth if t["kind"] == "duplicate" and t["subtype"] in ("mirror", "tracking", "amp")]
    assert mirrors
    for t in mirrors:
        assert responses[t["url"]].http_body == responses[t["duplicate_of"]].http_body


EMAIL = re.compile(r"^[a-z0-9.]+@[a-z0-9.-]+\.[a-z]{2,}$")


def test_pii_spans_are_exact(crawled):
    _, _, truth, responses = crawled
    found = Counter()
    for t in truth:
        for span in t["pii"]:
            assert span["value"] in t["main_text"] and span["value"] in responses[t["url"]].text()
            found[span["type"]] += 1
            if span["type"] == "email":
                assert EMAIL.match(span["value"])
            elif span["type"] == "ip":
                assert ipaddress.ip_address(span["value"]).is_global
            else:
                assert 7 <= sum(c.isdigit() for c in span["value"]) <= 15
        if t["kind"] not in ("good", "duplicate", "near_duplicate"):
            assert t["pii"] == []
    assert set(found) == {"email", "phone", "ip"}


GOPHER_STOP_WORDS = frozenset("the be to of and that have with".split())


# Minimal versions of the published rules, to check the positives are catchable and the
# good pages are not: Gopher (stop words, top 2-gram share, duplicate lines, alphabetic
# words), C4 (lorem ipsum), FineWeb (share of lines ending in punctuation).
def _rule_hits(text):
    words = re.findall(r"\S+", text.lower())
    lines = [x for x in text.split("\n") if x.strip()]
    hits = set()
    if len(words) < 50:
        hits.add("gopher_min_words")
    if sum(w.strip(".,!?") in GOPHER_STOP_WORDS for w in words) < 2:
        hits.add("gopher_stop_words")
    bigrams = Counter(zip(words, words[1:]))
    if bigrams:
        (a, b), n = bigrams.most_common(1)[0]
        if n > 1 and n * (len(a) + len(b)) / sum(map(len, words)) > 0.20:
            hits.add("gopher_top_2gram")
    if lines and 1 - len(set(lines)) / len(lines) > 0.30:
        hits.add("gopher_dup_lines")
    if words and sum(bool(re.search(r"[a-z]", w)) for w in words) / len(words) < 0.8:
        hits.add("gopher_alpha_words")
    if "lorem ipsum" in text.lower():
        hits.add("c4_lorem")
    if lines and sum(x.rstrip()[-1:] in ".!?\"'" for x in lines) / len(lines) < 0.12:
        hits.add("fineweb_line_punct")
    return hits


def test_spam_junk_boilerplate_are_catchable_and_good_pages_pass(crawled):
    _, _, truth, _ = crawled
    for t in truth:
        hits = _rule_hits(t["main_text"])
        if t["kind"] in ("spam", "junk", "boilerplate"):
            assert hits, (t["kind"], t["subtype"], t["main_text"][:200])
        elif t["kind"] in ("good", "duplicate", "near_duplicate"):
            assert not hits, (t["url"], hits)


def test_deterministic_and_seeded(tmp_path):
    world = FakeWorld(80, seed=3)
    a = pages.crawl(world, tmp_path / "a", n_shards=2, seed=1, progress=False)
    pages.crawl(world, tmp_path / "b", n_shards=2, seed=1, progress=False)
    pages.crawl(world, tmp_path / "c", n_shards=2, seed=2, progress=False)
    for s in range(2):
        wa, ta = pages.shard_paths(tmp_path / "a", s)
        wb, tb = pages.shard_paths(tmp_path / "b", s)
        assert wa.read_bytes() == wb.read_bytes() and ta.read_bytes() == tb.read_bytes()
    assert pages.shard_paths(tmp_path / "a", 0)[0].read_bytes() != pages.shard_paths(tmp_path / "c", 0)[0].read_bytes()
    assert a["shards"] == 2 and a["shards_resumed"] == 0


def test_interrupted_run_resumes_to_identical_output(tmp_path, monkeypatch):
    world = FakeWorld(300, seed=4)
    pages.crawl(world, tmp_path / "ref", n_shards=3, seed=0, progress=False)
    first = sum(t["shard"] == 0 for t in pages.load_truth(tmp_path / "ref"))
    real_write, calls = pages.write_page, []

    def dying_write(w, page, seed):
        calls.append(page.url)
        if len(calls) == first + 3:  # in the second shard
            raise KeyboardInterrupt
        return real_write(w, page, seed)

    monkeypatch.setattr(pages, "write_page", dying_write)
    with pytest.raises(KeyboardInterrupt):
        pages.crawl(world, tmp_path / "run", n_shards=3, seed=0, progress=False)
    names = sorted(p.name for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert names == ["crawl-00000.jsonl.gz", "crawl-00000.warc.gz", "plan.json"]  # no partial shard, no temp files
    monkeypatch.setattr(pages, "write_page", real_write)
    summary = pages.crawl(world, tmp_path / "run", n_shards=3, seed=0, progress=False)
    assert summary["shards_resumed"] == 1
    for s in range(3):
        for ref, got in zip(pages.shard_paths(tmp_path / "ref", s), pages.shard_paths(tmp_path / "run", s)):
            assert ref.read_bytes() == got.read_bytes()
    with pytest.raises(UserError, match="other settings.*seed 0 -> 1"):
        pages.crawl(world, tmp_path / "run", n_shards=3, seed=1, progress=False)
    with pytest.raises(UserError, match="other settings.*world"):
        pages.crawl(FakeWorld(300, seed=5), tmp_path / "run", n_shards=3, seed=0, progress=False)


def test_crawl_of_the_real_mini_world(tmp_path):
    world = World.build(seed=0, size="smoke")
    summary = pages.crawl(world, tmp_path, n_shards=2, seed=0, progress=False)
    truth = list(pages.load_truth(tmp_path))
    docs = {d.id: d for d in world.iter_documents()}
    assert summary["pages"] == len(truth) and summary["kinds"]["good"] > 0.55 * len(truth)
    originals = [i for t in truth if t["kind"] in ("good", "non_english") or t["subtype"] == "world"
                 for i in t["doc_ids"]]
    assert sorted(originals) == sorted(docs)                            # every document once
    assert len({t["url"] for t in truth}) == len(truth)                 # titles repeat, URLs do not
    words = []
    for t in truth:
        if t["doc_ids"]:
            assert t["doc_id"] == t["doc_ids"][0] and t["doc_kinds"] == [docs[i].kind for i in t["doc_ids"]]
        if t["kind"] in ("good", "non_english") and not t["pii"]:
            bundled = [docs[i] for i in t["doc_ids"]]
            assert t["main_text"] == "\n\n".join(f"{d.title}\n\n{d.text.strip()}" for d in bundled)
            assert {d.lang for d in bundled} == {t["lang"]}
        if t["kind"] == "good":
            words.append(len(t["main_text"].split()))
            kinds = Counter(t["doc_kinds"])
            assert all(kinds[k] <= n for k, (n, _) in bundle.KIND_LIMITS.items())
    assert sorted(words)[len(words) // 2] >= 250                        # pages of several hundred words
