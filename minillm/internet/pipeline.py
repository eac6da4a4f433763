"""The cleaning pipeline: WARC shards in, clean documents (and token shards) out.

FineWeb's order, one small function per stage (see STAGES):

    read -> url_filter -> extract -> langid -> gopher_repetition -> gopher_quality
         -> c4_quality -> fineweb_quality -> exact_dedup -> minhash_dedup -> pii -> [tokens]

It runs in three passes so that it can use N processes, stream in bounded memory and
resume after an interruption:

  1. per WARC shard, in worker processes: the per-document stages up to fineweb_quality,
     then MinHash signatures of the survivors. Writes work/<shard>.{kept,removed,wet}
     .jsonl.gz (wet: every page's extracted text, like CC's WET files) and
     work/<shard>.{keys,sigs}.npy, then a done marker work/<shard>.done.json last. A
     restarted run skips every shard whose marker was written under the same settings.
  2. global, in the main process: exact + near-duplicate decisions over all shards' keys
     in the stable order (shard name, record index): the first document of a cluster stays.
  3. per shard again: drop the duplicates, scrub PII, write clean/<shard>.jsonl.gz and the
     shard's removal log clean/removed/<shard>.jsonl.gz (every removal with its stage and
     reason). Files are gzip with mtime 0, so a resumed run's output is byte-identical to
     an uninterrupted one. clean/funnel.json: documents and bytes in/out and seconds per stage.

    minillm clean --crawl runs/x/crawl --out runs/x/clean --workers 2 --report
    minillm clean --run x --tokenizer runs/x/tokenizer.json --shards runs/x/shards   # + token shards
    minillm clean --crawl ../shared/data/crawl --out /tmp/cc --report    # real CC WARCs

The quality rules run with their published thresholds (Gopher, C4, FineWeb; filters.py)
on the mini-world's crawl and on real Common Crawl alike.
"""
import dataclasses
import gzip
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np

from minillm.common import UserError, atomic_path, num_cores, read_json, runs_dir, write_json
from minillm.internet import dedup, filters, pii
from minillm.internet.stages import GLOBAL_STAGES, HTML_TYPES, Config, Doc, count, new_funnel, run_stages

# ---------------------------------------------------------------------------- files

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
        self._text.close()      # closes the gzip stream and the file
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

def iter_pages(warc_path):
    """(record index, url, html) for every HTML response in a WARC file."""
    from minillm.internet.warc import iter_records
    index = 0
    for rec in iter_records(warc_path):
        if rec.type != "response":
            continue
        index += 1
        ctype = rec.http_headers.get("Content-Type", "text/html").lower()
        ok = rec.http_status == 200 and ctype.startswith(HTML_TYPES)
        yield index - 1, rec.url, (rec.text() if ok else None), len(rec.http_body)


def process_shard(warc_path, work_dir, config):
    """Pass 1 for one WARC file; returns its funnel. Idempotent: skips a finished shard."""
    name, work_dir = shard_name(warc_path), Path(work_dir)
    done = work_dir / f"{name}.done.json"
    if _is_done(done, config):
        return read_json(done, "shard marker")["funnel"]
    ctx = {"config": config, "url_lists": filters.load_url_lists(config.url_filter_dir, config.blocked_domains)}
    params = dedup.minhash_params(config.minhash_seed)
    funnel, keys, sigs = new_funnel(), [], []
    with JsonlGzWriter(work_dir / f"{name}.kept.jsonl.gz") as kept, \
            JsonlGzWriter(work_dir / f"{name}.removed.jsonl.gz") as removed, \
            JsonlGzWriter(work_dir / f"{name}.wet.jsonl.gz", level=1) as wet:
        t_read = time.perf_counter()
        for index, url, html, nbytes in iter_pages(warc_path):
            ok = html is not None
            count(funnel, "read", 1, nbytes, int(ok), len(html.encode("utf-8")) if ok else 0,
                   time.perf_counter() - t_read)
            doc, texts = Doc(f"{name}/{index}", url, html=html), []
            if not ok:
                removed.write({"id": doc.id, "url": url, "stage": "read", "reason": "not_html_200"})
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

def global_dedup(names, work_dir, min_similarity=0.77):
    """Exact + MinHash decisions over every shard's survivors, in (shard, index) order.
    Memory: 128 bytes of keys and 448 of signature per surviving document.

    Returns ({shard: [(kind, duplicate_of id or None), ...] in kept order}, funnel rows)."""
    work_dir = Path(work_dir)
    keys = [np.load(work_dir / f"{n}.keys.npy") for n in names]
    sigs = np.concatenate([np.load(work_dir / f"{n}.sigs.npy") for n in names]) if names else None
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
    from tqdm import tqdm
    if workers <= 1 or len(tasks) <= 1:
        return [fn(*t) for t in tqdm(tasks, desc=desc, unit="shard", leave=False)]
    import multiprocessing as mp
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


def write_token_shards(clean_dir, tokenizer_path, shards_dir, batch=256):
    """The last stage: clean/*.jsonl.gz -> token shards (<|bos|> before each document).
    Web text is encoded with special tokens disallowed: "<|bos|>" in a page is plain text."""
    from minillm.pretrain.shards import ShardWriter
    from minillm.tokenizer.bpe import Tokenizer
    tok = Tokenizer.load(tokenizer_path)
    paths = sorted(Path(clean_dir).glob("*.jsonl.gz"))
    if not paths:
        raise UserError(f"no clean documents in {clean_dir}; run `minillm clean` first")
    with ShardWriter(shards_dir, tok.vocab_size, tok.bos_id) as writer:
        for path in paths:
            texts = [rec["text"] for rec in read_jsonl_gz(path)]
            for i in range(0, len(texts), batch):
                for ids in tok.encode_batch(texts[i:i + batch]):
                    writer.add(ids)
    return writer.n_docs, writer.n_tokens


# ---------------------------------------------------------------------------- CLI

def add_arguments(parser):
    parser.add_argument("--run", default="default", help="run name: defaults below live in runs/<run>/")
    parser.add_argument("--crawl", help="directory of WARC files, or one .warc.gz (default runs/<run>/crawl)")
    parser.add_argument("--out", help="output directory (default runs/<run>/clean)")
    parser.add_argument("--workers", type=int, default=min(2, num_cores()), help="worker processes")
    parser.add_argument("--langs", default="en", help="languages to keep, comma separated (default en)")
    parser.add_argument("--min-lang-score", type=float, default=0.65, help="language confidence to keep")
    parser.add_argument("--url-filter", default=None, help="directory with FineWeb's URL word lists")
    parser.add_argument("--block-domains", default="", help="extra blocked domains, comma separated")
    parser.add_argument("--report", action="store_true", help="score against the crawl's ground truth")
    parser.add_argument("--tokenizer", help="tokenizer.json: also write token shards (needs --shards)")
    parser.add_argument("--shards", help="directory for the token shards")


def run(args):
    if bool(args.tokenizer) != bool(args.shards):
        raise UserError("--tokenizer and --shards go together")
    args.crawl = args.crawl or str(runs_dir() / args.run / "crawl")
    args.out = args.out or str(runs_dir() / args.run / "clean")
    config = Config(langs=tuple(x.strip() for x in args.langs.split(",") if x.strip()),
                    min_lang_score=args.min_lang_score, url_filter_dir=args.url_filter,
                    blocked_domains=tuple(d.strip() for d in args.block_domains.split(",") if d.strip()))
    summary = clean(args.crawl, args.out, max(1, args.workers), config)
    st = summary["stages"]
    print(f"clean: {st['read']['docs_in']} pages -> {st['pii']['docs_out']} documents "
          f"({st['pii']['bytes_out'] / 1e6:.2f} MB) in {summary['wall_seconds']:.1f}s "
          f"[{summary['shards']} shards, {summary['shards_resumed']} resumed]")
    print(f"  documents: {args.out}/*.jsonl.gz   removals: {args.out}/removed/   funnel: {args.out}/funnel.json")
    if args.report:
        from minillm.internet import score
        report = score.score_run(args.crawl, args.out)
        write_json(Path(args.out) / "report.json", report)
        print(score.format_report(report))
        print(f"  report: {args.out}/report.json")
    if args.tokenizer:
        n_docs, n_tokens = write_token_shards(args.out, args.tokenizer, args.shards)
        print(f"  token shards: {n_docs} documents, {n_tokens} tokens -> {args.shards}")
