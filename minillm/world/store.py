"""A mini-world on disk: World.save and World.load read and write these files.

    documents.jsonl.gz   one JSON document a line (Document fields), gzip with mtime 0
    entities.jsonl       id, type, name, bucket, exposure, attrs, links, extra
    facts.jsonl          entity, relation, value, bucket, mentions (documents stating it)
    probes_cloze.jsonl   Probe fields, one a line
    probes_qa.jsonl
    stats.json           seed, size, counts and bytes by kind / language / bucket,
                         exposure by bucket, content_sha256 of the uncompressed documents
                         (the same on any machine, even where gzip's bytes might differ)

Every file is written atomically; documents are streamed, so memory stays bounded.
`minillm world build` (cli.py) writes a world; crawl/ and the evals read it back.
"""
import contextlib
import gzip
import hashlib
import json
import zlib
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from minillm.common import Output, UserError, atomic_path, read_json, write_json
from minillm.world.entities import BUCKETS, Entity

_DOC_FILE = "documents.jsonl.gz"
# what `minillm world build` writes (common.prepare_dir: resume, --force, refusals)
OUTPUT = Output("world", (_DOC_FILE, "entities.jsonl", "facts.jsonl", "probes_cloze.jsonl",
                          "probes_qa.jsonl", "stats.json"), meta=(("stats.json", "minillm-world"),))


def _line(obj):
    return json.dumps(obj, ensure_ascii=False) + "\n"


def document_stats(docs, sink=None):
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
        for key, value in (("kind", doc.kind), ("lang", doc.lang), ("bucket", doc.bucket)):
            by[key][value] += 1
            nbytes[key][value] += size
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
    """Write every file of the world to `out`; returns what stats.json holds."""
    out.mkdir(parents=True, exist_ok=True)
    # stats.json is written last: without it the directory is not a world, so a build
    # interrupted half-way over an older world can never be loaded as a mix of both
    (out / "stats.json").unlink(missing_ok=True)
    bar = None
    if progress:
        bar = tqdm(total=world.n_documents, unit="doc", desc="world", mininterval=0.5)
    with atomic_path(out / _DOC_FILE) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            def sink(line):
                gz.write(line.encode("utf-8"))
                if bar:
                    bar.update(1)
            stats, sha = document_stats(world.iter_documents(), sink)
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
             "content_sha256": sha}
    write_json(out / "stats.json", stats)
    return stats


def read_world(folder):
    """The saved parts of a world: (stats.json's dict, entities, bucket, exposure, fact
    mentions); World.load puts them together and streams documents from the folder."""
    meta = read_json(folder / "stats.json", "world stats")
    if not (folder / _DOC_FILE).is_file():
        raise UserError(f"world in {folder} has no {_DOC_FILE}; rebuild it with `minillm world build`")
    if not isinstance(meta, dict) or meta.get("format") != "minillm-world":
        raise UserError(f"{folder} does not hold a minillm world (stats.json has no format tag)")
    missing = [k for k in ("seed", "size", "documents") if k not in meta]
    if missing:
        raise UserError(f"{folder / 'stats.json'} is corrupt: no {', '.join(missing)}; rebuild the "
                        "world with `minillm world build --force`")
    entities, bucket, exposure, mentions = {}, {}, {}, {}
    try:
        with open(folder / "entities.jsonl", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                entities[d["id"]] = Entity(d["id"], d["type"], d["name"], d["attrs"], d["links"], d["extra"])
                bucket[d["id"]], exposure[d["id"]] = d["bucket"], d["exposure"]
        with open(folder / "facts.jsonl", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                mentions[d["entity"], d["relation"]] = d["mentions"]
    except (OSError, ValueError, KeyError, TypeError) as e:   # ValueError: bad JSON or UTF-8
        raise UserError(f"world in {folder} is incomplete or corrupt ({e}); rebuild it "
                        "with `minillm world build`") from None
    return meta, entities, bucket, exposure, mentions


@contextlib.contextmanager
def reading_documents(folder):
    """Around a loop over World.iter_documents: a truncated or corrupt documents.jsonl.gz
    (found only when the stream reaches the damage) becomes a one-line UserError."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{Path(folder) / _DOC_FILE} is truncated or corrupt ({type(e).__name__}: "
                        f"{e}); rebuild the world with `minillm world build --force`") from None
