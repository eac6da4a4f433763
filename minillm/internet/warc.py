"""WARC files, read the way Common Crawl ships them (warc_writer.py writes them).

A WARC file is a sequence of records (the layout: iter_records). Common Crawl gzips each
record on its own and concatenates the members, so a reader can seek to one record; a
gzip reader that handles multi-member files reads the whole file as one stream. A fetched
page has three records: the `request`, the `response` (HTTP status line, headers, body)
and a `metadata` record (CC stores `charset-detected` and `languages-cld2` there).

    for rec in iter_records("crawl-00000.warc.gz"):      # path or binary file; gz or plain
        if rec.type == "response":
            html = rec.text()                              # body decoded with rec.charset

The reader accepts WARC/1.0 and 1.1; warc_writer.py writes WARC/1.1 the same way (the
crawl in minillm/crawl writes with it). The pipeline reads WARCs with this module. Read
warc_writer.py, then pipeline.py.
"""
import base64
import codecs
import gzip
import hashlib
import io
import json
import os
import re
import zlib
from pathlib import Path

from minillm.common import UserError

# ----------------------------------------------------------------------------- headers


class Headers:
    """Ordered (name, value) pairs with case-insensitive lookup (WARC and HTTP headers).

    `h["content-type"]` raises KeyError when absent, `h.get(name, default)` does not, and
    `h.get_all(name)` returns every value of a repeated header.
    """

    def __init__(self, pairs=()):
        self.pairs = [(str(k), str(v)) for k, v in (pairs.items() if hasattr(pairs, "items") else pairs)]

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self.pairs:
            if k.lower() == name:
                return v
        return default

    def get_all(self, name):
        name = name.lower()
        return [v for k, v in self.pairs if k.lower() == name]

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name):
        return self.get(name) is not None

    def __iter__(self):
        return iter(self.pairs)

    def __len__(self):
        return len(self.pairs)

    def items(self):
        return list(self.pairs)

    def __repr__(self):
        return f"Headers({self.pairs!r})"


def _parse_header_lines(lines, encoding):
    """Header lines (bytes, no CRLF) -> Headers. Continuation lines (leading space/tab)
    extend the previous value; lines without a colon are skipped."""
    pairs = []
    for raw in lines:
        line = raw.decode(encoding, errors="replace")
        if line[:1] in (" ", "\t") and pairs:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if sep:
            pairs.append((name.strip(), value.strip()))
    return Headers(pairs)


# ----------------------------------------------------------------------------- charsets

# WHATWG's encoding rules for the labels we meet: browsers decode a page labelled latin-1
# or ascii as windows-1252 (a superset), and gb2312 as GBK (its superset).
_CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "l1": "cp1252",
                    "us-ascii": "cp1252", "ascii": "cp1252", "iso8859-1": "cp1252",
                    "gb2312": "gbk", "gb_2312-80": "gbk", "x-gbk": "gbk", "utf8": "utf-8"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def normalize_charset(label):
    """A charset label -> a Python codec name (lower case), or None if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return "cp1252" if name in ("latin-1", "iso8859-1", "ascii") else name


def detect_charset(body, content_type=None):
    """The charset to decode an HTML body with, in the browser's order: byte-order mark,
    HTTP Content-Type charset, <meta charset> in the first 4 KB, valid UTF-8, else cp1252."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if content_type:
        m = _CT_CHARSET.search(content_type)
        if m and normalize_charset(m.group(1)):
            return normalize_charset(m.group(1))
    m = _META_CHARSET.search(body[:4096])
    if m and normalize_charset(m.group(1).decode("ascii")):
        return normalize_charset(m.group(1).decode("ascii"))
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


# ----------------------------------------------------------------------------- records


class WarcRecord:
    """One WARC record: `version`, `headers` (Headers) and `content` (the raw block bytes).

    Properties read the common headers (type, url, record_id, date, content_type). For
    records whose block is an HTTP message (request/response) the HTTP part is parsed on
    first use: http_status (responses), http_method (requests), http_headers, http_body,
    charset and text(). For application/warc-fields blocks (warcinfo, metadata) `fields`
    is the parsed dict.
    """

    def __init__(self, version, headers, content):
        self.version = version  # "WARC/1.0" or "WARC/1.1"
        self.headers = headers
        self.content = content
        self._http = None

    def __repr__(self):
        return f"<WarcRecord {self.type} {self.url or ''} {len(self.content)} bytes>"

    type = property(lambda self: (self.headers.get("WARC-Type") or "").lower())
    url = property(lambda self: self.headers.get("WARC-Target-URI"))
    record_id = property(lambda self: self.headers.get("WARC-Record-ID"))
    date = property(lambda self: self.headers.get("WARC-Date"))
    content_type = property(lambda self: self.headers.get("Content-Type", ""))

    @property
    def is_http(self):
        """True when the block is an HTTP message (Content-Type application/http)."""
        return self.content_type.lower().startswith("application/http")

    def _parse_http(self):
        if self._http is None:
            self._http = _parse_http_block(self.content)
        return self._http

    http_status = property(lambda self: self._parse_http()["status"] if self.is_http else None)
    http_reason = property(lambda self: self._parse_http()["reason"] if self.is_http else None)
    http_method = property(lambda self: self._parse_http()["method"] if self.is_http else None)

    @property
    def http_headers(self):
        """Headers of the HTTP message (empty Headers for non-HTTP records)."""
        return self._parse_http()["headers"] if self.is_http else Headers()

    @property
    def http_body(self):
        """The HTTP entity body (bytes); the whole block for non-HTTP records."""
        return self._parse_http()["body"] if self.is_http else self.content

    @property
    def charset(self):
        """Codec name for the body: see detect_charset (utf-8 for non-HTTP blocks)."""
        if not self.is_http:
            return detect_charset(self.content)
        return detect_charset(self.http_body, self.http_headers.get("Content-Type"))

    def text(self, errors="replace"):
        """The body decoded with `charset` (never raises on bad bytes by default)."""
        return self.http_body.decode(self.charset, errors=errors)

    @property
    def fields(self):
        """application/warc-fields block -> dict (warcinfo, metadata records)."""
        return dict(_parse_header_lines(self.content.splitlines(), "utf-8"))

    def cld2_languages(self):
        """Common Crawl's `languages-cld2` metadata -> [(code, share of text), ...]; [] if absent."""
        raw = self.fields.get("languages-cld2") if self.type == "metadata" else None
        if not raw:
            return []
        try:
            langs = json.loads(raw).get("languages", [])
        except json.JSONDecodeError:
            return []
        return [(x["code"], float(x.get("text-covered", 0.0))) for x in langs]


def _parse_http_block(block):
    """An HTTP request/response block -> dict(status, reason, method, headers, body)."""
    end, sep = block.find(b"\r\n\r\n"), 4
    lf = block.find(b"\n\n")
    if end < 0 or (0 <= lf < end):
        end, sep = lf, 2
    head, body = (block, b"") if end < 0 else (block[:end], block[end + sep:])
    lines = head.splitlines()
    first = lines[0].decode("latin-1").strip() if lines else ""
    headers = _parse_header_lines(lines[1:], "latin-1")
    status = reason = method = None
    parts = first.split(" ", 2)
    if first.upper().startswith("HTTP/"):
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        reason = parts[2] if len(parts) > 2 else ""
    elif parts:
        method = parts[0]
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        body = _dechunk(body)
    encoding = headers.get("Content-Encoding", "").lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:  # subtle: CC stores bodies decoded (X-Crawler-Content-Encoding); others may not
            body = zlib.decompress(body, 47 if "gzip" in encoding else 15)
        except zlib.error:
            pass
    return {"status": status, "reason": reason, "method": method, "headers": headers, "body": body}


def _dechunk(data):
    """Undo HTTP chunked transfer encoding; returns the input if it is not well formed."""
    out, pos = bytearray(), 0
    while True:
        eol = data.find(b"\r\n", pos)
        try:
            size = int(data[pos:eol].split(b";")[0], 16)
        except ValueError:
            return data
        if size == 0:
            return bytes(out)
        out += data[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2


# ----------------------------------------------------------------------------- reading


def _open_stream(source):
    """Path or binary file object -> (stream of uncompressed WARC bytes, file we opened)."""
    opened = None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise UserError(f"WARC file not found: {path}")
        source = opened = open(path, "rb")
    peek = source.peek(2)[:2] if hasattr(source, "peek") else None
    if peek is None:
        source = io.BufferedReader(source) if hasattr(source, "readinto") else io.BytesIO(source.read())
        peek = source.peek(2)[:2]
    if peek == b"\x1f\x8b":
        # Python's gzip reads concatenated members (one per record) as one stream.
        return gzip.GzipFile(fileobj=source, mode="rb"), opened
    return source, opened


def iter_records(source):
    """Stream the records of a WARC file (path or binary file; gzipped per record or plain).
    A record is a version line, header lines, a blank line, `Content-Length` bytes of
    content (the "block") and two CRLFs:

        WARC/1.1\\r\\n
        WARC-Type: response\\r\\n
        WARC-Target-URI: https://example.org/\\r\\n
        Content-Length: 1234\\r\\n
        \\r\\n
        HTTP/1.1 200 OK\\r\\nContent-Type: text/html; charset=utf-8\\r\\n\\r\\n<html>...  (the block)
        \\r\\n\\r\\n

    Yields WarcRecord objects one at a time; memory is bounded by the largest record.
    Raises UserError on a malformed file (with the byte offset in the uncompressed stream).
    """
    stream, opened = _open_stream(source)
    offset = 0
    try:
        while True:
            line = stream.readline()
            if not line:
                return
            offset += len(line)
            if not line.strip():
                continue  # blank lines between records
            version = line.strip().decode("latin-1")
            if not version.startswith("WARC/"):
                raise UserError(f"not a WARC record at byte {offset - len(line)}: {line[:40]!r}")
            lines = []
            while True:
                h = stream.readline()
                offset += len(h)
                if not h or not h.strip():
                    break
                lines.append(h.rstrip(b"\r\n"))
            headers = _parse_header_lines(lines, "utf-8")
            length = headers.get("Content-Length")
            if length is None or not length.strip().isdigit():
                raise UserError(f"WARC record without a valid Content-Length at byte {offset}")
            content = stream.read(int(length))
            if len(content) < int(length):
                raise UserError(f"truncated WARC record at byte {offset}: {len(content)} of {length} bytes")
            offset += len(content)
            yield WarcRecord(version, headers, content)
    except (EOFError, zlib.error, OSError) as e:
        raise UserError(f"corrupt WARC stream near byte {offset}: {e}") from None
    finally:
        if opened is not None:
            stream.close()
            opened.close()


# ----------------------------------------------------------------------------- digests


def sha1_base32(data):
    """Digest as WARC/CC write it: "sha1:" + base32 of the SHA-1."""
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")
