"""`minillm eval`: run the base-model evals (base.py) on a checkpoint and print the table.

    minillm eval --ckpt runs/default/base                      # table + runs/default/base/evals.json
    minillm eval --ckpt runs/default/base --world runs/default/world --only cloze,few_shot

The world, the token shards and the clean documents default to the checkpoint's run
directory (runs/<name>/world, the shards it was trained on, runs/<name>/clean); an eval
whose input is missing prints "skipped" with the reason. The results, without the table
rows, go to <ckpt>/evals.json (or --out; an earlier results file is rewritten, keeping the
evals --only left out, any other file only with --force).

Read next: base.py (the evals themselves).
"""
import json
from pathlib import Path

from minillm import clib
from minillm.common import UserError, prepare_file, thread_count, write_json
from minillm.evals.base import EVALS, context_for, format_table, run_evals


def add_arguments(parser):
    a = parser.add_argument
    a("--ckpt", required=True, help="checkpoint directory (e.g. runs/default/base)")
    a("--world", help="mini-world directory (default: <ckpt>/../world)")
    a("--shards", help="token shards for the validation loss (default: the checkpoint's training data)")
    a("--clean", help="clean documents for regurgitation (default: <ckpt>/../clean)")
    a("--only", help=f"comma-separated evals (default all: {', '.join(EVALS)})")
    a("--limit", type=int, default=200, help="probes per bucket / lines per group (default 200)")
    a("--out", help="where to write the results (default: <ckpt>/evals.json)")
    a("--threads", type=thread_count, help="kernel threads (default all cores)")
    a("--force", action="store_true", help="replace an --out file that is not an earlier results file")


def run(args):
    # a path given but absent is a mistake: the eval it feeds would be skipped silently
    for flag, path in (("--world", args.world), ("--shards", args.shards), ("--clean", args.clean)):
        if path is not None and not Path(path).exists():
            raise UserError(f"{flag} {path} does not exist")
    if args.world is not None and not (Path(args.world) / "stats.json").is_file():
        raise UserError(f"--world {args.world} is not a mini-world (no stats.json); "
                        "build one with `minillm world build`")
    if args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    if args.threads:
        clib.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path(args.ckpt) / "evals.json"
    # an earlier results file is rewritten (the table of this checkpoint now); anything else
    # needs --force, and an input never
    earlier = _earlier_results(out)
    prepare_file(out, force=args.force or earlier is not None,
                 inputs={"--ckpt": args.ckpt, "--world": args.world, "--shards": args.shards,
                         "--clean": args.clean})
    ctx = context_for(args.ckpt, args.world, args.shards, args.clean, args.limit)
    names = [n.strip() for n in args.only.split(",")] if args.only else None
    results = run_evals(ctx, names)
    print(f"evals of {args.ckpt}:")
    print(format_table(results))
    fresh = {name: {k: v for k, v in r.items() if k != "table"} for name, r in results.items()}
    if names and earlier:                 # --only: the other evals' earlier results stay
        fresh = {**earlier, **fresh}
    write_json(out, fresh)
    print(f"results: {out}")
    return 0


def _earlier_results(path):
    """The results file this command wrote earlier at path (a JSON object keyed by eval
    names), or None for anything else."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d and set(d) <= set(EVALS) else None
