"""The crawl: the mini-world rendered as web pages in WARC files like Common Crawl's, plus the truth.

    minillm crawl                                       # runs/default/world -> runs/default/crawl
    minillm crawl --world-size smoke --out /tmp/crawl   # build a world in memory first

bundle.py decides which world documents share a page of which site; planner.py turns
each bundle into its page, the spam, junk, boilerplate and blocklisted pages mixed in,
and exact and near copies. This file orders the pages into shards, labels pages that
repeat an earlier one, renders them (sites.py) and writes, per shard, a WARC
(crawl-00000.warc.gz: a warcinfo record, then per page a request, a response and a
metadata record, each its own gzip member) and truth/crawl-00000.jsonl.gz (truth_record:
what each page really is; only the cleaning pipeline's scoring reads it), then crawl.json
(a summary) and plan.json (what a rerun must match to keep finished shards).

Everything is a function of (world, seed, shards): a rerun gives identical bytes. Shards
are written atomically, one after another; a rerun skips finished ones. A copy always
comes after its original in (shard, position) order, the order a keep-the-first
deduplicator uses. Read bundle.py next, then planner.py, sites.py and noise.py.
"""
import contextlib
import datetime as dt
import gzip
import hashlib
import io
import json
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from minillm.common import FORCE, Output, UserError, atomic_path, read_json, write_json
from minillm.crawl import noise, sites as S
from minillm.crawl.bundle import PAGE_WORDS, Bundler
from minillm.crawl.planner import CRAWL_START, Planner
from minillm.internet.warc import detect_charset
from minillm.internet.warc_writer import WarcWriter, warc_date

CRAWL_VERSION = 2     # 2: pages bundle several documents; a crawl of another version is not reused
# what `minillm crawl` writes (common.prepare_dir: resume, --force, refusals)
OUTPUT = Output("crawl", ("crawl-*.warc.gz", "truth/crawl-*.jsonl.gz", "crawl.json", "plan.json"),
                meta=(("crawl.json", "minillm-crawl"), ("truth/crawl-*.jsonl.gz", None)))


# ----------------------------------------------------------------------------- planning


def plan(docs, n_docs, seed, n_shards, lists):
    """Yield (shard, Page) for the whole crawl, shard after shard, in write order.

    World document j belongs to shard j * n_shards // n_docs (contiguous blocks); a page
    goes to the shard of the document that completes it (Bundler), so a page begun near a
    shard's end may hold documents of the shard before.
    Copies wait in `pending` until `delay` more documents have gone by; a copy made near a
    shard's end may move to the start of the next shard, never to an earlier one.
    """
    yield from _label_repeats(_plan(docs, n_docs, seed, n_shards, lists))


def _label_repeats(stream):
    """Mark world pages that repeat an earlier page (exact, or Jaccard >= 0.8) as
    duplicates of it: the world writes many documents from one template, so two pages
    can still say the same. English pages change kind; other languages keep kind
    non_english and only get the pointer."""
    index = noise.DupIndex()
    for shard, page in stream:
        if page.kind in ("good", "non_english"):
            how, orig, jac = index.check_and_add(page.url, page.main_text)
            if how == "exact":
                page.duplicate_of, page.subtype = orig, "world"
                page.kind = "duplicate" if page.kind == "good" else page.kind
            elif how == "near":
                page.near_duplicate_of, page.jaccard, page.subtype = orig, jac, "world"
                page.kind = "near_duplicate" if page.kind == "good" else page.kind
        yield shard, page


def _plan(docs, n_docs, seed, n_shards, lists):
    planner = Planner(seed, lists)
    # subtle: PAGE_WORDS is looked up here, at call time: a test may patch pages.PAGE_WORDS
    bundler = Bundler(seed, planner.all.sites, PAGE_WORDS)
    pending = [[] for _ in range(n_shards)]     # per shard: [(release at doc j, page)]

    def emit(bundles, j, shard):
        """The pages of closed `bundles` (at document j) now; their copies into `pending`."""
        for bundle in bundles:
            pages, copies = planner.page(bundle)
            yield from ((shard, p) for p in pages)
            for delay, copy in copies:
                end = (shard + 1) * n_docs / n_shards
                target = shard if shard == n_shards - 1 or j + delay < end else shard + 1
                copy.crawled = CRAWL_START + dt.timedelta(seconds=(j + delay) * 53 + 29)
                pending[target].append((j + delay, copy))

    current, j = 0, -1
    for j, doc in enumerate(docs):
        shard = j * n_shards // n_docs
        while current < shard:                  # close the previous shard(s)
            yield from ((current, p) for _, p in pending[current])
            pending[current] = []
            current += 1
        yield from emit(bundler.add(doc, j), j, shard)
        ready = [p for r, p in pending[shard] if r <= j]
        pending[shard] = [(r, p) for r, p in pending[shard] if r > j]
        yield from ((shard, p) for p in ready)
    yield from emit(bundler.flush(), j, current)
    for s in range(current, n_shards):
        yield from ((s, p) for _, p in pending[s])


# ----------------------------------------------------------------------------- writing


def render(page, seed):
    """Page -> (body bytes, HTTP headers)."""
    rng = S.Rng(seed, "render", page.render_key or page.url)
    main = S.article_html(page.title, page.text)
    if page.subtype == "tag":  # a tag page lists links to posts, nothing else
        main += '\n<ul class="post-list">' + S.links_html(page.related, "/posts/") + "</ul>"
    html = S.render_page(page.site, rng, title=page.title, main_html=main, date=page.published,
                         related=page.related, n_comments=page.n_comments, description=" ".join(page.text[:200].split()),
                         canonical=page.canonical, source_name=page.source_name, keywords=page.keywords)
    return S.encode_page(page.site, html, page.crawled)


def truth_record(page, shard, index, record_id):
    """The ground truth of one page, a JSON line of truth/<shard>.jsonl.gz: url,
    record_id (of the response), shard, index (the page's position among the shard's
    responses), kind (good, non_english, spam, blocklisted, junk, boilerplate, duplicate,
    near_duplicate), subtype, lang, site, doc_ids (the world documents on the page, in
    order), doc_kinds (their kinds), doc_id (the first), duplicate_of / near_duplicate_of
    (url of the original), jaccard, pii [{type, value}], blocked (the URL filter rule that
    bans it), charset, main_text (what an ideal extractor returns: per document its title,
    a blank line, its paragraphs, the documents joined by a blank line; "": no content)."""
    return {"url": page.url, "record_id": record_id, "shard": shard, "index": index, "kind": page.kind,
            "subtype": page.subtype, "lang": page.lang, "site": page.site.host, "doc_id": page.doc_id,
            "doc_ids": list(page.doc_ids), "doc_kinds": list(page.doc_kinds),
            "duplicate_of": page.duplicate_of, "near_duplicate_of": page.near_duplicate_of,
            "jaccard": page.jaccard, "pii": page.pii, "blocked": page.blocked,
            "charset": page.site.charset, "main_text": page.main_text}


def write_page(w, page, seed):
    """Request, response and metadata records for one page; returns the response's id."""
    body, headers = render(page, seed)
    host = page.url.split("/")[2]
    when = warc_date(page.crawled)
    req = w.write_request(page.url, [("Host", host), ("User-Agent", "minillm-crawler/1.0"),
                                     ("Accept", "text/html,application/xhtml+xml"), ("Accept-Language", "en;q=0.9,*;q=0.5")],
                          date=when)
    resp = w.write_response(page.url, body, headers, date=when, concurrent_to=req)
    w.write_metadata(page.url, [("fetchTimeMs", str(40 + len(body) % 400)),
                                ("charset-detected", detect_charset(body, dict(headers)["Content-Type"]).upper())],
                     date=when, concurrent_to=resp)
    return resp, len(body)


def shard_paths(out_dir, shard):
    out_dir = Path(out_dir)
    return out_dir / f"crawl-{shard:05d}.warc.gz", out_dir / "truth" / f"crawl-{shard:05d}.jsonl.gz"


def _finished(out_dir, shard):
    warc, truth = shard_paths(out_dir, shard)
    return warc.exists() and truth.exists()


@contextlib.contextmanager
def _shard_writer(out_dir, shard, seed, n_shards):
    """(WarcWriter, truth file) for one shard. Both land atomically, the WARC last, so a
    shard whose WARC exists is complete."""
    warc, truth = shard_paths(out_dir, shard)
    with contextlib.ExitStack() as stack:
        w = stack.enter_context(WarcWriter(warc, seed=f"{seed}/{shard}"))
        tmp = stack.enter_context(atomic_path(truth))
        raw = stack.enter_context(open(tmp, "wb"))
        # subtle: no file name or time in the gzip header, so reruns give identical bytes
        gz = stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6))
        t = stack.enter_context(io.TextIOWrapper(gz, encoding="utf-8"))
        w.write_warcinfo({"software": "minillm crawl", "isPartOf": f"minillm-crawl-seed{seed}",
                          "description": f"mini-world crawl, shard {shard + 1} of {n_shards}",
                          "format": "WARC File Format 1.1"}, filename=warc.name, date=warc_date(CRAWL_START))
        yield w, t


def count_documents(world):
    """How many documents the world has (a pass over them unless the world knows)."""
    n = getattr(world, "n_documents", None)
    if isinstance(n, int) and n > 0:
        return n
    return sum(1 for _ in world.iter_documents())


def _check_plan(out_dir, world, n_docs, n_shards, seed, lists):
    """Finished shards may only be kept if they were made from the same world, seed,
    shard count and URL lists: plan.json records those; a mismatch is the user's call."""
    h = hashlib.sha1(str(n_docs).encode())
    for _, doc in zip(range(200), world.iter_documents()):
        h.update(f"{doc.id}\t{doc.lang}\t{doc.title}\t{len(doc.text)}\n".encode("utf-8"))
    plan = {"version": CRAWL_VERSION, "seed": seed, "shards": n_shards, "documents": n_docs,
            "world": h.hexdigest()[:16], "url_lists": lists.source}
    path = Path(out_dir) / "plan.json"
    if path.exists():
        old = read_json(path, "crawl plan")        # corrupt: one line saying what to do
        if not isinstance(old, dict):
            raise UserError(f"{path} is not a crawl plan; pass {FORCE} to replace the crawl")
        if old != plan and any(_finished(out_dir, s) for s in range(old.get("shards", 0))):
            diff = ", ".join(f"{k} {old.get(k)} -> {v}" for k, v in plan.items() if old.get(k) != v)
            raise UserError(f"{out_dir} holds a crawl made with other settings ({diff}); "
                            f"pass {FORCE} to replace it or choose another --out")
    write_json(path, plan)


def crawl(world, out_dir, n_shards=8, seed=0, progress=True, url_filter=None):
    """Write the crawl of `world` to `out_dir` (see the module docstring); returns the
    summary also written to crawl.json. Finished shards of an earlier run are kept.
    Memory: the open pages (at most bundle.OPEN_PAGES per site) and the duplicate index."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_docs = count_documents(world)
    if n_docs == 0:
        raise UserError("the world has no documents to crawl")
    n_shards = max(1, min(n_shards, n_docs))
    lists = noise.url_lists(url_filter)
    _check_plan(out_dir, world, n_docs, n_shards, seed, lists)
    done = {s for s in range(n_shards) if _finished(out_dir, s)}
    docs = tqdm(world.iter_documents(), total=n_docs, desc="crawl", unit="doc", disable=not progress)
    stack, current, index = None, None, 0
    try:
        for shard, page in plan(docs, n_docs, seed, n_shards, lists):
            if shard != current:
                if stack is not None:
                    stack.close()
                stack, current, index = None, shard, 0
                if shard not in done:
                    stack = contextlib.ExitStack()
                    w, t = stack.enter_context(_shard_writer(out_dir, shard, seed, n_shards))
            if stack is None:
                continue
            record_id, _ = write_page(w, page, seed)
            t.write(json.dumps(truth_record(page, shard, index, record_id), ensure_ascii=False) + "\n")
            index += 1
        if stack is not None:
            stack.close()
    except BaseException as e:
        if stack is not None:
            stack.__exit__(type(e), e, e.__traceback__)
        raise
    for s in range(n_shards):
        if s not in done and not _finished(out_dir, s):
            # a tiny world's shard may get no page at all (its documents' pages closed
            # later): it is written empty, so every shard exists
            with _shard_writer(out_dir, s, seed, n_shards):
                pass
        if not _finished(out_dir, s):
            raise UserError(f"shard {s} was not written; rerun `minillm crawl`")
    summary = summarize(out_dir, n_shards)
    summary.update(seed=seed, shards_resumed=len(done), url_lists=lists.source,
                   seconds=round(time.perf_counter() - t0, 2))
    write_json(out_dir / "crawl.json", summary)
    return summary


def load_truth(crawl_dir):
    """Iterate the ground-truth records of a crawl (all shards, in order)."""
    for path in sorted((Path(crawl_dir) / "truth").glob("crawl-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def summarize(out_dir, n_shards):
    kinds, pii, pii_good, world_copies = Counter(), 0, 0, 0
    for rec in load_truth(out_dir):
        kinds[rec["kind"]] += 1
        pii += bool(rec["pii"])
        pii_good += bool(rec["pii"]) and rec["kind"] == "good"
        world_copies += rec["subtype"] == "world"
    pages = sum(kinds.values())
    warc_bytes = sum(shard_paths(out_dir, s)[0].stat().st_size for s in range(n_shards))
    return {"format": "minillm-crawl", "version": CRAWL_VERSION, "shards": n_shards, "pages": pages,
            "kinds": dict(sorted(kinds.items())),
            "shares": {k: round(v / pages, 4) for k, v in sorted(kinds.items())},
            "pages_with_pii": pii, "pii_share_of_good": round(pii_good / max(kinds["good"], 1), 4),
            "world_repeats": world_copies,
            "warc_bytes": warc_bytes}
