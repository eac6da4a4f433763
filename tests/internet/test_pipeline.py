"""The cleaning pipeline end to end (minillm/internet/pipeline.py, stages.py, score.py).

A small hand-made crawl (WARC files written with minillm.internet.warc) holds one page of
each kind the pipeline must handle; the tests check each stage's decision, the logs, the
funnel, resumption (byte-identical output), workers, and the real Common Crawl excerpt.

    python -m pytest tests/internet/test_pipeline.py
"""
import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minillm.crawl import pages
from minillm.internet import filters, pipeline, score, stages
from minillm.internet.warc import iter_records
from minillm.internet.warc_writer import WarcWriter
from minillm.world.world import World

SENTENCES = """The old harbour was built by merchants who traded wool and salt along the coast.
Two stone piers still shelter the fishing boats from the winter storms.
Every morning the fishermen mend their nets on the quay before sunrise.
The customs house now holds a small museum about the history of the town.
A narrow bridge crosses the river just above the mill.
The mill ground flour for the whole valley until the railway arrived.
Children from three villages walk to the school on the hill.
Their teacher takes them to the forest once a month to study the birds.
The market opens on Saturdays, when farmers bring cheese, bread and apples.
In summer the square fills with musicians and painters from the city.
The church tower can be seen from every road that leads into the town.
Its bells were cast in 1790 and rang again after the long war.
A storm in 1884 destroyed half of the roofs near the water.
The town rebuilt them with slate brought by boat from the north.
Visitors often climb the tower to look across the bay at dusk.
On clear days you can see the islands and the distant mountains.
The library keeps letters written by sailors to their families.
Some of those letters describe voyages that lasted more than a year.
A local historian spent twenty years collecting stories from older residents.
Her book about the harbour was published by the town council.
The garden behind the school grows beans, onions and sunflowers.
Students sell the vegetables at the market to pay for a trip.
In the evening the cafe by the bridge serves fish soup and dark bread.
The owner learned the recipe from his grandmother, who ran a boarding house.
Several painters have tried to capture the changing colours of the bay.
One of their pictures hangs in the national gallery today.
The railway station closed in 1965, and the line became a cycling path.
Cyclists now ride through the forest where the trains once ran.
A small ferry links the town with the largest island twice a day.
During storms the ferry stays in port and the islanders wait patiently.
The lighthouse keeper kept a diary of every ship that passed the cape.
His notes help scientists understand how the weather has changed.
Farmers in the valley grow barley, potatoes and a little wheat.
Most farms are still owned by families who settled there long ago.
A festival in August celebrates the end of the fishing season.
Boats are decorated with flowers and sail in a slow line past the piers.
The town council meets in a hall that was once a grain store.
Its wooden beams came from ships that were broken up in the harbour.
Walkers can follow a path along the cliffs to the next village.
The path passes a ruined chapel and a colony of nesting seabirds.
In winter the population shrinks, and many shops close until spring.
Those who stay say that the quiet months are the best time of the year.
The river floods every few years when the snow melts quickly.
New walls were built along the banks to protect the lower streets.
A young engineer designed the walls after studying older flood records.
Her design won a prize and was copied by other towns on the coast.
The school choir sings in the church every year before the winter holidays.
Parents and grandparents fill the benches to listen and to sing along.""".splitlines()


def article(rng, n_par=4):
    """Plain English prose that passes every quality rule: 12 distinct sentences."""
    picks = rng.choice(len(SENTENCES), 3 * n_par, replace=False)
    return [" ".join(SENTENCES[j] for j in picks[3 * i:3 * i + 3]) for i in range(n_par)]


def html_page(title, paragraphs, extra=""):
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<html><head><title>{title}</title><script>var a=1;</script></head><body>"
            f"<nav><ul><li><a href='/'>Home</a></li><li><a href='/about'>About</a></li></ul></nav>"
            f"<div class='cookie-notice'>We use cookies. <a href='/privacy'>Privacy policy</a></div>"
            f"<main><h1>{title}</h1>{body}{extra}</main>"
            f"<footer>Copyright 2024 Example Media</footer></body></html>")


FRENCH = ["Le vieux port du village se trouve au bord de la rivière, et les pêcheurs s'y retrouvent "
          "chaque matin avant le lever du soleil pour préparer leurs filets et parler du temps.",
          "Au printemps, les enfants jouent dans le jardin de l'école pendant que les marchands "
          "installent leurs étals sur la place, où l'on vend du pain, du fromage et des fleurs."] * 2


def make_crawl(tmp_path, rng, n_shards=3):
    """Write a crawl; returns {url: expected (stage, reason-prefix) or None if kept}."""
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    pages, expect = [], {}
    base = [article(rng) for _ in range(4 * n_shards)]
    for i, pars in enumerate(base):
        url = f"https://site{i % 3}.example/article/{i}"
        pages.append((url, html_page(f"Article {i}", pars)))
        expect[url] = None
    pages.append(("https://casino.example/win", html_page("Win", base[0])))
    expect["https://casino.example/win"] = ("url_filter", "banned_domain")
    pages.append(("https://fr.example/port", html_page("Le port", FRENCH)))
    expect["https://fr.example/port"] = ("langid", "lang_fr")
    stuffed = ["the cheap shoes and the best cheap shoes to buy with cheap shoes online"] * 8
    pages.append(("https://spam.example/shoes", html_page("Cheap shoes", stuffed)))
    expect["https://spam.example/shoes"] = ("gopher_repetition", "")
    pages.append(("https://empty.example/", "<html><body><nav><a href='/'>Home</a></nav></body></html>"))
    expect["https://empty.example/"] = ("extract", "no_main_text")
    pages.append(("https://mirror.example/article/1", html_page("Article 1", base[1])))
    expect["https://mirror.example/article/1"] = ("exact_dedup", "exact_duplicate")
    near = [base[2][0].replace("The ", "A ", 1)] + base[2][1:]      # word 5-gram Jaccard ~0.9
    pages.append(("https://syndicate.example/2", html_page("Article 2", near + ["Syndicated with permission."])))
    expect["https://syndicate.example/2"] = ("minhash_dedup", "near_duplicate")
    pii = article(rng) + ["Contact the editor at editor@velmar.example or call +44 20 7946 0958; "
                          "our server is 192.168.10.20."]
    pages.append(("https://site0.example/contact", html_page("Contact", pii)))
    expect["https://site0.example/contact"] = None
    # spread the pages over the shards (the duplicates after their originals)
    per = -(-len(pages) // n_shards)
    for s in range(n_shards):
        with WarcWriter(crawl / f"crawl-{s:05d}.warc.gz", seed=f"test/{s}") as w:
            w.write_warcinfo({"software": "test"})
            for url, html in pages[s * per:(s + 1) * per]:
                w.write_response(url, html.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"},
                                 date="2024-01-01T00:00:00Z")
            if s == 0:   # a non-HTML response, which the read stage logs and skips
                w.write_response("https://site0.example/logo.png", b"\x89PNG...", {"Content-Type": "image/png"})
                expect["https://site0.example/logo.png"] = ("read", "not_html_200")
    return crawl, expect


CONFIG = pipeline.Config(blocked_domains=("casino.example",))


def read_all(path_glob):
    out = []
    for p in sorted(path_glob):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            out += [json.loads(line) for line in f]
    return out


@pytest.fixture
def crawl(tmp_path, rng):
    return make_crawl(tmp_path, rng)


def test_stage_functions_on_one_document():
    ctx = stages.Context(stages.Config(), filters.load_url_lists(extra_domains=["bad.example"]))
    doc = stages.Doc("s/0", "https://bad.example/x", html="<p>hi</p>")
    assert stages.stage_url_filter(doc, ctx) == "banned_domain"
    doc = stages.Doc("s/1", "https://ok.example/x", html=html_page("T", FRENCH))
    assert stages.stage_url_filter(doc, ctx) is None
    assert stages.stage_extract(doc, ctx) is None and doc.html is None and "Le vieux port" in doc.text
    assert "cookies" not in doc.text and "Copyright" not in doc.text
    assert stages.stage_langid(doc, ctx) == "lang_fr" and doc.lang == "fr" and doc.lang_score > 0.9


def test_run_stages_counts_the_funnel(rng):
    ctx = stages.Context(stages.Config(), filters.load_url_lists())
    funnel = stages.new_funnel()
    kept = stages.run_stages(stages.Doc("s/0", "https://ok.example/a", html=html_page("A", article(rng))), ctx, funnel)
    dropped = stages.run_stages(stages.Doc("s/1", "https://ok.example/b", html=html_page("B", FRENCH)), ctx, funnel)
    assert kept.removed is None and dropped.removed == ("langid", "lang_fr")
    assert funnel["extract"]["docs_in"] == 2 and funnel["langid"]["docs_out"] == 1
    assert funnel["fineweb_quality"]["docs_out"] == 1
    assert funnel["extract"]["bytes_out"] < funnel["extract"]["bytes_in"]


def test_end_to_end_decisions_logs_and_funnel(crawl, tmp_path):
    crawl_dir, expect = crawl
    out = tmp_path / "clean"
    summary = pipeline.clean(crawl_dir, out, workers=1, config=CONFIG)
    docs = read_all(out.glob("*.jsonl.gz"))
    removed = read_all((out / "removed").glob("*.jsonl.gz"))
    kept_urls = {d["url"] for d in docs}
    assert kept_urls == {u for u, e in expect.items() if e is None}
    by_url = {r["url"]: r for r in removed}
    for url, e in expect.items():
        if e is not None:
            assert by_url[url]["stage"] == e[0] and by_url[url]["reason"].startswith(e[1]), by_url[url]
    assert by_url["https://mirror.example/article/1"]["duplicate_of"].endswith("/1")
    contact = next(d for d in docs if d["url"].endswith("/contact"))
    assert "Contact the editor at <EMAIL> or call <PHONE>; our server is <IP>." in contact["text"]
    assert all(d["lang"] == "en" and d["lang_score"] >= 0.65 for d in docs)
    # the funnel chains: what leaves a stage enters the next
    st = summary["stages"]
    order = ["url_filter", "extract", "langid", "gopher_quality", "gopher_repetition", "c4_quality",
             "fineweb_quality", "exact_dedup", "minhash_dedup", "pii"]
    for a, b in zip(order, order[1:]):
        assert st[a]["docs_out"] == st[b]["docs_in"], (a, b)
    assert st["read"]["docs_in"] == len(expect) and st["pii"]["docs_out"] == len(docs)
    assert st["pii"]["found"] == {"email": 1, "phone": 1, "ip": 1}
    assert json.loads((out / "funnel.json").read_text())["stages"]["pii"]["docs_out"] == len(docs)


def _output_bytes(out):
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*.jsonl.gz")) if "work" not in p.parts}


def test_resume_after_interruption_gives_identical_output(crawl, tmp_path):
    crawl_dir, _ = crawl
    fresh = tmp_path / "fresh"
    pipeline.clean(crawl_dir, fresh, workers=1, config=CONFIG)
    # an interrupted run: pass 1 finished for the first shard only, and a half-written
    # temporary file of the second shard lies around
    resumed = tmp_path / "resumed"
    paths = pipeline.find_warcs(crawl_dir)
    pipeline.process_shard(paths[0], resumed / "work", CONFIG)
    (resumed / "work" / ".crawl-00001.kept.jsonl.gz.123.tmp").write_bytes(b"\x1f\x8b garbage")
    marker = resumed / "work" / "crawl-00000.done.json"
    before = marker.stat().st_mtime_ns
    summary = pipeline.clean(crawl_dir, resumed, workers=1, config=CONFIG)
    assert summary["shards_resumed"] == 1 and marker.stat().st_mtime_ns == before
    assert _output_bytes(resumed) == _output_bytes(fresh) != {}
    # a rerun of a finished run changes nothing either
    again = pipeline.clean(crawl_dir, resumed, workers=1, config=CONFIG)
    assert again["shards_resumed"] == 3 and _output_bytes(resumed) == _output_bytes(fresh)
    # other settings make the finished shards stale: all are redone
    other = pipeline.Config(blocked_domains=("casino.example", "other.example"))
    assert pipeline.clean(crawl_dir, resumed, workers=1, config=other)["shards_resumed"] == 0


def test_two_workers_give_the_same_output(crawl, tmp_path):
    crawl_dir, _ = crawl
    pipeline.clean(crawl_dir, tmp_path / "one", workers=1, config=CONFIG)
    pipeline.clean(crawl_dir, tmp_path / "two", workers=2, config=CONFIG)
    assert _output_bytes(tmp_path / "one") == _output_bytes(tmp_path / "two")


def test_real_common_crawl_excerpt(shared_data, tmp_path):
    """The pipeline runs unchanged (with the published thresholds) on a real CC WARC. Its
    language decisions agree with the languages-cld2 field CC stored, on English vs not and
    on the language itself, for >= 90% of the pages that reach language ID (stated bound;
    measured: 16 of 16)."""
    warc = shared_data / "crawl" / "cc-segment-excerpt.warc.gz"
    out = tmp_path / "clean"
    summary = pipeline.clean(warc, out, workers=1, config=pipeline.Config())
    assert summary["stages"]["read"]["docs_in"] == 16
    cld2 = {r.url: r.cld2_languages() for r in iter_records(warc) if r.type == "metadata"}
    ours = {}
    for rec in read_all((out / "removed").glob("*.jsonl.gz")) + read_all(out.glob("*.jsonl.gz")):
        if rec.get("lang") is not None:
            ours[rec["url"]] = rec["lang"]
    assert len(ours) >= 14
    agree = [(ours[u] == "en") == (cld2[u][0][0] == "en") for u in ours if cld2.get(u)]
    assert np.mean(agree) >= 0.9
    same = [ours[u] == cld2[u][0][0] for u in ours if cld2.get(u)]     # zh, ru, nl, de, en
    assert np.mean(same) >= 0.9                                      # (measured: 16 of 16)
    assert ours["http://01spb.ru/company/"] == "ru" and ours["http://037426.cn/"] == "en"
    assert ours["http://0900-hovenier.nl/gelderland/oosterbeek/"] == "nl"


class _Doc:
    def __init__(self, i, lang, title, text):
        self.id, self.kind, self.lang, self.title, self.text = f"d{i}", "news", lang, title, text
        self.facts, self.entities = [], []


class _World:
    """Stands in for minillm.world.world.World: just documents."""

    def __init__(self, rng, n=60):
        self.docs = [_Doc(i, "en", f"Harbour notes number {i}", "\n\n".join(article(rng))) for i in range(n)]
        self.docs += [_Doc(n + i, "fr", f"Le port numéro {i}", "\n\n".join(FRENCH)) for i in range(3)]

    def iter_documents(self):
        return iter(self.docs)


def test_report_against_the_crawl_truth(tmp_path, rng, monkeypatch):
    """pages.py renders documents into a crawl with spam, junk, blocklisted, boilerplate,
    copies and PII, and the truth; the report scores our decisions against it."""
    crawl = tmp_path / "crawl"
    # subtle: the test articles share their sentences, so one page per document here
    # (bundled pages of the real mini-world: the slow tests below)
    monkeypatch.setattr(pages, "PAGE_WORDS", (1, 1))
    pages.crawl(_World(rng), crawl, n_shards=2, seed=3, progress=False)
    out = tmp_path / "clean"
    pipeline.clean(crawl, out, workers=1)
    report = score.score_run(crawl, out)
    truth = list(pages.load_truth(crawl))
    kinds = {t["kind"] for t in truth}
    assert {"good", "spam", "duplicate"} <= kinds
    f = report["filters"]
    assert f["true_positives"] + f["false_negatives"] == sum(t["kind"] in score.BAD_KINDS for t in truth)
    assert f["recall"] >= 0.9 and f["precision"] >= 0.9
    assert report["langid"]["accuracy"] >= 0.98
    assert report["extraction"]["kept"] >= 0.95 and report["extraction"]["boilerplate"] <= 0.05
    assert report["dedup"]["recall"] >= 0.9 and report["dedup"]["precision"] >= 0.95
    assert report["pii"]["values"] == 0 or report["pii"]["recall"] >= 0.99
    assert set(report["targets"]) == set(score.TARGETS)
    assert all(v["met"] == (v["value"] is not None and v["met"]) for v in report["targets"].values())
    text = score.format_report(report)
    assert "spam/junk filters" in text and "dedup" in text


def _world_run(tmp_path, size, shards):
    crawl = tmp_path / "crawl"
    pages.crawl(World.build(seed=0, size=size), crawl, n_shards=shards, seed=0, progress=False)
    pipeline.clean(crawl, tmp_path / "clean", workers=2)
    return score.score_run(crawl, tmp_path / "clean")


@pytest.mark.slow
def test_smoke_world_crawl_end_to_end(tmp_path):
    """The real mini-world (smoke size, ~55 pages of bundled documents): every target
    with slack for the small sample -- with ~9 bad pages, precision is counted as at most
    3 good pages dropped (measured: 3, two bundles that repeat a frame's phrases and a
    worksheet of sums that Gopher's alpha-words rule drops, as it drops real math pages)."""
    report = _world_run(tmp_path, "smoke", 2)
    assert report["filters"]["false_positives"] <= 3 and report["filters"]["recall"] >= 0.9
    assert report["langid"]["accuracy"] >= 0.95
    assert report["extraction"]["kept"] >= 0.95 and report["extraction"]["boilerplate"] <= 0.05
    assert report["pii"]["recall"] >= 0.95


@pytest.mark.slow
def test_small_world_meets_every_target(tmp_path):
    """The small world (~2,600 pages): all of the issue's targets, as bench/pipeline.py
    measures them on the default world."""
    report = _world_run(tmp_path, "small", 4)
    missed = {k: v for k, v in report["targets"].items() if not v["met"]}
    assert not missed, missed


@pytest.mark.slow
def test_killed_process_resumes_to_identical_output(tmp_path, rng):
    """A real interruption: `minillm clean` is killed (SIGKILL) once 2 of 6 shards are done;
    the rerun skips those 2 and writes the same bytes as an uninterrupted run."""
    crawl = tmp_path / "crawl"
    pages.crawl(_World(rng, n=600), crawl, n_shards=6, seed=1, progress=False)
    cmd = [sys.executable, "-m", "minillm", "clean", "--crawl", str(crawl), "--workers", "1"]
    subprocess.run(cmd + ["--out", str(tmp_path / "fresh")], check=True, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(list((out / "work").glob("*.done.json"))) < 2:
        assert proc.poll() is None, "the run finished before it could be interrupted"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((out / "work").glob("*.done.json")))
    assert 2 <= done < 6 and not list(out.glob("*.jsonl.gz"))
    rerun = subprocess.run(cmd + ["--out", str(out)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{done} resumed" in rerun.stdout
    assert _output_bytes(out) == _output_bytes(tmp_path / "fresh") != {}


def test_jsonl_writer_file_is_complete_when_the_with_block_ends(tmp_path):
    """The renamed file holds the whole gzip stream at once, not when the writer is collected."""
    path = tmp_path / "docs.jsonl.gz"
    with pipeline.JsonlGzWriter(path) as writer:
        for i in range(1000):
            writer.write({"id": i, "text": "some text " * 20})
    assert [r["id"] for r in pipeline.read_jsonl_gz(path)] == list(range(1000))   # writer still alive
    assert writer.count == 1000 and not list(tmp_path.glob(".*.tmp"))


def _member(url, body, headers):
    """One response as its own gzip member (CC's layout), as bytes."""
    import io
    buf = io.BytesIO()
    WarcWriter(buf, seed=url).write_response(url, body, headers, date="2024-01-01T00:00:00Z")
    return buf.getvalue()


def test_hostile_records_cost_themselves_never_the_run(tmp_path, rng):
    """Each bad record is one removal at the read stage, with the reader's reason; the
    good pages around it, and the files after it, are cleaned as usual."""
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    html = lambda i: html_page(f"Article {i}", article(rng)).encode("utf-8")
    corrupt = bytearray(_member("https://b.example/corrupt", html(9), {"Content-Type": "text/html"}))
    corrupt[len(corrupt) // 2] ^= 0xFF
    members = [
        _member("https://a.example/1", html(1), {"Content-Type": "text/html; charset=utf-8"}),
        _member("https://b.example/base64", html(2), {"Content-Type": "text/html; charset=base64"}),
        _member("https://b.example/idna", b"<meta charset=idna>" + html(3), {"Content-Type": "text/html"}),
        _member("https://b.example/chunked", b"-5\r\nhello\r\n0\r\n\r\n",
                {"Content-Type": "text/html", "Transfer-Encoding": "chunked"}),
        _member("https://b.example/huge", html(4) * 40, {"Content-Type": "text/html"}),
        bytes(corrupt),
        _member("https://a.example/5", html(5), {"Content-Type": "text/html"}),
    ]
    (crawl / "crawl-00000.warc.gz").write_bytes(b"".join(members))
    (crawl / "crawl-00001.warc.gz").write_bytes(b"this is not a WARC file\r\n")
    (crawl / "crawl-00002.warc.gz").write_bytes(_member("https://a.example/6", html(6), {"Content-Type": "text/html"}))
    config = pipeline.Config(max_record_bytes=40_000)
    summary = pipeline.clean(crawl, tmp_path / "clean", workers=1, config=config)
    removed = {r["id"]: (r["url"], r["reason"]) for r in read_all((tmp_path / "clean" / "removed").glob("*.jsonl.gz"))
               if r["stage"] == "read"}
    assert removed == {"crawl-00000/3": ("https://b.example/chunked", "malformed_http"),
                       "crawl-00000/4": ("https://b.example/huge", "oversize"),
                       "crawl-00000/5": (None, "corrupt_warc"),
                       "crawl-00001/0": (None, "malformed_warc")}
    kept = {r["url"] for r in read_all((tmp_path / "clean").glob("*.jsonl.gz"))}
    assert kept == {"https://a.example/1", "https://b.example/base64", "https://b.example/idna",
                    "https://a.example/5", "https://a.example/6"}
    assert summary["stages"]["read"]["docs_in"] == 9 and summary["stages"]["read"]["docs_out"] == 5


def test_a_truncated_warc_keeps_what_came_before_and_the_run_goes_on(tmp_path, rng):
    """An interrupted download: the file ends inside its last record. The records before
    the damage are cleaned, the shard is named as truncated in the funnel, the other
    shards are cleaned as usual; wget's <angle-bracketed> target URIs are read bare."""
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    html = lambda i: html_page(f"Article {i}", article(rng)).encode("utf-8")
    last = _member("https://a.example/3", html(3), {"Content-Type": "text/html"})
    (crawl / "a.warc.gz").write_bytes(_member("<https://a.example/1>", html(1), {"Content-Type": "text/html"})
                                      + _member("https://a.example/2", html(2), {"Content-Type": "text/html"})
                                      + last[: len(last) // 2])
    (crawl / "b.warc.gz").write_bytes(_member("https://b.example/1", html(4), {"Content-Type": "text/html"}))
    summary = pipeline.clean(crawl, tmp_path / "clean", workers=1)
    kept = {r["url"] for r in read_all((tmp_path / "clean").glob("*.jsonl.gz"))}
    assert kept == {"https://a.example/1", "https://a.example/2", "https://b.example/1"}
    removed = [r for r in read_all((tmp_path / "clean" / "removed").glob("*.jsonl.gz"))]
    assert [(r["id"], r["reason"]) for r in removed] == [("a/2", "truncated_warc")]
    assert summary["truncated_shards"] == ["a"] and summary["stages"]["read"]["truncated"] == 1


def test_a_huge_page_is_bounded(rng):
    """A 32 MB page is cut to extract.MAX_HTML_CHARS before parsing, and the cheap word
    count (gopher_quality) runs before the repetition rules' n-gram loops."""
    from minillm.internet.extract import MAX_HTML_CHARS
    ctx = stages.Context(stages.Config(), filters.load_url_lists())
    par = "<p>" + " ".join(article(rng)) + "</p>"
    page = "<html><body>" + par * (32_000_000 // len(par)) + "</body></html>"
    assert len(page) > 30 * MAX_HTML_CHARS
    funnel = stages.new_funnel()
    doc = stages.run_stages(stages.Doc("s/0", "https://big.example/", html=page), ctx, funnel)
    assert len(doc.text) <= MAX_HTML_CHARS
    names = [name for name, _ in stages.STAGES]
    assert names.index("gopher_quality") < names.index("gopher_repetition")
    assert doc.removed == ("gopher_quality", "too_many_words") and funnel["gopher_repetition"]["docs_in"] == 0
