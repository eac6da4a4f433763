"""Benchmark the cleaning pipeline (minillm/internet/pipeline.py) with 1 and N worker processes.

    python bench/pipeline.py                  # the default world's crawl, 1 and 2 workers
    python bench/pipeline.py --quick          # the small world's crawl: under a minute
    python bench/pipeline.py --threads 4      # 1 and 4 workers

It builds the mini-world and its crawl once (cached under runs/bench-pipeline/<size>/crawl;
their time is not measured), then cleans the crawl from scratch with 1 worker (the
reference) and with N workers, and prints per stage

    pages/s and MB/s   documents and bytes entering the stage / the seconds spent in it,
                       summed over workers: the throughput of ONE core on that stage

and end to end (wall clock, all passes: filter, global dedup, PII, writing): pages/s and
MB/s of HTML, with the speed-up of N workers over 1. Both runs must write byte-identical
output (checked). Then it scores the output against the crawl's ground truth (the quality
report of `minillm clean --report`), scores main-text extraction on the real-web gold set
(tests/extract_gold.py: pages of ../shared/data/crawl and pages we wrote) for minillm next
to trafilatura and resiliparse (test extras) on the same pages, and ends with one JSON line
holding the issues' targets measured in this run: {"targets": {name: {"value", "goal", "met"}}}.
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))        # extract_gold: the gold set and its score

from minillm.common import runs_dir  # noqa: E402
from minillm.crawl import pages  # noqa: E402
import extract_gold  # noqa: E402
from minillm.internet import pipeline, score  # noqa: E402
from minillm.internet.extract import extract_text  # noqa: E402
from minillm.world.world import World  # noqa: E402

STAGES = ["read", "url_filter", "extract", "langid", "gopher_quality", "gopher_repetition", "c4_quality",
          "fineweb_quality", "signatures", "exact_dedup", "minhash_dedup", "pii"]


def make_crawl(size, shards, root):
    """The crawl of World.build(seed=0, size) in root/crawl (reused when already complete)."""
    crawl = root / "crawl"
    summary = crawl / "crawl.json"
    if summary.exists() and json.loads(summary.read_text()).get("version") != pages.CRAWL_VERSION:
        shutil.rmtree(crawl)                              # made by an older crawl layout
    if not summary.exists():
        t0 = time.perf_counter()
        world = World.build(seed=0, size=size)
        made = pages.crawl(world, crawl, n_shards=shards, seed=0, progress=False)
        print(f"built the {size} world and its crawl: {made['pages']} pages, "
              f"{made['warc_bytes'] / 1e6:.1f} MB of WARC in {time.perf_counter() - t0:.1f}s -> {crawl}")
    return crawl


def clean(crawl, out, workers):
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    summary = pipeline.clean(crawl, out, workers=workers)
    summary["wall"] = time.perf_counter() - t0
    return summary


def output_bytes(out):
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*.jsonl.gz")) if "work" not in p.parts}


def rate(n, seconds):
    return n / seconds if seconds > 0 else float("inf")


def print_table(runs):
    """Per-stage single-core throughput and end-to-end wall-clock throughput, side by side."""
    ws = list(runs)
    head = f"{'stage':<18}" + "".join(f"{f'{w} worker' + ('s' if w > 1 else ''):>26}" for w in ws)
    print(head)
    print(f"{'':<18}" + "".join(f"{'pages/s':>13}{'MB/s':>13}" for _ in ws))
    for stage in STAGES:
        cells = []
        for w in ws:
            row = runs[w]["stages"][stage]
            cells.append(f"{rate(row['docs_in'], row['seconds']):>13.0f}{rate(row['bytes_in'], row['seconds']) / 1e6:>13.2f}")
        print(f"{stage:<18}" + "".join(cells))
    pages = runs[ws[0]]["stages"]["read"]["docs_in"]
    html_mb = runs[ws[0]]["stages"]["read"]["bytes_in"] / 1e6
    cells = [f"{pages / runs[w]['wall']:>13.0f}{html_mb / runs[w]['wall']:>13.2f}" for w in ws]
    print(f"{'end to end':<18}" + "".join(cells))
    for w in ws[1:]:
        print(f"speed-up of {w} workers over 1 (end to end): {runs[ws[0]]['wall'] / runs[w]['wall']:.2f}x")
    print(f"({pages} pages, {html_mb:.1f} MB of HTML; stage rates are per core-second, "
          f"end to end is wall clock)")


def gold_targets():
    """Print precision/recall/F1 on the extraction gold set for minillm and its peers;
    returns the issue's extraction targets (empty when the shared pages are absent)."""
    shared = Path(os.environ.get("MINILLM_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not (shared / "crawl").is_dir():
        print(f"extraction gold set: skipped, the real-web pages are not at {shared / 'crawl'}")
        return {}
    pages = extract_gold.load_pages(shared)
    extractors = {"minillm": extract_text, **extract_gold.peers()}
    print(f"extraction gold set: {len(pages)} pages ({', '.join(extractors)}; peers are test extras)")
    print(f"{'':<14}{'precision':>10}{'recall':>10}{'F1':>10}{'seconds':>10}{'empty':>8}")
    outputs, results = {}, {}
    for name, extract in extractors.items():
        t0 = time.perf_counter()
        outputs[name] = {page: extract(html) for page, html, _, _ in pages}
        seconds = time.perf_counter() - t0
        r = results[name] = extract_gold.score(outputs[name], pages)
        empty = sum(not text.strip() for text in outputs[name].values())
        print(f"{name:<14}{r['precision']:>10.3f}{r['recall']:>10.3f}{r['f1']:>10.3f}{seconds:>10.2f}{empty:>8}")
    f1 = round(results["minillm"]["f1"], 4)
    targets = {"gold_f1": {"value": f1, "goal": ">= 0.92", "met": f1 >= 0.92}}
    if "trafilatura" in results:
        peer = round(results["trafilatura"]["f1"], 4)
        targets["gold_f1_vs_trafilatura"] = {"value": round(f1 - peer, 4), "goal": ">= -0.02",
                                             "met": f1 >= peer - 0.02}
        empty = sum(not outputs["minillm"][p].strip() and len(outputs["trafilatura"][p]) >= 200
                    for p in outputs["minillm"])
        targets["gold_empty_where_trafilatura_finds_text"] = {"value": empty, "goal": "== 0", "met": empty == 0}
    return targets


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the small world's crawl (under a minute)")
    ap.add_argument("--threads", type=int, default=2, help="worker processes of the second run (default 2)")
    ap.add_argument("--size", help="world size (default: default; --quick: small)")
    ap.add_argument("--shards", type=int, default=8, help="WARC files in the crawl")
    ap.add_argument("--root", help="working directory (default runs/bench-pipeline/<size>)")
    args = ap.parse_args()
    size = args.size or ("small" if args.quick else "default")
    root = Path(args.root) if args.root else runs_dir() / "bench-pipeline" / str(size)
    crawl = make_crawl(size, args.shards, root)
    workers = [1] + ([args.threads] if args.threads > 1 else [])
    runs = {w: clean(crawl, root / f"clean-{w}", w) for w in workers}
    if len(workers) > 1:
        same = output_bytes(root / "clean-1") == output_bytes(root / f"clean-{workers[-1]}")
        print(f"output of 1 and {workers[-1]} workers byte-identical: {same}")
        if not same:
            raise SystemExit("outputs differ between worker counts: a determinism bug")
    print_table(runs)
    report = score.score_run(crawl, root / f"clean-{workers[-1]}")
    print(score.format_report(report))
    targets = {**report["targets"], **gold_targets()}
    print(json.dumps({"targets": targets}))


if __name__ == "__main__":
    main()
