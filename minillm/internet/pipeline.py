"""The cleaning pipeline: WARC shards in, clean documents out, in FineWeb's order.

    minillm clean --crawl runs/x/crawl --out runs/x/clean --workers 2 --report   (cli.py)

    read -> url_filter -> extract -> langid -> gopher_quality -> gopher_repetition
         -> c4_quality -> fineweb_quality -> exact_dedup -> minhash_dedup -> pii

Three passes, so that it can use N processes, stream in bounded memory and resume:
  1. per WARC shard, in worker processes: the per-document stages (stages.py), then
     MinHash signatures of the survivors -> work/<shard>.{kept,removed,wet}.jsonl.gz,
     work/<shard>.{keys,sigs}.npy and, last, the marker work/<shard>.done.json; a rerun
     skips every shard whose marker was written under the same settings.
  2. global: exact and near-duplicate decisions over all shards in the stable order
     (shard name, record index): the first document of a cluster stays.
  3. per shard: drop the duplicates, scrub PII, write clean/<shard>.jsonl.gz and the
     removal log clean/removed/<shard>.jsonl.gz. Files are gzip with mtime 0, so a
     resumed run's output is byte-identical to an uninterrupted one; clean/funnel.json
     holds documents, bytes and seconds per stage. score.py compares it with the truth.
Read stages.py next.
"""
import dataclasses
import gzip
import hashlib
import io
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minillm.common import Output, UserError, atomic_path, read_json, write_json
from minillm.internet import dedup, filters, pii
from minillm.internet.stages import (
    GLOBAL_STAGES, HTML_TYPES, Config, Context, Doc, count, new_funnel, run_stages)
from minillm.internet.warc import WarcError, iter_records

# ---------------------------------------------------------------------------- files

# what `minillm clean` writes (common.prepare_dir: resume, --force, refusals)
OUTPUT = Output("clean", ("*.jsonl.gz", "removed/*.jsonl.gz", "work/*.jsonl.gz", "work/*.npy",
                          "work/*.json", "funnel.json", "report.json"),
                meta=(("funnel.json", ("stages", "shards")), ("work/*.done.json", ("shard", "funnel"))))

class JsonlGzWriter:
    """Deterministic gzip'd JSON lines (mtime 0, no file name in the header), written atomically."""

    def __init__(self, path, level=6):
        self._ctx = atomic_path(path)
        self._raw = open(self._ctx.__enter__(), "wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=level)
        self._text = io.TextIOWrapper(self._gz, encoding="utf-8", newline="\n")
        self.count = 0

    def write(self, record):
        self._text.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self, exc=None):
        self._text.close()      # writes the gzip trailer into self._raw's buffer...
        self._raw.close()       # subtle: ...which GzipFile does not close: flush it before the rename
        self._ctx.__exit__(type(exc) if exc else None, exc, None)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(exc)


def read_jsonl_gz(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def shard_name(path):
    name = Path(path).name
    for suffix in (".warc.gz", ".warc"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def find_warcs(crawl):
    """The WARC files of a crawl directory (or one file), sorted by name: the stable order."""
    crawl = Path(crawl)
    if crawl.is_file():
        return [crawl]
    paths = sorted(p for p in crawl.glob("*.warc*") if p.name.endswith((".warc", ".warc.gz"))
                   and not p.name.endswith(".wet.gz"))
    if not paths:
        raise UserError(f"no WARC files (*.warc.gz) in {crawl}; run `minillm crawl` first")
    return paths


# ---------------------------------------------------------------------------- pass 1

def iter_pages(warc_path, config):
    """(record index, url, html or None, body bytes, reason or None) for every response in
    a WARC file. html None: removed at reading, for `reason`: not_html_200, or what the
    reader could not read (a WarcError's reason: malformed_warc, oversize, malformed_http,
    bad_charset, corrupt_warc, truncated_warc). A file that cannot be read on is one last
    removal; the records before the damage are kept (an interrupted download costs its tail)."""
    index = 0
    try:
        for rec in iter_records(warc_path, skip_bad=True, max_record_bytes=config.max_record_bytes,
                                max_body_bytes=config.max_body_bytes):
            if rec.type != "response" and not (rec.error and rec.type in ("", "response")):
                continue
            index += 1
            if rec.error:
                yield index - 1, rec.url, None, 0, rec.error.reason
                continue
            try:
                ctype = rec.http_headers.get("Content-Type", "text/html").lower()
                ok = rec.http_status == 200 and ctype.startswith(HTML_TYPES)
                html, nbytes = (rec.text() if ok else None), len(rec.http_body)
            except WarcError as e:
                yield index - 1, rec.url, None, len(rec.content), e.reason
                continue
            yield index - 1, rec.url, html, nbytes, None if ok else "not_html_200"
    except WarcError as e:      # the stream itself: what follows cannot be read
        yield index, None, None, 0, e.reason


def process_shard(warc_path, work_dir, config):
    """Pass 1 for one WARC file; returns its funnel. Idempotent: skips a finished shard."""
    name, work_dir = shard_name(warc_path), Path(work_dir)
    done = work_dir / f"{name}.done.json"
    if _is_done(done, config):
        return read_json(done, "shard marker")["funnel"]
    ctx = Context(config, filters.load_url_lists(config.url_filter_dir, config.blocked_domains))
    params = dedup.minhash_params(config.minhash_seed)
    funnel, keys, sigs = new_funnel(), [], []
    with JsonlGzWriter(work_dir / f"{name}.kept.jsonl.gz") as kept, \
            JsonlGzWriter(work_dir / f"{name}.removed.jsonl.gz") as removed, \
            JsonlGzWriter(work_dir / f"{name}.wet.jsonl.gz", level=1) as wet:
        t_read = time.perf_counter()
        for index, url, html, nbytes, reason in iter_pages(warc_path, config):
            ok = html is not None
            count(funnel, "read", 1, nbytes, int(ok), len(html.encode("utf-8")) if ok else 0,
                   time.perf_counter() - t_read)
            doc, texts = Doc(f"{name}/{index}", url, html=html), []
            if not ok:
                removed.write({"id": doc.id, "url": url, "stage": "read", "reason": reason})
                funnel["read"]["truncated"] = int(funnel["read"]["truncated"] or reason == "truncated_warc")
            else:
                run_stages(doc, ctx, funnel, wet=texts)
                for rec in texts:
                    wet.write(rec)
                if doc.removed:
                    removed.write(_removal(doc, *doc.removed))
                else:
                    t0 = time.perf_counter()
                    key, sig = dedup.fingerprint(doc.text, params)
                    sigs.append(sig)
                    keys.append(np.concatenate([[key], dedup.band_keys(sig[None])[0], [index]]))
                    nbytes = doc.nbytes()
                    count(funnel, "signatures", 1, nbytes, 1, nbytes, time.perf_counter() - t0)
                    kept.write({"id": doc.id, "url": url, "lang": doc.lang, "lang_score": doc.lang_score,
                                "text": doc.text})
            t_read = time.perf_counter()
    keys = np.array(keys, dtype=np.uint64).reshape(-1, 2 + dedup.NUM_BANDS)  # (n_kept, 16)
    sigs = np.array(sigs, dtype=np.uint32).reshape(-1, dedup.NUM_HASHES)     # (n_kept, 112)
    for suffix, array in (("keys", keys), ("sigs", sigs)):
        with atomic_path(work_dir / f"{name}.{suffix}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array)
    write_json(done, {"shard": name, "source": str(warc_path), "config": _fingerprint(config), "funnel": funnel})
    return funnel


def _fingerprint(config):
    """The settings that shape pass 1's output; a marker written under others is stale."""
    settings = dataclasses.asdict(config)
    del settings["near_dup_similarity"]     # pass 2's business
    return json.loads(json.dumps(settings))


def _is_done(marker, config):
    return marker.exists() and read_json(marker, "shard marker").get("config") == _fingerprint(config)


def _removal(doc, stage, reason, **extra):
    rec = {"id": doc.id, "url": doc.url, "stage": stage, "reason": reason}
    if doc.lang is not None:
        rec.update(lang=doc.lang, lang_score=doc.lang_score)
    rec.update(extra)
    if doc.text is not None:
        rec["text"] = doc.text
    return rec


# ---------------------------------------------------------------------------- pass 2

def _load_work(path):
    """A pass-1 work array (written atomically, so damage comes from outside): a one-line
    error naming the file rather than NumPy's traceback."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"{path} is damaged or missing ({type(e).__name__}); delete {path.parent} "
                        "and run clean again to recompute it") from None


def global_dedup(names, work_dir, min_similarity=0.77):
    """Exact + MinHash decisions over every shard's survivors, in (shard, index) order.
    Memory: 128 bytes of keys and 448 of signature per surviving document.

    Returns ({shard: [(kind, duplicate_of id or None), ...] in kept order}, funnel rows)."""
    work_dir = Path(work_dir)
    keys = [_load_work(work_dir / f"{n}.keys.npy") for n in names]
    sigs = np.concatenate([_load_work(work_dir / f"{n}.sigs.npy") for n in names]) if names else None
    counts = [len(k) for k in keys]
    allk = np.concatenate(keys) if keys else np.zeros((0, 2 + dedup.NUM_BANDS), np.uint64)  # (N, 16)
    t0 = time.perf_counter()
    dup_exact = dedup.exact_duplicates(allk[:, 0])
    t1 = time.perf_counter()
    alive = np.flatnonzero(dup_exact < 0)
    dup_near = dedup.near_duplicates(allk[:, 1:1 + dedup.NUM_BANDS], alive, sigs, min_similarity)
    t2 = time.perf_counter()
    shard_of = np.repeat(np.arange(len(names)), counts)                    # (N,)

    def id_of(g):
        return f"{names[shard_of[g]]}/{int(allk[g, -1])}"

    decisions, start = {}, 0
    for name, n in zip(names, counts):
        rows = []
        for g in range(start, start + n):
            if dup_exact[g] >= 0:
                rows.append((1, id_of(dup_exact[g])))
            elif dup_near[g] >= 0:
                rows.append((2, id_of(dup_near[g])))
            else:
                rows.append((0, None))
        decisions[name] = rows
        start += n
    n_exact = int((dup_exact >= 0).sum())
    n_near = int((dup_near >= 0).sum())
    rows = {"exact_dedup": (len(allk), len(allk) - n_exact, t1 - t0),
            "minhash_dedup": (len(alive), len(alive) - n_near, t2 - t1)}
    return decisions, rows


# ---------------------------------------------------------------------------- pass 3

def finalize_shard(name, work_dir, out_dir, decisions):
    """Drop the duplicates, scrub PII, write clean/<name>.jsonl.gz and removed/<name>.jsonl.gz.
    Returns the shard's funnel rows for exact_dedup, minhash_dedup and pii (bytes, seconds).
    Skipped when its marker holds the same decisions and pass-1 marker (same inputs)."""
    work_dir, out_dir = Path(work_dir), Path(out_dir)
    pass1 = (work_dir / f"{name}.done.json").read_bytes()
    digest = hashlib.sha1(json.dumps(decisions).encode() + pass1).hexdigest()
    marker = work_dir / f"{name}.final.json"
    if marker.exists() and read_json(marker, "shard marker").get("digest") == digest \
            and (out_dir / f"{name}.jsonl.gz").exists():
        return read_json(marker, "shard marker")["funnel"]
    funnel = {s: {"bytes_in": 0, "bytes_out": 0, "seconds": 0.0, "pii": {}} for s in GLOBAL_STAGES}
    with JsonlGzWriter(out_dir / f"{name}.jsonl.gz") as out, \
            JsonlGzWriter(out_dir / "removed" / f"{name}.jsonl.gz") as removed:
        for rec in read_jsonl_gz(work_dir / f"{name}.removed.jsonl.gz"):
            removed.write(rec)
        for rec, (kind, dup_id) in zip(read_jsonl_gz(work_dir / f"{name}.kept.jsonl.gz"), decisions):
            nbytes = len(rec["text"].encode("utf-8"))
            funnel["exact_dedup"]["bytes_in"] += nbytes
            if kind == 1:
                removed.write({**_dup_removal(rec, "exact_dedup", "exact_duplicate", dup_id)})
                continue
            funnel["exact_dedup"]["bytes_out"] += nbytes
            funnel["minhash_dedup"]["bytes_in"] += nbytes
            if kind == 2:
                removed.write(_dup_removal(rec, "minhash_dedup", "near_duplicate", dup_id))
                continue
            funnel["minhash_dedup"]["bytes_out"] += nbytes
            t0 = time.perf_counter()
            text, counts = pii.scrub_pii(rec["text"])
            funnel["pii"]["seconds"] += time.perf_counter() - t0
            funnel["pii"]["bytes_in"] += nbytes
            funnel["pii"]["bytes_out"] += len(text.encode("utf-8"))
            for k, v in counts.items():
                funnel["pii"]["pii"][k] = funnel["pii"]["pii"].get(k, 0) + v
            out.write({**rec, "text": text})
    write_json(marker, {"digest": digest, "funnel": funnel})
    return funnel


def _dup_removal(rec, stage, reason, dup_id):
    return {"id": rec["id"], "url": rec["url"], "stage": stage, "reason": reason,
            "duplicate_of": dup_id, "lang": rec["lang"], "lang_score": rec["lang_score"], "text": rec["text"]}


# ---------------------------------------------------------------------------- driver

def _map(fn, tasks, workers, desc):
    """fn(*task) for each task, in task order, over `workers` processes (inline for 1)."""
    if workers <= 1 or len(tasks) <= 1:
        return [fn(*t) for t in tqdm(tasks, desc=desc, unit="shard", leave=False)]
    with mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn").Pool(workers) as pool:
        pending = [pool.apply_async(fn, t) for t in tasks]
        return [p.get() for p in tqdm(pending, desc=desc, unit="shard", leave=False)]


def clean(crawl, out_dir, workers=1, config=None):
    """Run all three passes over a crawl; returns the funnel dict (also clean/funnel.json)."""
    config = config or Config()
    paths, out_dir = find_warcs(crawl), Path(out_dir)
    work_dir = out_dir / "work"
    work_dir.mkdir(parents=True, exist_ok=True)
    names = [shard_name(p) for p in paths]
    if len(set(names)) != len(names):
        raise UserError(f"two WARC files in {crawl} have the same name stem")
    t0 = time.perf_counter()
    skipped = sum(_is_done(work_dir / f"{n}.done.json", config) for n in names)
    funnels = _map(process_shard, [(p, work_dir, config) for p in paths], workers, "clean: filter")
    funnel = new_funnel()
    for f in funnels:
        for stage, row in f.items():
            for k, v in row.items():
                funnel[stage][k] += v
    decisions, rows = global_dedup(names, work_dir, config.near_dup_similarity)
    finals = _map(finalize_shard, [(n, work_dir, out_dir, decisions[n]) for n in names], workers,
                  "clean: dedup + pii")
    _merge_final(funnel, rows, finals)
    summary = {"shards": len(names), "shards_resumed": skipped, "workers": workers,
               "truncated_shards": [n for n, f in zip(names, funnels) if f["read"].get("truncated")],
               "wall_seconds": round(time.perf_counter() - t0, 3),
               "url_lists": filters.load_url_lists(config.url_filter_dir).source,
               "stages": {k: _rounded(v) for k, v in funnel.items()}}
    write_json(out_dir / "funnel.json", summary)
    return summary


def _merge_final(funnel, rows, finals):
    for stage, (n_in, n_out, seconds) in rows.items():
        funnel[stage].update(docs_in=n_in, docs_out=n_out, seconds=seconds)
    funnel["pii"].update(docs_in=funnel["minhash_dedup"]["docs_out"], docs_out=funnel["minhash_dedup"]["docs_out"])
    funnel["pii"]["found"] = {}
    for f in finals:
        for stage in GLOBAL_STAGES:
            funnel[stage]["bytes_in"] += f[stage]["bytes_in"]
            funnel[stage]["bytes_out"] += f[stage]["bytes_out"]
            funnel[stage]["seconds"] += f[stage]["seconds"]
        for k, v in f["pii"]["pii"].items():
            funnel["pii"]["found"][k] = funnel["pii"]["found"].get(k, 0) + v


def _rounded(row):
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
