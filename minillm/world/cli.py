"""`minillm world build|show|stats`: build a mini-world, look up an entity, summarise one.

    minillm world build --seed 0 --size default --out runs/default/world
    minillm world show "Lira Vendel" --dir runs/default/world     # a name or an id
    minillm world stats --dir runs/default/world

build writes the directory described in store.py (over the same world it does nothing,
over another one it needs --force; common.prepare_dir has the rules for every --out); show prints an entity's facts, how many
documents state each, and a few documents that name it; stats prints stats.json as tables.
Read world.py for what a world holds.
"""
import time
from pathlib import Path

from minillm.common import (
    FORCE, FORCE_HELP, UserError, non_negative_int, prepare_dir, read_json, runs_dir)
from minillm.world.store import OUTPUT, reading_documents
from minillm.world.world import SIZES, World


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", required=True, metavar="{build,show,stats}")
    b = sub.add_parser("build", help="generate a world and write it to a directory")
    b.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    b.add_argument("--size", default="default",
                   help=f"{' | '.join(SIZES)} or bytes such as 20MB (default: default = 10 MB)")
    b.add_argument("--out", default=None, help="output directory (default: runs/default/world)")
    b.add_argument("--force", action="store_true", help=FORCE_HELP)
    s = sub.add_parser("show", help="an entity's facts, exposure and sample documents")
    s.add_argument("entity", help="a name (\"Lira Vendel\") or an id (person-00007)")
    s.add_argument("--dir", default=None, help="world directory (default: runs/default/world)")
    s.add_argument("--docs", type=non_negative_int, default=3, help="sample documents to show (default 3)")
    t = sub.add_parser("stats", help="entities, facts, documents and bytes by kind and bucket")
    t.add_argument("--dir", default=None, help="world directory (default: runs/default/world)")


def run(args):
    if args.action == "build":
        return _build(Path(args.out or runs_dir() / "default" / "world"), args.seed, args.size, args.force)
    folder = Path(args.dir or runs_dir() / "default" / "world")
    if not (folder / "stats.json").is_file():
        raise UserError(f"no world in {folder}; build one with `minillm world build --out {folder}`")
    if args.action == "show":
        return _show(folder, args.entity, args.docs)
    return _stats(read_json(folder / "stats.json", "world stats"), folder)


def _build(out, seed, size, force=False):
    start = time.time()
    world = World.build(seed=seed, size=size)
    state = prepare_dir(out, OUTPUT, force=force)
    if state == "resume" and (out / "stats.json").is_file():
        # a finished world: the same settings give the same bytes, other settings need --force
        old = read_json(out / "stats.json", "world stats")
        if (old.get("seed"), old.get("size")) == (world.seed, world.size):
            print(f"world: {out}/ already holds this world (seed {seed}, size {size}); "
                  f"pass {FORCE} to build it again")
            return 0
        raise UserError(f"{out} holds a world with seed {old.get('seed')}, size {old.get('size')}; "
                        f"pass {FORCE} to replace it or choose another --out")
    print(f"world: seed {seed}, {len(world.entities)} entities, {len(world.facts)} facts, "
          f"{world.n_documents} documents planned")
    summary = world.save(out, progress=True)
    print(f"wrote {summary['documents']} documents, {summary['bytes'] / 1e6:.2f} MB of text "
          f"in {time.time() - start:.1f} s to {out}/")
    print("  documents.jsonl.gz entities.jsonl facts.jsonl probes_cloze.jsonl probes_qa.jsonl stats.json")
    return 0


def _show(folder, key, n_docs):
    world = World.load(folder)
    e = world.find(key)
    if e is None:
        near = [x.name for x in world.entities.values() if key.lower() in x.name.lower()][:8]
        hint = f"; did you mean: {', '.join(near)}" if near else ""
        raise UserError(f"no entity {key!r} in {folder}{hint}")
    print(f"{e.name}  ({e.id}, {e.type}, bucket {world.bucket[e.id]}, "
          f"in {world.exposure[e.id]} documents)")
    for rel, value in e.attrs.items():
        print(f"  {rel:<12} {value:<24} stated in {world.fact_mentions.get((e.id, rel), 0)} documents")
    shown = 0
    with reading_documents(folder):
        for doc in world.iter_documents():
            if shown >= n_docs:
                break
            if e.id in doc.entities:
                shown += 1
                text = doc.text if len(doc.text) < 600 else doc.text[:600] + " ..."
                print(f"\n--- {doc.id} [{doc.kind}, {doc.lang}] {doc.title}\n{text}")
    print(f"\n(from {folder})")
    return 0


def _stats(s, folder):
    """s: the world's stats.json."""
    print(f"world in {folder}: seed {s['seed']}, size {s['size']:,} bytes requested")
    print(f"entities {s['entities']:,} {s['entities_by_type']}   facts {s['facts']:,}")
    print(f"documents {s['documents']:,}   text {s['bytes']:,} bytes")
    for key in ("kind", "lang", "bucket"):
        print(f"\nby {key}:")
        for name, d in s[f"by_{key}"].items():
            share = d["bytes"] / max(1, s["bytes"])
            print(f"  {name:<14} {d['documents']:>9,} docs {d['bytes']:>13,} bytes  {share:6.1%}")
    print("\nexposure (documents naming an entity) by bucket:")
    for b, d in s["exposure"].items():
        print(f"  {b:<6} {d['entities']:>6,} entities {d['facts']:>7,} facts   exposure "
              f"{d['min_exposure']}..{d['max_exposure']} (mean {d['mean_exposure']})")
    return 0
