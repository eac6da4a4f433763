"""The per-document stages of the cleaning pipeline, in FineWeb's order (cheapest first).

Each stage is a plain function `(doc, ctx) -> reason or None`: None lets the document
through, a reason string removes it (logged with the stage's name). A stage may rewrite
the document (extraction fills doc.text, C4 drops lines). `run_stages` threads a Doc
through STAGES and counts documents, bytes and seconds per stage into a funnel.
pipeline.py runs this over WARC shards in worker processes. Read the stages' own modules
next: extract.py, langid.py, filters.py (the URL filter and the quality rules).
"""
import time
from dataclasses import dataclass

from minillm.internet import filters, langid
from minillm.internet.extract import extract_text
from minillm.internet.warc import MAX_BODY_BYTES, MAX_RECORD_BYTES

HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class Config:
    """What the stages keep. FineWeb keeps English at a fastText score >= 0.65; the
    quality rules always run with their published thresholds (filters.py)."""
    langs: tuple = ("en",)
    min_lang_score: float = 0.65
    near_dup_similarity: float = 0.77   # MinHash estimate a band-candidate pair must reach
    minhash_seed: int = 1
    url_filter_dir: str = None          # FineWeb's word lists (default: filters.load_url_lists's search)
    blocked_domains: tuple = ()
    max_record_bytes: int = MAX_RECORD_BYTES    # longer WARC records are removed unread: "oversize"
    max_body_bytes: int = MAX_BODY_BYTES        # so are bodies that inflate further


@dataclass
class Context:
    """What the stages read besides the document."""
    config: Config
    url_lists: filters.UrlLists         # filters.load_url_lists(config.url_filter_dir, ...)


@dataclass
class Doc:
    """A page on its way through the stages."""
    id: str                 # "<shard>/<record index>"
    url: str
    html: str = None        # until extraction
    text: str = None        # after extraction
    lang: str = None
    lang_score: float = 0.0
    removed: tuple = None   # (stage, reason) once a stage drops it

    def nbytes(self):
        return len((self.html if self.text is None else self.text).encode("utf-8"))


# ---------------------------------------------------------------------------- stages
# Each stage: (doc, ctx) -> reason the document is removed, or None. It may rewrite doc.

def stage_url_filter(doc, ctx):
    return filters.url_filter(doc.url, ctx.url_lists)


def stage_extract(doc, ctx):
    doc.text, doc.html = extract_text(doc.html), None
    return None if doc.text.strip() else "no_main_text"


def stage_langid(doc, ctx):
    guess = langid.identify(doc.text)
    doc.lang, doc.lang_score = guess.lang, round(guess.confidence, 4)
    if guess.lang not in ctx.config.langs:
        return f"lang_{guess.lang}"
    return "low_confidence" if guess.confidence < ctx.config.min_lang_score else None


def stage_gopher_repetition(doc, ctx):
    return filters.gopher_repetition(doc.text)


def stage_gopher_quality(doc, ctx):
    return filters.gopher_quality(doc.text)


def stage_c4_quality(doc, ctx):
    text, reason = filters.c4_quality(doc.text)
    if reason is None:
        doc.text = text
    return reason


def stage_fineweb_quality(doc, ctx):
    return filters.fineweb_quality(doc.text)


# subtle: FineWeb runs Gopher's repetition rules before its quality rules; we run the
# quality rules first because they are cheaper per byte and their word count (at most
# 100,000 words) bounds the text the n-gram loops of the repetition rules ever see. Both
# only remove, so the documents kept are the same in either order.
STAGES = [("url_filter", stage_url_filter), ("extract", stage_extract), ("langid", stage_langid),
          ("gopher_quality", stage_gopher_quality), ("gopher_repetition", stage_gopher_repetition),
          ("c4_quality", stage_c4_quality), ("fineweb_quality", stage_fineweb_quality)]
GLOBAL_STAGES = ["exact_dedup", "minhash_dedup", "pii"]
FUNNEL_ORDER = ["read"] + [name for name, _ in STAGES] + ["signatures"] + GLOBAL_STAGES


def new_funnel():
    funnel = {name: {"docs_in": 0, "docs_out": 0, "bytes_in": 0, "bytes_out": 0, "seconds": 0.0}
              for name in FUNNEL_ORDER}
    funnel["read"]["truncated"] = 0     # shards whose file ends inside a record
    return funnel


def count(funnel, stage, n_in, b_in, n_out, b_out, seconds):
    f = funnel[stage]
    f["docs_in"] += n_in
    f["bytes_in"] += b_in
    f["docs_out"] += n_out
    f["bytes_out"] += b_out
    f["seconds"] += seconds


def run_stages(doc, ctx, funnel, wet=None):
    """Run the per-document stages on `doc`, counting into `funnel`. Returns doc (with
    doc.removed set when a stage dropped it). `wet` (a list) collects the extracted text."""
    b_in = doc.nbytes()
    for name, stage in STAGES:
        t0 = time.perf_counter()
        reason = stage(doc, ctx)
        dt = time.perf_counter() - t0
        if name == "extract" and wet is not None:
            wet.append({"id": doc.id, "url": doc.url, "text": doc.text})
        if reason:
            doc.removed = (name, reason)
            count(funnel, name, 1, b_in, 0, 0, dt)
            return doc
        b_out = doc.nbytes()
        count(funnel, name, 1, b_in, 1, b_out, dt)
        b_in = b_out            # the next stage's input
    return doc
