"""The real-web gold set for main-text extraction, and its score (precision, recall, F1).

Each gold page lists snippets that must appear in the main text ("with") and snippets of
page furniture that must not ("without"). Pages come from two places:

    tests/internet/gold/shared.json     pages of the WARCs in ../shared/data/crawl, by URI
    tests/internet/gold/authored.json   small pages we wrote, one per failure case
                                        (tests/internet/gold/*.html)

The score counts snippets over all pages: a "with" snippet found is a true positive, one
missed a false negative; a "without" snippet found is a false positive. Then
precision = TP / (TP + FP), recall = TP / (TP + FN), F1 their harmonic mean. Snippets are
compared with runs of spaces squeezed; a snippet with a line break must match lines.

Used by tests/internet/test_extract_gold.py and bench/pipeline.py (which scores
trafilatura and resiliparse on the same pages).
"""
import html as html_lib
import json
import re
from pathlib import Path

from minillm.internet.warc import iter_records

GOLD_DIR = Path(__file__).resolve().parent / "internet" / "gold"
_SPACES = re.compile(r"[^\S\n]+")


def _lines(text):
    return "\n".join(ln.strip() for ln in _SPACES.sub(" ", text).split("\n") if ln.strip())


def contains(text, snippet):
    """Whether `snippet` occurs in `text`, spaces squeezed (lines kept if it has any)."""
    text, snippet = _lines(text), _lines(snippet)
    return snippet in (text if "\n" in snippet else text.replace("\n", " "))


def load_pages(shared_data=None):
    """[(name, html, with, without)] for every gold page: the shared ones from
    `shared_data` (../shared/data; None: none of them), then the authored ones."""
    pages = []
    by_warc = {}
    for entry in json.loads((GOLD_DIR / "shared.json").read_text(encoding="utf-8")) if shared_data else []:
        by_warc.setdefault(entry["warc"], []).append(entry)
    for warc, entries in sorted(by_warc.items()):
        wanted = {e["uri"]: e for e in entries}
        for rec in iter_records(shared_data / "crawl" / warc, skip_bad=True):
            uri = (rec.url or "").strip("<>")
            if rec.type == "response" and not rec.error and uri in wanted:
                e = wanted.pop(uri)
                pages.append((f"{warc}#{uri}", rec.text(), e["with"], e["without"]))
        if wanted:
            raise ValueError(f"gold pages not found in {warc}: {sorted(wanted)}")
    for e in json.loads((GOLD_DIR / "authored.json").read_text(encoding="utf-8")):
        html = (GOLD_DIR / e["file"]).read_text(encoding="utf-8")
        pages.append((e["file"], html, e["with"], e["without"]))
    return pages


def visible_text(html):
    """Every text node of a page, tags and scripts stripped (to check the gold itself)."""
    html = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    return html_lib.unescape(re.sub(r"<[^>]*>", "", html))


def score(outputs, pages):
    """outputs: {name: extracted text}. Returns dict(precision, recall, f1, tp, fn, fp,
    missed: [(name, snippet)], leaked: [(name, snippet)])."""
    tp, missed, leaked = 0, [], []
    for name, _, with_, without in pages:
        text = outputs[name] or ""
        for s in with_:
            if contains(text, s):
                tp += 1
            else:
                missed.append((name, s))
        leaked += [(name, s) for s in without if contains(text, s)]
    fn, fp = len(missed), len(leaked)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fn": fn, "fp": fp,
            "missed": missed, "leaked": leaked}


def peers():
    """{name: html -> text} for the peer extractors that are installed (test extras)."""
    out = {}
    try:
        import trafilatura
        out["trafilatura"] = lambda html: trafilatura.extract(html) or ""
    except ImportError:
        pass
    try:
        from resiliparse.extract.html2text import extract_plain_text
        out["resiliparse"] = lambda html: extract_plain_text(html, main_content=True) or ""
    except ImportError:
        pass
    return out
