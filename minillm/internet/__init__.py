"""Step 1 of the lecture: get text from the internet and clean it, FineWeb-style.

Reading order: download.py (real corpora, resumably), warc.py and warc_writer.py (Common
Crawl's file format), pipeline.py (the three passes over a crawl), stages.py (the
per-document stages), extract.py (HTML -> main text), langid.py (language ID),
filters.py (URL blocklist, Gopher/C4/FineWeb quality rules), dedup.py (exact and
MinHash), pii.py (e-mails, phones, IPs -> placeholders), score.py (against the crawl's
truth), cli.py (`minillm download`, `minillm clean`).
"""
