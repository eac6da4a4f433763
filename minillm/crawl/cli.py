"""`minillm crawl`: render a mini-world as a web crawl in WARC files, with the ground truth.

    minillm crawl                                       # runs/default/world -> runs/default/crawl
    minillm crawl --world DIR --out DIR --shards 8 --seed 0
    minillm crawl --world-size smoke --out /tmp/crawl   # build a world in memory first

Loads (or builds) the world, runs pages.crawl and prints the page shares and where the
files went. An earlier crawl in --out is resumed, or replaced with --force. Read pages.py for what the crawl writes.
"""
from pathlib import Path

from minillm.common import FORCE_HELP, UserError, prepare_dir, runs_dir
from minillm.crawl.pages import OUTPUT, crawl
from minillm.internet.filters import check_url_filter
from minillm.world.store import reading_documents
from minillm.world.world import World


def add_arguments(parser):
    parser.add_argument("--run", default="default", help="run name: defaults below live in runs/<run>/")
    parser.add_argument("--world", help="world directory (default runs/<run>/world)")
    parser.add_argument("--world-size", help="build the world in memory at this size instead "
                                             "(smoke | small | default | large)")
    parser.add_argument("--world-seed", type=int, default=0, help="seed for --world-size")
    parser.add_argument("--out", help="output directory (default runs/<run>/crawl)")
    parser.add_argument("--shards", type=int, default=8, help="number of WARC files")
    parser.add_argument("--seed", type=int, default=0, help="crawl seed (sites, noise, edits)")
    parser.add_argument("--url-filter", help="directory with FineWeb's URL word lists")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    if args.shards < 1:
        raise UserError("--shards must be at least 1")
    base = runs_dir() / args.run
    out = Path(args.out) if args.out else base / "crawl"
    world_dir = None if args.world_size else Path(args.world) if args.world else base / "world"
    if world_dir is not None and not world_dir.exists():
        raise UserError(f"no world at {world_dir}; run `minillm world build --out {world_dir}` "
                        "or pass --world-size smoke")
    check_url_filter(args.url_filter)
    prepare_dir(out, OUTPUT, force=args.force, inputs={"--world": world_dir})
    if args.world_size:
        size = int(args.world_size) if args.world_size.isdigit() else args.world_size
        world, source = World.build(seed=args.world_seed, size=size), f"built ({args.world_size})"
    else:
        world, source = World.load(world_dir), str(world_dir)
    with reading_documents(world_dir or out):
        s = crawl(world, out, args.shards, args.seed, progress=not args.no_progress,
                  url_filter=args.url_filter)
    shares = ", ".join(f"{k} {v:.1%}" for k, v in s["shares"].items())
    print(f"crawl: {s['pages']} pages from world {source} in {s['seconds']:.1f}s, "
          f"{s['warc_bytes'] / 1e6:.1f} MB in {s['shards']} shards ({s['shards_resumed']} kept from an earlier run)")
    print(f"  {shares}")
    print(f"  WARCs: {out}/crawl-*.warc.gz   truth: {out}/truth/   summary: {out}/crawl.json")
