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
report of `minillm clean --report`) and ends with one JSON line holding the issue's quality
targets measured in this run: {"targets": {name: {"value", "goal", "met"}}}.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minillm.common import runs_dir  # noqa: E402
from minillm.crawl import pages  # noqa: E402
from minillm.internet import pipeline, score  # noqa: E402
from minillm.world.world import World  # noqa: E402

STAGES = ["read", "url_filter", "extract", "langid", "gopher_repetition", "gopher_quality", "c4_quality",
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
    print(json.dumps({"targets": report["targets"]}))


if __name__ == "__main__":
    main()
