"""`minillm download` and `minillm clean`: the command lines of step 1, getting the text.

    minillm download tinyshakespeare                       # download.py: resumable, checksummed
    minillm clean --crawl runs/x/crawl --out runs/x/clean --workers 2 --report
    minillm clean --crawl DIR_OF_REAL_CC_WARCS --out /tmp/cc --report
    minillm clean --run x --tokenizer runs/x/tokenizer.json --shards runs/x/shards   # + token shards

An earlier clean in --out is resumed (--force starts over); a download already there is
kept. clean runs pipeline.clean over a crawl's WARC files and prints where the documents, the
removal logs and the funnel went; --report then scores the run against the crawl's ground
truth (score.py) and writes report.json beside them. Read pipeline.py for the passes.
"""
from pathlib import Path

from minillm.common import (
    FORCE_HELP, Output, UserError, fraction, non_negative_int, num_cores, positive_float,
    positive_int, prepare_dir, remove_output, runs_dir, write_json)
from minillm.internet import score
from minillm.internet.download import CATALOGUE, GROUPS, download, resolve
from minillm.internet.filters import check_url_filter
from minillm.internet.pipeline import OUTPUT, clean
from minillm.internet.stages import Config
from minillm.internet.warc import MAX_RECORD_BYTES


def add_download_arguments(parser):
    parser.add_argument("source", nargs="?", help="catalogue name or http(s) URL")
    parser.add_argument("--out", help="output directory (default: runs/downloads)")
    parser.add_argument("--sha256", help="expected sha256 (hex); overrides the catalogue's")
    parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
    parser.add_argument("--retries", type=non_negative_int, default=5, help="failed attempts in a row before giving up")
    parser.add_argument("--timeout", type=positive_float, default=30.0, help="socket timeout in seconds")
    parser.add_argument("--force", action="store_true", help="download again over an earlier download; "
                        "write into a non-empty directory (its files are kept)")


def run_download(args):
    if args.list:
        for name, src in CATALOGUE.items():
            print(f"{name:<26} {src.note}\n{'':<26} {src.url}\n"
                  f"{'':<26} sha256 {src.sha256 or 'unknown (printed on first download)'}")
        for name, members in GROUPS.items():
            print(f"{name:<26} all of {', '.join(members)}, into one directory")
        return 0
    if not args.source:
        raise UserError(f"say what to download: a URL or one of {', '.join([*CATALOGUE, *GROUPS])}")
    if args.source in GROUPS:
        return download_group(args)
    url, sha, name = resolve(args.source)
    if args.sha256:
        sha = args.sha256.strip().lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise UserError(f"--sha256 must be 64 hex digits, got {args.sha256!r}")
    out = Path(args.out) if args.out else runs_dir() / "downloads"
    # the directory collects downloads: this one's file (and its .part) is all --force removes
    prepare_dir(out, Output("downloads", (name, name + ".part")), force=args.force)
    if (out / name).is_dir():
        raise UserError(f"{out / name} is a directory; choose another --out")
    path = download(url, out / name, sha, retries=args.retries, timeout=args.timeout)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def download_group(args):
    """Every entry of a group into one directory (default runs/downloads/<group>), each
    checked against its catalogue sha256."""
    if args.sha256:
        raise UserError(f"--sha256 checks one file; {args.source} is {len(GROUPS[args.source])} files "
                        "with their own checksums")
    entries = [resolve(name) for name in GROUPS[args.source]]
    out = Path(args.out) if args.out else runs_dir() / "downloads" / args.source.removeprefix("fineweb-")
    prepare_dir(out, Output("downloads", tuple(f for _, _, n in entries for f in (n, n + ".part"))),
                force=args.force)
    for url, sha, name in entries:
        download(url, out / name, sha, retries=args.retries, timeout=args.timeout)
    print(f"wrote {', '.join(n for _, _, n in entries)} to {out}")
    if args.source == "fineweb-url-filter":
        print(f"use them: minillm clean --url-filter {out}  (or MINILLM_URL_FILTER={out})")


def add_clean_arguments(parser):
    parser.add_argument("--run", default="default", help="run name: defaults below live in runs/<run>/")
    parser.add_argument("--crawl", help="directory of WARC files, or one .warc.gz (default runs/<run>/crawl)")
    parser.add_argument("--out", help="output directory (default runs/<run>/clean)")
    parser.add_argument("--workers", type=positive_int, default=min(2, num_cores()), help="worker processes")
    parser.add_argument("--langs", default="en", help="languages to keep, comma separated (default en)")
    parser.add_argument("--min-lang-score", type=fraction, default=0.65, help="language confidence to keep")
    parser.add_argument("--url-filter", default=None, help="directory with FineWeb's URL word lists "
                        "(banned_words.txt, soft_banned_words.txt, banned_subwords.txt)")
    parser.add_argument("--block-domains", default="", help="extra blocked domains, comma separated")
    parser.add_argument("--max-record-mb", type=float, default=MAX_RECORD_BYTES / 2**20,
                        help="WARC records (and bodies after gzip) longer than this many MiB are "
                        "removed unread, reason oversize (default %(default)g)")
    parser.add_argument("--report", action="store_true", help="score against the crawl's ground truth")
    parser.add_argument("--tokenizer", help="tokenizer.json: also write token shards (needs --shards)")
    parser.add_argument("--shards", help="directory for the token shards")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)


def run_clean(args):
    if bool(args.tokenizer) != bool(args.shards):
        raise UserError("--tokenizer and --shards go together")
    crawl = args.crawl or str(runs_dir() / args.run / "crawl")
    out = args.out or str(runs_dir() / args.run / "clean")
    inputs = {"--crawl": crawl, "--tokenizer": args.tokenizer}
    if not Path(crawl).exists():
        raise UserError(f"crawl not found: {crawl}; run `minillm crawl --out {crawl}` first")
    check_url_filter(args.url_filter)
    if not args.max_record_mb > 0:
        raise UserError(f"--max-record-mb must be a positive number of MiB, got {args.max_record_mb}")
    max_bytes = int(min(args.max_record_mb, 2**40) * 2**20)
    prepare_dir(out, OUTPUT, force=args.force, inputs=inputs)
    if args.shards:
        # Optional path into a later stage: --tokenizer hands the clean documents to
        # pretraining's shard writer (what `minillm speedrun` does as its own stage).
        from minillm.pretrain import shards
        # shards are derived from the clean documents: an earlier set is written again
        if prepare_dir(args.shards, shards.OUTPUT, force=args.force,
                       inputs={**inputs, "--out": out}) == "resume":
            remove_output(args.shards, shards.OUTPUT)
    config = Config(langs=tuple(x.strip() for x in args.langs.split(",") if x.strip()),
                    min_lang_score=args.min_lang_score, url_filter_dir=args.url_filter,
                    blocked_domains=tuple(d.strip() for d in args.block_domains.split(",") if d.strip()),
                    max_record_bytes=max_bytes, max_body_bytes=max_bytes)
    summary = clean(crawl, out, max(1, args.workers), config)
    st = summary["stages"]
    print(f"clean: {st['read']['docs_in']} pages -> {st['pii']['docs_out']} documents "
          f"({st['pii']['bytes_out'] / 1e6:.2f} MB) in {summary['wall_seconds']:.1f}s "
          f"[{summary['shards']} shards, {summary['shards_resumed']} resumed]")
    print(f"  documents: {out}/*.jsonl.gz   removals: {out}/removed/   funnel: {out}/funnel.json")
    print(f"  URL word lists: {summary['url_lists']}")
    if summary["truncated_shards"]:
        print(f"  truncated WARC files (records before the damage kept; see removed/): "
              f"{', '.join(summary['truncated_shards'])}")
    if args.report:
        report = score.score_run(crawl, out)
        write_json(Path(out) / "report.json", report)
        print(score.format_report(report))
        print(f"  report: {out}/report.json")
    if args.tokenizer:
        n_docs, n_tokens = shards.write_token_shards(out, args.tokenizer, args.shards)
        print(f"  token shards: {n_docs} documents, {n_tokens} tokens -> {args.shards}")
