"""Saving, loading and inspecting a mini-world on disk (`minillm world build|show|stats`).

Part of minillm.world.world. Files of a world directory:

    documents.jsonl.gz   one JSON document a line (Document fields), gzip with mtime 0
    entities.jsonl       id, type, name, bucket, exposure, attrs, links, extra
    facts.jsonl          entity, relation, value, bucket, mentions (documents stating it)
    probes_cloze.jsonl   Probe fields, one a line
    probes_qa.jsonl
    stats.json           seed, size, counts and bytes by kind / language / bucket,
                         exposure by bucket, content_sha256 of the uncompressed documents

Every file is written atomically; documents are streamed, so memory stays bounded.
"""
import gzip
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

from minillm.common import UserError, atomic_path, read_json, write_json
from minillm.world.entities import BUCKETS, Entity

_DOC_FILE = "documents.jsonl.gz"


def _line(obj):
    return json.dumps(obj, ensure_ascii=False) + "\n"


def document_stats(world, docs, sink=None):
    """Stream documents (into sink(line) if given): (stats dict, content sha256)."""
    sha = hashlib.sha256()
    by = {"kind": Counter(), "lang": Counter(), "bucket": Counter()}
    nbytes = {"kind": Counter(), "lang": Counter(), "bucket": Counter()}
    total_docs = total_bytes = 0
    for doc in docs:
        line = _line(doc.to_json())
        sha.update(line.encode("utf-8"))
        if sink:
            sink(line)
        size = len(doc.text.encode("utf-8"))
        total_docs += 1
        total_bytes += size
        for key in by:
            by[key][getattr(doc, key)] += 1
            nbytes[key][getattr(doc, key)] += size
    stats = {"documents": total_docs, "bytes": total_bytes}
    for key in by:
        stats[f"by_{key}"] = {k: {"documents": by[key][k], "bytes": nbytes[key][k]}
                              for k in sorted(by[key])}
    return stats, sha.hexdigest()


def _exposure_summary(world):
    out = {}
    for b in BUCKETS:
        ids = [i for i in world.entities if world.bucket[i] == b]
        counts = [world.exposure[i] for i in ids]
        facts = [n for (e, r), n in world.fact_mentions.items() if world.bucket[e] == b]
        out[b] = {"entities": len(ids), "facts": len(facts),
                  "min_exposure": min(counts, default=0), "max_exposure": max(counts, default=0),
                  "mean_exposure": round(sum(counts) / max(1, len(counts)), 2),
                  "min_fact_mentions": min(facts, default=0)}
    return out


def _write_lines(path, rows):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(_line(row))


def save_world(world, out, progress=False):
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    # stats.json is written last: without it the directory is not a world, so a build
    # interrupted half-way over an older world can never be loaded as a mix of both
    (out / "stats.json").unlink(missing_ok=True)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=world.n_documents, unit="doc", desc="world", mininterval=0.5)
    with atomic_path(out / _DOC_FILE) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            def sink(line):
                gz.write(line.encode("utf-8"))
                if bar:
                    bar.update(1)
            stats, sha = document_stats(world, world.iter_documents(), sink)
    if bar:
        bar.close()
    _write_lines(out / "entities.jsonl", (
        {"id": e.id, "type": e.type, "name": e.name, "bucket": world.bucket[e.id],
         "exposure": world.exposure[e.id], "attrs": e.attrs, "links": e.links, "extra": e.extra}
        for e in world.entities.values()))
    _write_lines(out / "facts.jsonl", (
        {"entity": f.entity, "relation": f.relation, "value": f.value,
         "bucket": world.bucket[f.entity], "mentions": world.fact_mentions[f.entity, f.relation]}
        for f in world.facts))
    for kind in ("cloze", "qa"):
        _write_lines(out / f"probes_{kind}.jsonl", (p.to_json() for p in world.probes(kind)))
    types = Counter(e.type for e in world.entities.values())
    stats = {**{"format": "minillm-world", "version": 1}, "seed": world.seed, "size": world.size,
             "entities": len(world.entities), "entities_by_type": dict(sorted(types.items())),
             "facts": len(world.facts), **stats, "exposure": _exposure_summary(world),
             "probes": {b: sum(1 for e in world.facts if world.bucket[e.entity] == b) for b in BUCKETS},
             "content_sha256": sha, "build_seconds": round(time.time() - start, 2)}
    world._stats = stats
    write_json(out / "stats.json", {k: v for k, v in stats.items() if k != "build_seconds"})
    return stats


def load_world(cls, folder):
    meta = read_json(folder / "stats.json", "world stats")
    if meta.get("format") != "minillm-world":
        raise UserError(f"{folder} does not hold a minillm world (stats.json has no format tag)")
    entities, bucket, exposure = {}, {}, {}
    try:
        with open(folder / "entities.jsonl", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                entities[d["id"]] = Entity(d["id"], d["type"], d["name"], d["attrs"], d["links"], d["extra"])
                bucket[d["id"]], exposure[d["id"]] = d["bucket"], d["exposure"]
        mentions = {}
        with open(folder / "facts.jsonl", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                mentions[d["entity"], d["relation"]] = d["mentions"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise UserError(f"world in {folder} is incomplete or corrupt ({e}); rebuild it "
                        "with `minillm world build`") from None
    world = cls(meta["seed"], meta["size"], entities, bucket)
    world.exposure, world.fact_mentions = exposure, mentions
    world.n_documents, world._dir, world._stats = meta["documents"], Path(folder), meta
    return world


# ---------------------------------------------------------------------- command line

def cli_build(out, seed, size):
    from minillm.world.world import World
    start = time.time()
    world = World.build(seed=seed, size=size)
    print(f"world: seed {seed}, {len(world.entities)} entities, {len(world.facts)} facts, "
          f"{world.n_documents} documents planned")
    stats = world.save(out, progress=True)
    print(f"wrote {stats['documents']} documents, {stats['bytes'] / 1e6:.2f} MB of text "
          f"in {time.time() - start:.1f} s to {out}/")
    print(f"  documents.jsonl.gz entities.jsonl facts.jsonl probes_cloze.jsonl probes_qa.jsonl stats.json")
    return 0


def cli_show(folder, key, n_docs):
    from minillm.world.world import World
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
    for doc in world.iter_documents():
        if shown >= n_docs:
            break
        if e.id in doc.entities:
            shown += 1
            text = doc.text if len(doc.text) < 600 else doc.text[:600] + " ..."
            print(f"\n--- {doc.id} [{doc.kind}, {doc.lang}] {doc.title}\n{text}")
    print(f"\n(from {folder})")
    return 0


def cli_stats(stats, folder):
    print(f"world in {folder}: seed {stats['seed']}, size {stats['size']:,} bytes requested")
    print(f"entities {stats['entities']:,} {stats['entities_by_type']}   facts {stats['facts']:,}")
    print(f"documents {stats['documents']:,}   text {stats['bytes']:,} bytes")
    for key in ("kind", "lang", "bucket"):
        print(f"\nby {key}:")
        for name, d in stats[f"by_{key}"].items():
            share = d["bytes"] / max(1, stats["bytes"])
            print(f"  {name:<14} {d['documents']:>9,} docs {d['bytes']:>13,} bytes  {share:6.1%}")
    print("\nexposure (documents naming an entity) by bucket:")
    for b, d in stats["exposure"].items():
        print(f"  {b:<6} {d['entities']:>6,} entities {d['facts']:>7,} facts   exposure "
              f"{d['min_exposure']}..{d['max_exposure']} (mean {d['mean_exposure']})")
    return 0
