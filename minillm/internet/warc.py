"""WARC files, read the way Common Crawl ships them (warc_writer.py writes them).

A WARC file is a sequence of records (the layout: iter_records). Common Crawl gzips each
record on its own and concatenates the members, so a reader can seek to one record (ours
reads member by member: a corrupt member costs its record, not the rest). A fetched
page has three records: the `request`, the `response` (HTTP status line, headers, body)
and a `metadata` record (CC stores `charset-detected` and `languages-cld2` there).

    for rec in iter_records("crawl-00000.warc.gz"):      # path or binary file; gz or plain
        if rec.type == "response":
            html = rec.text()                              # body decoded with rec.charset

Web pages are hostile: every size is bounded before anything is read into memory
(max_record_bytes, max_body_bytes), charsets must name text encodings, and what cannot be
read raises WarcError (a UserError) with a `reason`; `iter_records(..., skip_bad=True)`
yields such records with `rec.error` set and reads on, so one bad record costs one record.
The reader accepts WARC/1.0 and 1.1; warc_writer.py writes WARC/1.1 the same way (the
crawl in minillm/crawl writes with it). Read warc_writer.py, then pipeline.py.
"""
import base64
import codecs
import functools
import hashlib
import io
import json
import os
import re
import zlib
from pathlib import Path

from minillm.common import UserError

MAX_RECORD_BYTES = 256 << 20    # a WARC record's block (CC truncates bodies at 1 MiB)
MAX_BODY_BYTES = 256 << 20      # an HTTP body after undoing gzip/deflate
MAX_LINE_BYTES = 64 << 10       # one header line
MAX_HEADER_LINES = 1000


class WarcError(UserError):
    """What the reader cannot read. `reason` is the cleaning funnel's name for it:
    malformed_warc (record framing), oversize, malformed_http, bad_charset, corrupt_warc
    (the compressed stream itself: nothing after it can be read), truncated_warc (the file
    ends inside a record: an interrupted download; the records before it were read)."""

    def __init__(self, message, reason="malformed_warc"):
        super().__init__(message)
        self.reason = reason

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
    """A charset label -> a Python codec name (lower case), or None if unknown or not a
    text encoding that decodes any bytes (base64, hex, rot13, zlib, idna, undefined, ... are
    codecs too, but a page that names one is read as if it named none, as browsers do)."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError, TypeError):
        return None
    if not _decodes_any_bytes(name):
        return None
    return "cp1252" if name in ("latin-1", "iso8859-1", "ascii") else name


@functools.lru_cache(maxsize=None)
def _decodes_any_bytes(name):
    """True for a text encoding that turns every byte string into str with errors="replace"."""
    if not getattr(codecs.lookup(name), "_is_text_encoding", True):
        return False    # bytes-to-bytes or str-to-str: base64, hex, zlib, rot13, ...
    if name in ("idna", "punycode", "undefined"):
        return False    # text encodings of host names or of nothing: fail on some bytes
    try:
        return isinstance(_PROBE.decode(name, errors="replace"), str)
    except (UnicodeError, LookupError, ValueError, TypeError):
        return False    # idna, punycode, undefined: no "replace", or no decoding at all


_PROBE = bytes(range(256)) + b"\\x\\u12+-&" + bytes(range(128, 256))


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

    def __init__(self, version, headers, content, error=None, max_body_bytes=MAX_BODY_BYTES):
        self.version = version  # "WARC/1.0" or "WARC/1.1"
        self.headers = headers
        self.content = content
        self.error = error      # WarcError of a record iter_records(skip_bad=True) could not read
        self.max_body_bytes = max_body_bytes
        self._http = None

    def __repr__(self):
        return f"<WarcRecord {self.type} {self.url or ''} {len(self.content)} bytes>"

    type = property(lambda self: (self.headers.get("WARC-Type") or "").lower())
    @property
    def url(self):
        """WARC-Target-URI, without the angle brackets that wget writes around it (WARC/1.0's
        grammar had them: `<https://example.org/>`)."""
        uri = self.headers.get("WARC-Target-URI")
        uri = uri.strip() if uri is not None else None
        return uri[1:-1].strip() if uri and uri.startswith("<") and uri.endswith(">") else uri

    record_id = property(lambda self: self.headers.get("WARC-Record-ID"))
    date = property(lambda self: self.headers.get("WARC-Date"))
    content_type = property(lambda self: self.headers.get("Content-Type", ""))

    @property
    def is_http(self):
        """True when the block is an HTTP message (Content-Type application/http)."""
        return self.content_type.lower().startswith("application/http")

    def _parse_http(self):
        if self._http is None:
            self._http = _parse_http_block(self.content, self.max_body_bytes)
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
        """The body decoded with `charset` (never raises on bad bytes by default; WarcError
        "bad_charset" if the codec fails anyway)."""
        body, charset = self.http_body, self.charset
        try:
            return body.decode(charset, errors=errors)
        except (UnicodeError, LookupError) as e:
            if errors == "strict" and isinstance(e, UnicodeDecodeError):
                raise
            raise WarcError(f"cannot decode {self.url} as {charset}: {e}", "bad_charset") from None

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
            return [(str(x["code"]), float(x.get("text-covered", 0.0))) for x in langs]
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return []   # not CC's shape: no languages


def _parse_http_block(block, max_body_bytes=MAX_BODY_BYTES):
    """An HTTP request/response block -> dict(status, reason, method, headers, body).
    WarcError: a malformed chunked body ("malformed_http"), or a body that inflates past
    max_body_bytes ("oversize")."""
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
        status = int(parts[1]) if len(parts) > 1 and _is_decimal(parts[1]) else None
        reason = parts[2] if len(parts) > 2 else ""
    elif parts:
        method = parts[0]
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        body = _dechunk(body)
    encoding = headers.get("Content-Encoding", "").lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        # subtle: CC stores bodies decoded (X-Crawler-Content-Encoding); others may not.
        # A body that is not what it says stays as it is; one that inflates too far is refused.
        inflate = zlib.decompressobj(47 if "gzip" in encoding else 15)
        try:
            plain = inflate.decompress(body, max_body_bytes + 1)
        except zlib.error:
            plain = None
        if plain is not None and len(plain) > max_body_bytes:
            raise WarcError(f"HTTP body inflates past {max_body_bytes} bytes", "oversize")
        if plain is not None and inflate.eof:
            body = plain
    return {"status": status, "reason": reason, "method": method, "headers": headers, "body": body}


_CHUNK_SIZE = re.compile(rb"[ \t]*([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")


def _is_decimal(s):
    return s.isascii() and s.isdigit()


def _dechunk(data):
    """Undo HTTP chunked transfer encoding: `<hex size>[;ext]\r\n<size bytes>\r\n` ...
    `0\r\n`. Every step moves forward; a malformed size line, a chunk running past the end
    or a missing last chunk raises WarcError "malformed_http"."""
    out, pos = bytearray(), 0
    while True:
        eol = data.find(b"\r\n", pos)
        m = _CHUNK_SIZE.fullmatch(data, pos, eol) if eol >= 0 else None
        if m is None:
            raise WarcError(f"malformed chunk size at body byte {pos}: {data[pos:pos + 20]!r}", "malformed_http")
        size = int(m.group(1), 16)
        if size == 0:
            return bytes(out)
        if eol + 2 + size > len(data):
            raise WarcError(f"chunk of {size} bytes runs past the body's end", "malformed_http")
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
        return _GzipMembers(source), opened
    return source, opened


class _CorruptMember(Exception):
    """A gzip member that does not decompress; reading goes on at the next member."""


class _GzipMembers:
    """The uncompressed bytes of a gzip file of concatenated members (CC: one a record),
    with read(n) and readline(limit). A member that does not decompress raises
    _CorruptMember once; the next read starts at the next gzip header found after it,
    so a damaged record costs that record, not the rest of the file."""

    MAGIC = b"\x1f\x8b\x08"

    def __init__(self, raw, block=1 << 16):
        self.raw, self.block = raw, block
        self.buf = bytearray()      # decompressed, not read yet
        self.tail = b""             # compressed, not decompressed yet
        self.inflate = None         # the current member's decompressor; None between members
        self.ended = False

    def _more(self):
        data = self.raw.read(self.block)
        self.tail += data
        return bool(data)

    def _fill(self):
        """Decompress some more into buf; False at the end of the file."""
        while not self.ended:
            if self.inflate is None:                        # between members
                while len(self.tail) < len(self.MAGIC) and self._more():
                    pass
                if not self.tail.strip(b"\0") and not self._more():
                    self.ended = True                       # the end (zero padding allowed)
                    return False
                if self.tail.startswith(self.MAGIC):
                    self.inflate = zlib.decompressobj(31)
                    continue
                self._resync("bytes that are not a gzip member")
            if not self.tail and not self._more():
                self.ended = True                           # the file ends inside a member
                return False
            try:
                out = self.inflate.decompress(self.tail, self.block * 16)
            except zlib.error as e:
                self._resync(str(e))
            if self.inflate.eof:
                self.tail, self.inflate = self.inflate.unused_data, None
            else:
                self.tail = self.inflate.unconsumed_tail
            if out:
                self.buf += out
                return True
        return False

    def _resync(self, why):
        """Drop compressed bytes up to the next gzip header, then raise _CorruptMember."""
        self.inflate, self.tail = None, self.tail[1:]
        while (i := self.tail.find(self.MAGIC)) < 0:
            self.tail = self.tail[-(len(self.MAGIC) - 1):]
            if not self._more():
                self.tail, self.ended = b"", True
                break
        else:
            self.tail = self.tail[i:]
        raise _CorruptMember(why)

    def read(self, n):
        while len(self.buf) < n and self._fill():
            pass
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def readline(self, limit):
        start = 0
        while (i := self.buf.find(b"\n", start, limit)) < 0 and len(self.buf) < limit:
            start = len(self.buf)
            if not self._fill():
                break
        end = min(limit, len(self.buf)) if i < 0 else i + 1
        out = bytes(self.buf[:end])
        del self.buf[:end]
        return out

    def close(self):
        self.buf, self.tail = bytearray(), b""


def iter_records(source, skip_bad=False, max_record_bytes=MAX_RECORD_BYTES, max_body_bytes=MAX_BODY_BYTES):
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

    Yields WarcRecord objects one at a time; memory is bounded by max_record_bytes (a
    longer block is skipped unread: "oversize"), header lines by MAX_LINE_BYTES.
    A record it cannot read raises WarcError (with the byte offset in the uncompressed
    stream); with skip_bad it is yielded instead, as a WarcRecord with empty content and
    `error` set, and reading goes on at the next line that starts a record (a corrupt gzip
    member: at the next member, reason "corrupt_warc"). A stream that is not a WARC from
    its first line, or a file that cannot be read, always raises.
    """
    stream, opened = _open_stream(source)
    offset, line = 0, None
    where = f"{source}: " if isinstance(source, (str, os.PathLike)) else ""

    def bad(message, reason, version="", headers=None):
        error = WarcError(where + message, reason)
        if not skip_bad:
            raise error
        return WarcRecord(version, headers or Headers(), b"", error=error)

    try:
        while True:
            try:
                if line is None:
                    line = stream.readline(MAX_LINE_BYTES)
                    offset += len(line)
                if not line:
                    return
                version_line, line = line, None
                start = offset - len(version_line)
                if not version_line.strip():
                    continue  # blank lines between records
                if not version_line.startswith(b"WARC/"):
                    if start == 0:
                        raise WarcError(f"{where}not a WARC record at byte 0: {version_line[:40]!r}")
                    yield bad(f"not a WARC record at byte {start}: {version_line[:40]!r}", "malformed_warc")
                    line, offset = _skip_to_record(stream, offset)
                    continue
                version = version_line.strip().decode("latin-1")
                lines, too_long = [], False
                while True:
                    h = stream.readline(MAX_LINE_BYTES)
                    offset += len(h)
                    if not h or not h.strip():
                        break
                    if not h.endswith(b"\n") and len(h) < MAX_LINE_BYTES:
                        yield bad(f"truncated WARC record at byte {offset}: the file ends in its headers",
                                  "truncated_warc", version)
                        return
                    if not h.endswith(b"\n") or len(lines) >= MAX_HEADER_LINES:
                        too_long = True
                        break
                    lines.append(h.rstrip(b"\r\n"))
                headers = _parse_header_lines(lines, "utf-8")
                length = headers.get("Content-Length")
                if too_long or length is None or not _is_decimal(length.strip()):
                    what = "header lines too long or too many" if too_long else "without a valid Content-Length"
                    yield bad(f"WARC record {what} at byte {start}", "malformed_warc", version, headers)
                    line, offset = _skip_to_record(stream, offset)
                    continue
                length = int(length.strip())
                if length > max_record_bytes:
                    skipped = _skip_bytes(stream, length)
                    offset += skipped
                    ends = f"; the file ends after {skipped} of them" if skipped < length else ""
                    yield bad(f"WARC record of {length} bytes at byte {start} (limit {max_record_bytes}){ends}",
                              "oversize", version, headers)
                    if skipped < length:
                        return
                    continue
                content = stream.read(length)
                if len(content) < length:
                    yield bad(f"truncated WARC record at byte {offset}: {len(content)} of {length} bytes",
                              "truncated_warc", version, headers)
                    return
                offset += len(content)
                yield WarcRecord(version, headers, content, max_body_bytes=max_body_bytes)
            except _CorruptMember as e:
                yield bad(f"corrupt gzip member near byte {offset} of the uncompressed stream: {e}",
                          "corrupt_warc")
                line = None
    except (EOFError, zlib.error, OSError) as e:
        raise WarcError(f"{where}cannot read the WARC file near byte {offset}: {e}", "corrupt_warc") from None
    finally:
        if opened is not None:
            stream.close()
            opened.close()


def _skip_to_record(stream, offset):
    """Read on to the next line that starts a record -> (that line or b"" at the end, offset)."""
    while True:
        line = stream.readline(MAX_LINE_BYTES)
        offset += len(line)
        if not line or line.startswith(b"WARC/"):
            return line, offset


def _skip_bytes(stream, n, block=1 << 20):
    """Read and drop n bytes in blocks; returns how many there were."""
    done = 0
    while done < n:
        got = len(stream.read(min(block, n - done)))
        if not got:
            break
        done += got
    return done


# ----------------------------------------------------------------------------- digests


def sha1_base32(data):
    """Digest as WARC/CC write it: "sha1:" + base32 of the SHA-1."""
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")
