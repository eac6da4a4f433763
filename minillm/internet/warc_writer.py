"""Writing WARC files the way Common Crawl ships them: each record its own gzip member.

    with WarcWriter("out.warc.gz", seed="world-0/shard-3") as w:
        w.write_warcinfo({"software": "minillm"}, date=d)
        req = w.write_request(url, date=d)
        resp = w.write_response(url, html_bytes, {"Content-Type": "text/html; charset=utf-8"},
                                date=d, concurrent_to=req)
        w.write_metadata(url, {"fetchTimeMs": "12"}, date=d, concurrent_to=resp)

Records are WARC/1.1 with WARC-Block-Digest and WARC-Payload-Digest (sha1, base32, as CC
does); warc.py reads them back. With a seed and a date for every record, the same input
gives byte-identical files. minillm/crawl writes its crawl with it. Read pipeline.py next.
"""
import datetime as dt
import gzip
import os
import uuid

from minillm.common import atomic_path
from minillm.internet.warc import Headers, sha1_base32


def warc_date(when=None):
    """A datetime (or None: now) -> WARC-Date "YYYY-MM-DDThh:mm:ssZ" (UTC)."""
    if isinstance(when, str):
        return when
    when = when or dt.datetime.now(dt.timezone.utc)
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


_NAMESPACE = uuid.UUID("6f0c8a1e-5d0b-4b5e-9a57-6d696e696c6d")  # fixed, for reproducible ids


class WarcWriter:
    """Write WARC/1.1 records, each its own gzip member (Common Crawl's layout).

    `target` is a path (written atomically: a temporary file renamed on close(); an
    exception inside `with` leaves no file) or a binary file object. With `seed`, record ids
    are uuid5(seed, record number); with a `date` passed to every write too (a record
    without one is dated now), the same crawl gives byte-identical files.
    """

    def __init__(self, target, *, seed=None, compress=True, compresslevel=6):
        self.seed, self.compress, self.compresslevel = seed, compress, compresslevel
        self.count = 0
        self.warcinfo_id = None
        self._ctx = None
        if isinstance(target, (str, os.PathLike)):
            self._ctx = atomic_path(target)
            self._file = open(self._ctx.__enter__(), "wb")
        else:
            self._file = target

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort(exc_type, exc, tb)

    def close(self):
        """Flush and (for a path) atomically move the file into place."""
        if self._ctx is not None:
            self._file.close()
            ctx, self._ctx = self._ctx, None
            ctx.__exit__(None, None, None)

    def abort(self, *exc_info):
        """Drop a path target's temporary file (nothing is left behind)."""
        if self._ctx is not None:
            self._file.close()
            ctx, self._ctx = self._ctx, None
            exc_info = exc_info or (RuntimeError, RuntimeError("aborted"), None)
            try:
                ctx.__exit__(*exc_info)
            except BaseException:  # atomic_path re-raises; we only want the cleanup
                pass

    def new_record_id(self):
        """<urn:uuid:...>: uuid5 of (seed, record number) when seeded, else random."""
        if self.seed is None:
            u = uuid.uuid4()
        else:
            u = uuid.uuid5(_NAMESPACE, f"{self.seed}/{self.count}")
        return f"<urn:uuid:{u}>"

    def write_record(self, warc_type, block, headers=(), *, date=None, url=None,
                     content_type=None, payload=None):
        """Write one record; returns its WARC-Record-ID. `headers` adds extra WARC headers;
        `payload` (the HTTP body) adds WARC-Payload-Digest."""
        record_id = self.new_record_id()
        pairs = [("WARC-Type", warc_type), ("WARC-Date", warc_date(date)), ("WARC-Record-ID", record_id),
                 ("Content-Length", str(len(block)))]
        if content_type:
            pairs.append(("Content-Type", content_type))
        if self.warcinfo_id and warc_type != "warcinfo":
            pairs.append(("WARC-Warcinfo-ID", self.warcinfo_id))
        pairs += list(Headers(headers))
        if url is not None:
            pairs.append(("WARC-Target-URI", url))
        if payload is not None:
            pairs.append(("WARC-Payload-Digest", sha1_base32(payload)))
        pairs.append(("WARC-Block-Digest", sha1_base32(block)))
        head = "WARC/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n"
        data = head.encode("utf-8") + block + b"\r\n\r\n"
        if self.compress:
            data = gzip.compress(data, compresslevel=self.compresslevel, mtime=0)
        self._file.write(data)
        self.count += 1
        return record_id

    def write_warcinfo(self, fields, *, filename=None, date=None):
        """The file's first record: who wrote it and how (application/warc-fields)."""
        extra = [("WARC-Filename", filename)] if filename else []
        rid = self.write_record("warcinfo", _fields_block(fields), extra, date=date,
                                content_type="application/warc-fields")
        self.warcinfo_id = rid
        return rid

    def write_request(self, url, http_headers=None, *, date=None, ip=None, method="GET"):
        """The HTTP request the crawler sent (no body)."""
        host, path = _split_url(url)
        hdrs = http_headers or {"User-Agent": "minillm-crawler/1.0", "Accept": "text/html", "Host": host}
        block = _http_block(f"{method} {path} HTTP/1.1", hdrs, b"")
        extra = [("WARC-IP-Address", ip)] if ip else []
        return self.write_record("request", block, extra, date=date, url=url,
                                 content_type="application/http; msgtype=request", payload=b"")

    def write_response(self, url, body, http_headers, *, status=200, reason="OK", date=None,
                       ip=None, concurrent_to=None):
        """The HTTP response: status line, headers (Content-Length added if missing), body."""
        hdrs = Headers(http_headers)
        if "Content-Length" not in hdrs:
            hdrs.pairs.append(("Content-Length", str(len(body))))
        block = _http_block(f"HTTP/1.1 {status} {reason}", hdrs, body)
        extra = ([("WARC-Concurrent-To", concurrent_to)] if concurrent_to else []) + \
                ([("WARC-IP-Address", ip)] if ip else [])
        mime = hdrs.get("Content-Type", "").split(";")[0].strip().lower()
        if mime:
            extra.append(("WARC-Identified-Payload-Type", mime))
        return self.write_record("response", block, extra, date=date, url=url,
                                 content_type="application/http; msgtype=response", payload=body)

    def write_metadata(self, url, fields, *, date=None, concurrent_to=None):
        """A metadata record (application/warc-fields) about the response `concurrent_to`."""
        extra = [("WARC-Concurrent-To", concurrent_to)] if concurrent_to else []
        return self.write_record("metadata", _fields_block(fields), extra, date=date, url=url,
                                 content_type="application/warc-fields")


def _fields_block(fields):
    return "".join(f"{k}: {v}\r\n" for k, v in Headers(fields)).encode("utf-8")


def _http_block(first_line, headers, body):
    head = first_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in Headers(headers)) + "\r\n"
    return head.encode("latin-1") + body


def _split_url(url):
    rest = url.split("://", 1)[-1]
    host, slash, path = rest.partition("/")
    return host, "/" + path if slash else "/"
