"""Score a cleaning run against the crawl's ground truth: `minillm clean ... --report`.

The crawl (minillm/crawl/pages.py) wrote, beside each WARC, what every page really is: its
kind (good, non_english, spam, junk, blocklisted, boilerplate, duplicate,
near_duplicate), language, the URL it copies, its PII and its true main text. The
pipeline never reads that; score_run compares the pipeline's decisions with it, shard by
shard (bounded memory), and reports spam/junk filter precision and recall, language ID
accuracy, how much main text extraction kept, dedup precision and recall, and PII recall
(score_run's docstring defines each); on real Common Crawl WARCs, the English-vs-not
agreement with CC's own language field. TARGETS are the goals the report checks.
format_report prints it. Read cli.py last: it ties download, clean and this report.
"""
import re
from collections import Counter
from pathlib import Path

from minillm.common import UserError
from minillm.internet.dedup import shingle_hashes
from minillm.internet.pipeline import find_warcs, read_jsonl_gz, shard_name
from minillm.internet.warc import WarcError, iter_records

BAD_KINDS = ("spam", "junk", "blocklisted", "boilerplate")
FILTER_STAGES = ("read", "url_filter", "extract", "langid", "gopher_quality", "gopher_repetition",
                 "c4_quality", "fineweb_quality")
DEDUP_STAGES = ("exact_dedup", "minhash_dedup")
LANGS = ("en", "fr", "de", "es")
TARGETS = {   # name: (goal, comparison)
    "spam_precision": (0.95, ">="), "spam_recall": (0.9, ">="), "langid_accuracy": (0.98, ">="),
    "near_dup_recall": (0.9, ">="), "near_dup_precision": (0.95, ">="), "pii_recall": (0.99, ">="),
    "extraction_kept": (0.95, ">="), "extraction_boilerplate": (0.05, "<="),
}
_WORD = re.compile(r"\w+")
_PLACEHOLDER = re.compile(r"<(EMAIL|PHONE|IP)>")


def _words(text):
    return Counter(_WORD.findall((text or "").lower()))


def _ratio(a, b):
    return round(a / b, 4) if b else None


def _shard_decisions(out_dir, name):
    """Document id ("<shard>/<index of the response>") -> the pipeline's record: its stage
    ("kept" for an output document), reason, lang, duplicate_of, url, text; and id ->
    extracted text. (Ids, not URLs: two pages may share a URL.)"""
    out_dir = Path(out_dir)
    decisions = {}
    for rec in read_jsonl_gz(out_dir / "removed" / f"{name}.jsonl.gz"):
        decisions[rec["id"]] = rec
    for rec in read_jsonl_gz(out_dir / f"{name}.jsonl.gz"):
        decisions[rec["id"]] = {**rec, "stage": "kept", "reason": None}
    wet = {rec["id"]: rec["text"] for rec in read_jsonl_gz(out_dir / "work" / f"{name}.wet.jsonl.gz")}
    return decisions, wet


def _truth_path(crawl, name):
    return Path(crawl) / "truth" / f"{name}.jsonl.gz"


def score_run(crawl, out_dir):
    """The report dict:

    filters      spam/junk precision and recall. Positives: spam, junk, blocklisted and
                 boilerplate pages. Predicted positive: removed by any stage before dedup
                 (URL filter, extraction, language ID, quality rules). Non-English pages
                 are left out (they are language ID's to remove); copies of good pages are
                 negatives (a filter must keep them for dedup to decide). Per stage: how
                 many it removed and the share of those that were bad.
    langid       accuracy of the language decision against the true language, over pages
                 that reached language ID and whose true language is en, fr, de or es.
    extraction   over pages with a true main text that reached extraction: the share of
                 the true main text's words the extractor kept, and the share of its output
                 words that are not main text (boilerplate); word multisets, micro-averaged.
    dedup        truth clusters (a copy points at its original); among the documents that
                 reached deduplication, a cluster of m ideally loses m - 1. Recall: removals
                 that were due / due removals. Precision: the share of removals that were
                 right, where a removal is right if the truth says the two pages are copies,
                 or -- since the world itself holds documents that repeat each other (one
                 fact card rendered twice, how-tos sharing a body) and the truth labels only
                 the crawl's copies -- if the TRUE main texts of the two pages have word
                 5-gram Jaccard >= 0.8. Both precisions are reported.
    pii          of the PII values in the pages the pipeline kept, the share that no longer
                 appear in the output text (recall), and placeholders beyond the truth's
                 count (precision).
    cld2         on real Common Crawl WARCs: agreement on English vs not with the
                 languages-cld2 field of the metadata records (when present).
    """
    acc = {"filter": Counter(), "by_stage": {}, "by_kind": {}, "lang": Counter(), "lang_confusion": Counter(),
           "extract": Counter(), "extract_by_kind": {}, "pii": Counter(), "pii_by_type": {}}
    dedup_pages = {}       # page id -> removed by dedup?, for pages that reached dedup
    roots = {}             # page id -> id of the page it copies
    paths = find_warcs(crawl)
    have_truth = all(_truth_path(crawl if Path(crawl).is_dir() else Path(crawl).parent, shard_name(p)).exists()
                     for p in paths)
    report = {"crawl": str(crawl), "out": str(out_dir), "truth": have_truth}
    if have_truth:
        copies = []        # (copy id, url of its original)
        first_id = {}      # url -> id of the first page with that url
        for path in paths:
            name = shard_name(path)
            decisions, wet = _shard_decisions(out_dir, name)
            for truth in read_jsonl_gz(_truth_path(crawl, name)):
                pid = f"{name}/{truth['index']}"
                d = decisions.get(pid)
                if d is None or d["url"] != truth["url"]:
                    raise UserError(f"page {pid} ({truth['url']}) of the truth has no matching decision "
                                    f"in {out_dir}; was it cleaned from another crawl?")
                first_id.setdefault(truth["url"], pid)
                orig = truth.get("duplicate_of") or truth.get("near_duplicate_of")
                if orig:
                    copies.append((pid, orig))
                _score_page(pid, truth, d, wet.get(pid), acc, dedup_pages)
        # a copy always comes after its original, so the first page with that URL is it
        roots.update((pid, first_id[url]) for pid, url in copies if url in first_id)
        report.update(_summarize(acc, dedup_pages, roots))
    report["cld2"] = cld2_agreement(paths, out_dir)
    report["targets"] = targets(report)
    return report


def _score_page(pid, truth, d, extracted, acc, dedup_pages):
    kind, stage = truth["kind"], d["stage"]
    filtered = stage in FILTER_STAGES
    if kind != "non_english":
        bad = kind in BAD_KINDS
        acc["filter"][(bad, filtered)] += 1
        if filtered:
            row = acc["by_stage"].setdefault(stage, Counter())
            row["removed"] += 1
            row["bad"] += bad
            row[kind] += 1
        k = acc["by_kind"].setdefault(kind, Counter())
        k["pages"] += 1
        k["filtered"] += filtered
    if d.get("lang") is not None and truth["lang"] in LANGS:
        acc["lang"]["pages"] += 1
        acc["lang"]["correct"] += d["lang"] == truth["lang"]
        acc["lang"]["en_agree"] += (d["lang"] == "en") == (truth["lang"] == "en")
        if d["lang"] != truth["lang"]:
            acc["lang_confusion"][f"{truth['lang']}->{d['lang']}"] += 1
    if extracted is not None and truth["main_text"]:
        ours, true = _words(extracted), _words(truth["main_text"])
        common = sum((ours & true).values())
        for row in (acc["extract"], acc["extract_by_kind"].setdefault(kind, Counter())):
            row["pages"] += 1
            row["true_words"] += sum(true.values())
            row["out_words"] += sum(ours.values())
            row["common"] += common
    if stage == "kept" or stage in DEDUP_STAGES:
        dedup_pages[pid] = (d.get("duplicate_of"), set(shingle_hashes(truth["main_text"]).tolist()))
    if stage == "kept":
        text = d["text"]
        for item in truth["pii"]:
            row = acc["pii_by_type"].setdefault(item["type"], Counter())
            row["total"] += 1
            row["scrubbed"] += item["value"] not in text
        placeholders = len(_PLACEHOLDER.findall(text))
        acc["pii"]["total"] += len(truth["pii"])
        acc["pii"]["scrubbed"] += sum(item["value"] not in text for item in truth["pii"])
        acc["pii"]["placeholders"] += placeholders
        acc["pii"]["extra_placeholders"] += max(0, placeholders - len(truth["pii"]))


def _root(url, roots):
    seen = set()
    while url in roots and url not in seen:
        seen.add(url)
        url = roots[url]
    return url


def _summarize(acc, dedup_pages, roots):
    f = acc["filter"]
    tp, fp, fn = f[(True, True)], f[(False, True)], f[(True, False)]
    filters = {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
               "true_positives": tp, "false_positives": fp, "false_negatives": fn,
               "by_stage": {s: {"removed": r["removed"], "precision": _ratio(r["bad"], r["removed"]),
                                "kinds": {k: v for k, v in r.items() if k not in ("removed", "bad")}}
                            for s, r in sorted(acc["by_stage"].items(), key=lambda x: FILTER_STAGES.index(x[0]))},
               "recall_by_kind": {k: _ratio(r["filtered"], r["pages"]) for k, r in sorted(acc["by_kind"].items())}}
    lang = {"accuracy": _ratio(acc["lang"]["correct"], acc["lang"]["pages"]), "pages": acc["lang"]["pages"],
            "english_vs_not_agreement": _ratio(acc["lang"]["en_agree"], acc["lang"]["pages"]),
            "confusions": dict(acc["lang_confusion"].most_common(10))}
    e = acc["extract"]
    extraction = {"kept": _ratio(e["common"], e["true_words"]),
                  "boilerplate": _ratio(e["out_words"] - e["common"], e["out_words"]), "pages": e["pages"],
                  "by_kind": {k: {"kept": _ratio(r["common"], r["true_words"]),
                                  "boilerplate": _ratio(r["out_words"] - r["common"], r["out_words"]),
                                  "pages": r["pages"]} for k, r in sorted(acc["extract_by_kind"].items())}}
    return {"filters": filters, "langid": lang, "extraction": extraction,
            "dedup": _dedup_scores(dedup_pages, roots), "pii": _pii_scores(acc)}


def _dedup_scores(dedup_pages, roots, same_text=0.8):
    clusters = {}
    for pid, (dup_of, _) in dedup_pages.items():
        c = clusters.setdefault(_root(pid, roots), [0, 0])
        c[0] += 1
        c[1] += dup_of is not None
    due = sum(m - 1 for m, _ in clusters.values())
    hit = sum(min(r, m - 1) for m, r in clusters.values())
    removed = labelled = verified = 0
    for pid, (dup_of, shingles) in dedup_pages.items():
        if dup_of is None:
            continue
        removed += 1
        root = _root(pid, roots)
        if root == _root(dup_of, roots) or (root != pid and root in dedup_pages):
            labelled += 1
            verified += 1
        else:
            other = dedup_pages[dup_of][1]
            verified += len(shingles & other) / max(len(shingles | other), 1) >= same_text
    return {"recall": _ratio(hit, due), "precision": _ratio(verified, removed),
            "precision_vs_labels": _ratio(labelled, removed), "due": due, "removed": removed,
            "correct": hit, "world_duplicates": verified - labelled, "documents": len(dedup_pages)}


def _pii_scores(acc):
    p = acc["pii"]
    return {"recall": _ratio(p["scrubbed"], p["total"]), "values": p["total"],
            "precision": _ratio(p["placeholders"] - p["extra_placeholders"], p["placeholders"]),
            "placeholders": p["placeholders"],
            "recall_by_type": {k: _ratio(r["scrubbed"], r["total"]) for k, r in sorted(acc["pii_by_type"].items())}}


def _cld2_languages(path):
    """url -> CC's languages-cld2 for the metadata records of a WARC file that can be read."""
    cld2 = {}
    try:
        for r in iter_records(path, skip_bad=True):
            if r.type == "metadata" and r.error is None:
                cld2[r.url] = r.cld2_languages()
    except WarcError:
        pass    # a corrupt stream: the languages read up to it
    return cld2


def cld2_agreement(paths, out_dir):
    """English-vs-not agreement with Common Crawl's languages-cld2, where the WARCs have it."""
    agree = total = 0
    for path in paths:
        cld2 = _cld2_languages(path)
        if not any(cld2.values()):
            continue
        decisions, _ = _shard_decisions(out_dir, shard_name(path))
        for d in decisions.values():
            if d.get("lang") is not None and cld2.get(d["url"]):
                total += 1
                agree += (d["lang"] == "en") == (cld2[d["url"]][0][0] == "en")
    return {"pages": total, "english_vs_not_agreement": _ratio(agree, total)} if total else None


def targets(report):
    """{name: {"value", "goal", "met"}} for the issue's targets (value None: not measured)."""
    values = {}
    if report.get("truth"):
        values = {"spam_precision": report["filters"]["precision"], "spam_recall": report["filters"]["recall"],
                  "langid_accuracy": report["langid"]["accuracy"], "near_dup_recall": report["dedup"]["recall"],
                  "near_dup_precision": report["dedup"]["precision"], "pii_recall": report["pii"]["recall"],
                  "extraction_kept": report["extraction"]["kept"],
                  "extraction_boilerplate": report["extraction"]["boilerplate"]}
    out = {}
    for name, (goal, op) in TARGETS.items():
        v = values.get(name)
        met = v is not None and (v >= goal if op == ">=" else v <= goal)
        out[name] = {"value": v, "goal": f"{op} {goal}", "met": met}
    return out


def format_report(report):
    """The report as a few aligned lines for the terminal."""
    lines = ["quality report:"]
    if report.get("truth"):
        f, l, e, d, p = (report[k] for k in ("filters", "langid", "extraction", "dedup", "pii"))
        lines.append(f"  spam/junk filters  precision {f['precision']}  recall {f['recall']}  "
                     f"(TP {f['true_positives']}, FP {f['false_positives']}, FN {f['false_negatives']})")
        for stage, row in f["by_stage"].items():
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(row["kinds"].items(), key=lambda x: -x[1]))
            lines.append(f"    {stage:<18} removed {row['removed']:>6}  precision {row['precision']}  ({kinds})")
        lines.append("    recall by kind: " + ", ".join(f"{k} {v}" for k, v in f["recall_by_kind"].items()))
        lines.append(f"  language ID        accuracy {l['accuracy']} on {l['pages']} pages, English-vs-not "
                     f"{l['english_vs_not_agreement']}; errors {l['confusions']}")
        lines.append(f"  extraction         kept {e['kept']} of the main text, boilerplate {e['boilerplate']} "
                     f"of the output ({e['pages']} pages)")
        lines.append(f"  dedup              recall {d['recall']}  precision {d['precision']}  "
                     f"({d['correct']} of {d['due']} due, {d['removed']} removed, {d['documents']} documents; "
                     f"{d['world_duplicates']} removals are copies within the world itself, precision "
                     f"against the crawl's labels alone {d['precision_vs_labels']})")
        lines.append(f"  PII                recall {p['recall']} of {p['values']} values, precision {p['precision']} "
                     f"of {p['placeholders']} placeholders; by type {p['recall_by_type']}")
    else:
        lines.append("  (no ground truth beside the WARCs: only the language comparison below)")
    if report.get("cld2"):
        c = report["cld2"]
        lines.append(f"  vs CC languages-cld2: English-vs-not agreement {c['english_vs_not_agreement']} on {c['pages']} pages")
    met = [f"{k} {'ok' if v['met'] else 'MISSED'}" for k, v in report["targets"].items() if v["value"] is not None]
    if met:
        lines.append("  targets: " + ", ".join(met))
    return "\n".join(lines)
