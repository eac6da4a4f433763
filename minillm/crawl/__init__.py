"""The crawl: the mini-world rendered as web pages in WARC files, with the ground truth.

Reading order: pages.py (the crawl, its files, the order of pages), bundle.py (which
documents share a page), planner.py (each bundle -> its page, mixed-in noise pages and
copies), sites.py (hosts, templates, page chrome), noise.py (spam, junk, boilerplate,
blocklisted hosts, near-duplicate edits, PII), cli.py (`minillm crawl`).
"""
