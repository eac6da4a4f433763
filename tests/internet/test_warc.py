"""WARC reader (minillm/internet/warc.py): real Common Crawl files, digests, charsets, errors."""
import gzip
import io

import pytest

from minillm.common import UserError
from minillm.internet.warc import (
    Headers, WarcError, WarcRecord, _dechunk, detect_charset, iter_records, normalize_charset, sha1_base32)
from minillm.internet.warc_writer import WarcWriter

EXCERPT = "crawl/cc-segment-excerpt.warc.gz"


def list_records(source):
    return list(iter_records(source))


def test_cc_excerpt_records_and_types(shared_data):
    records = list_records(shared_data / EXCERPT)
    types = [r.type for r in records]
    assert len(records) == 50
    assert types[0] == "warcinfo"
    assert (types.count("request"), types.count("response"), types.count("metadata")) == (17, 16, 16)
    assert all(r.version == "WARC/1.0" for r in records)
    info = records[0].fields
    assert info["isPartOf"] == "CC-MAIN-2020-34" and info["format"] == "WARC File Format 1.1"


def test_cc_excerpt_digests_match_what_common_crawl_stored(shared_data):
    for r in iter_records(shared_data / EXCERPT):
        if "WARC-Block-Digest" in r.headers:
            assert sha1_base32(r.content) == r.headers["WARC-Block-Digest"], r.url
        if r.type == "response":
            assert sha1_base32(r.http_body) == r.headers["WARC-Payload-Digest"], r.url


def test_cc_excerpt_charsets_agree_with_cc_detection_and_languages(shared_data):
    records = list_records(shared_data / EXCERPT)
    meta = {r.headers["WARC-Concurrent-To"]: r for r in records if r.type == "metadata"}
    seen_charsets, seen_langs = set(), set()
    for r in records:
        if r.type != "response":
            continue
        m = meta[r.record_id]
        assert m.url == r.url
        assert r.charset == normalize_charset(m.fields["charset-detected"]), r.url
        assert r.http_status == 200 and r.http_reason == "OK"
        text = r.text()
        assert "\ufffd" not in text[:2000], r.url  # decoded with the right codec
        seen_charsets.add(r.charset)
        seen_langs.add(m.cld2_languages()[0][0])
    assert {"gbk", "utf-8", "cp1251", "cp1252"} <= seen_charsets
    assert {"zh", "ru", "de", "nl"} <= seen_langs
    gbk = next(r for r in records if r.url == "http://041696.com/15477/list_6_4.html" and r.type == "response")
    assert gbk.http_headers["content-type"] == "text/html" and gbk.charset == "gbk"


def test_cc_excerpt_request_records(shared_data):
    req = next(r for r in iter_records(shared_data / EXCERPT) if r.type == "request")
    assert req.http_method == "GET" and req.http_status is None
    assert req.http_headers["host"] == "003338.cn"
    assert req.http_body == b""


def test_whirlwind_warc_and_wet(shared_data):
    recs = list_records(shared_data / "crawl/whirlwind.warc.gz")
    assert [r.type for r in recs] == ["warcinfo", "request", "response", "metadata"]
    for r in recs:  # every record carries a block digest here
        assert sha1_base32(r.content) == r.headers["WARC-Block-Digest"]
    resp, meta = recs[2], recs[3]
    assert resp.url == "https://an.wikipedia.org/wiki/Escopete"
    assert resp.charset == "utf-8" and "<html" in resp.text()[:500].lower()
    assert meta.cld2_languages() == [("es", 0.69)]
    wet = list_records(shared_data / "crawl/whirlwind.warc.wet.gz")
    conv = [r for r in wet if r.type == "conversion"]
    assert len(conv) == 1 and conv[0].url == resp.url
    assert conv[0].headers["WARC-Refers-To"] == resp.record_id
    assert conv[0].text().startswith("Escopete - Biquipedia")


def test_plain_uncompressed_and_file_objects(shared_data):
    raw = gzip.open(shared_data / EXCERPT).read()
    from_bytes = list_records(io.BytesIO(raw))
    with open(shared_data / EXCERPT, "rb") as f:
        from_gz_file = list_records(f)
    assert [r.record_id for r in from_bytes] == [r.record_id for r in from_gz_file]
    assert len(from_bytes) == 50


def test_headers_case_insensitive_and_continuations():
    h = Headers([("Content-Type", "text/html"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")])
    assert h["content-type"] == "text/html" and "CONTENT-TYPE" in h
    assert h.get_all("SET-COOKIE") == ["a=1", "b=2"] and h.get("x") is None
    with pytest.raises(KeyError):
        h["missing"]
    raw = b"WARC/1.0\r\nWARC-Type: resource\r\nX-Long: one\r\n  two\r\nContent-Length: 3\r\n\r\nabc\r\n\r\n"
    (rec,) = list_records(io.BytesIO(raw))
    assert rec.headers["x-long"] == "one two" and rec.content == b"abc" and not rec.is_http


@pytest.mark.parametrize("body,ctype,expected", [
    (b"<meta charset='gb2312'>\xc4\xe3\xba\xc3", None, "gbk"),
    (b"<meta http-equiv='Content-Type' content='text/html; charset=windows-1251'>", None, "cp1251"),
    (b"<meta charset=utf-8>", "text/html; charset=ISO-8859-1", "cp1252"),  # HTTP header wins
    (b"\xef\xbb\xbf<meta charset=latin1>", "text/html; charset=gbk", "utf-8"),  # BOM wins
    ("naïve".encode("utf-8"), None, "utf-8"),
    ("naïve".encode("latin-1"), None, "cp1252"),
    (b"<meta charset=bogus-charset>", "text/html; charset=nonsense", "utf-8"),
])
def test_detect_charset(body, ctype, expected):
    assert detect_charset(body, ctype) == expected


def test_http_chunked_and_gzip_bodies():
    body = gzip.compress(b"hello world", mtime=0)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    block = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n" + chunked
    buf = io.BytesIO()
    WarcWriter(buf, compress=False).write_record("response", block, content_type="application/http; msgtype=response")
    (rec,) = list_records(io.BytesIO(buf.getvalue()))
    assert rec.http_status == 404 and rec.http_reason == "Not Found" and rec.http_body == b"hello world"


def test_malformed_inputs_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        list_records(tmp_path / "missing.warc.gz")
    with pytest.raises(UserError, match="not a WARC record"):
        list_records(io.BytesIO(b"HTTP/1.1 200 OK\r\n\r\n"))
    with pytest.raises(UserError, match="Content-Length"):
        list_records(io.BytesIO(b"WARC/1.0\r\nWARC-Type: resource\r\n\r\nabc"))
    with pytest.raises(UserError, match="truncated"):
        list_records(io.BytesIO(b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: 10\r\n\r\nabc"))
    good = gzip.compress(b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: 3\r\n\r\nabc\r\n\r\n")
    with pytest.raises(UserError, match="corrupt|truncated"):
        list_records(io.BytesIO(good + good[: len(good) // 2]))


# ----------------------------------------------------------------------------- hostile input

def warc_bytes(*blocks, record_type="response"):
    """A plain (uncompressed) WARC file of `blocks`, each an HTTP response (or raw block)."""
    buf = io.BytesIO()
    writer = WarcWriter(buf, compress=False)
    for block in blocks:
        writer.write_record(record_type, block, content_type="application/http; msgtype=response",
                            url="https://example.org/")
    return buf.getvalue()


def response(body, headers=b"Content-Type: text/html"):
    return b"HTTP/1.1 200 OK\r\n" + headers + b"\r\n\r\n" + body


@pytest.mark.parametrize("chunked", [
    b"-5\r\nhello\r\n0\r\n\r\n",          # negative size: once an endless loop growing to ~1 GB
    b"-0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n", b"5\r\nhel",     # sign, 0x prefix, short chunk
    b"zz\r\nhello\r\n0\r\n\r\n", b"5", b"", b"5\r\nhello\r\n",   # not hex, no CRLF, no last chunk
    b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n", b"1" * 100 + b"\r\nx\r\n",
])
def test_malformed_chunk_sizes_stop_with_malformed_http(chunked):
    rec = list_records(io.BytesIO(warc_bytes(response(chunked, b"Transfer-Encoding: chunked"))))[0]
    with pytest.raises(WarcError, match="chunk") as e:
        rec.http_body
    assert e.value.reason == "malformed_http" and isinstance(e.value, UserError)


def test_well_formed_chunks_with_extensions_still_decode():
    assert _dechunk(b"5;name=x\r\nhello\r\n1 \r\n!\r\n0\r\n\r\n") == b"hello!"
    assert _dechunk(b"0\r\n\r\n") == b""


@pytest.mark.parametrize("label", ["base64", "hex", "rot13", "zlib", "undefined", "idna", "punycode",
                                   "bz2", "uu", "quopri", "uu_codec"])
def test_only_text_encodings_are_charsets(label):
    assert normalize_charset(label) is None
    body = "<p>café</p>".encode("utf-8")
    for headers, page in ((f"Content-Type: text/html; charset={label}".encode(), body),
                          (b"Content-Type: text/html", f"<meta charset={label}>".encode() + body)):
        rec = list_records(io.BytesIO(warc_bytes(response(page, headers))))[0]
        assert rec.charset == "utf-8" and rec.text().endswith("<p>café</p>")   # as if no label


@pytest.mark.parametrize("label,codec", [("utf-8", "utf-8"), ("UTF8", "utf-8"), ("windows-1251", "cp1251"),
                                         ("shift_jis", "shift_jis"), ("utf-16", "utf-16"), ("latin1", "cp1252")])
def test_real_charsets_still_accepted(label, codec):
    assert normalize_charset(label) == codec


def test_a_codec_failing_anyway_is_bad_charset(monkeypatch):
    rec = list_records(io.BytesIO(warc_bytes(response(b"<p>x</p>"))))[0]
    monkeypatch.setattr(WarcRecord, "charset", property(lambda self: "idna"))
    with pytest.raises(WarcError) as e:
        rec.text()
    assert e.value.reason == "bad_charset"


def test_huge_content_length_is_skipped_unread_as_oversize():
    head = b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 99999999999\r\n\r\n"
    data = head + b"x" * 1000
    with pytest.raises(WarcError, match="99999999999 bytes") as e:
        list_records(io.BytesIO(data))
    assert e.value.reason == "oversize"
    (rec,) = list(iter_records(io.BytesIO(data), skip_bad=True))
    assert rec.error.reason == "oversize" and rec.content == b"" and rec.type == "response"


def test_oversize_record_costs_that_record_only():
    big, small = response(b"x" * 5000), response(b"<p>ok</p>")
    recs = list(iter_records(io.BytesIO(warc_bytes(big, small)), skip_bad=True, max_record_bytes=1000))
    assert [r.error and r.error.reason for r in recs] == ["oversize", None]
    assert recs[1].text() == "<p>ok</p>"


def test_gzip_bomb_body_is_oversize():
    bomb = gzip.compress(b"\0" * (1 << 20), mtime=0)
    rec = next(iter_records(io.BytesIO(warc_bytes(response(bomb, b"Content-Encoding: gzip"))),
                            max_body_bytes=1 << 16))
    with pytest.raises(WarcError, match="inflates") as e:
        rec.http_body
    assert e.value.reason == "oversize"
    ok = next(iter_records(io.BytesIO(warc_bytes(response(bomb, b"Content-Encoding: gzip")))))
    assert ok.http_body == b"\0" * (1 << 20)


def test_bad_framing_costs_one_record_and_reading_resyncs():
    good = warc_bytes(response(b"<p>one</p>"))
    no_length = b"WARC/1.0\r\nWARC-Type: response\r\n\r\ngarbage\r\nmore garbage\r\n"
    huge_line = b"WARC/1.0\r\nX: " + b"y" * (70 << 10) + b"\r\n\r\n"
    data = good + no_length + good + b"junk line\r\n" + good + huge_line + good
    recs = list(iter_records(io.BytesIO(data), skip_bad=True))
    assert [r.error.reason if r.error else r.text() for r in recs] == [
        "<p>one</p>", "malformed_warc", "<p>one</p>", "malformed_warc", "<p>one</p>", "malformed_warc",
        "<p>one</p>"]
    with pytest.raises(WarcError, match="Content-Length"):
        list_records(io.BytesIO(data))


def test_a_corrupt_gzip_member_costs_that_record():
    members = [gzip.compress(warc_bytes(response(b"<p>%d</p>" % i)), mtime=0) for i in range(3)]
    broken = bytearray(members[1])
    broken[len(broken) // 2] ^= 0xFF
    recs = list(iter_records(io.BytesIO(members[0] + bytes(broken) + members[2]), skip_bad=True))
    assert [r.error.reason if r.error else r.text() for r in recs] == ["<p>0</p>", "corrupt_warc", "<p>2</p>"]
    with pytest.raises(WarcError, match="corrupt gzip member"):
        list_records(io.BytesIO(members[0] + bytes(broken) + members[2]))


def test_odd_status_lines_and_cld2_fields_do_not_raise():
    rec = list_records(io.BytesIO(warc_bytes(b"HTTP/1.1 \xb2\xb2\xb2 OK\r\n\r\nx")))[0]
    assert rec.http_status is None
    for raw in ("[1, 2]", '{"languages": [{"x": 1}]}', '{"languages": 3}', "[[[", '{"languages": [{"code": "en", '
                '"text-covered": "lots"}]}'):
        meta = WarcRecord("WARC/1.0", Headers([("WARC-Type", "metadata")]), b"languages-cld2: " + raw.encode())
        assert meta.cld2_languages() == []


@pytest.mark.slow
def test_fuzz_the_reader_over_mutated_cc_warcs(shared_data):
    """Seeded mutations of the shared CC WARC samples (bit flips, byte runs, truncations,
    header edits), read in both modes: only WarcError may escape, and no record may take a
    second (reading it and every parsed property)."""
    import random
    import time
    samples = sorted((shared_data / "crawl").glob("*.warc.gz"))
    assert samples
    rng = random.Random(13)
    originals = {p.name: (p.read_bytes(), gzip.decompress(p.read_bytes())) for p in samples}
    edits = [(b"Content-Length: ", b"Content-Length: 99999999999"), (b"Content-Length: ", b"Content-Length: -"),
             (b"charset=", b"charset=base64;x="), (b"charset=", b"charset=idna;x="),
             (b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n"),
             (b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n"), (b"HTTP/1.1 200", b"HTTP/1.1 \xb2\xb2"),
             (b"WARC/1.0", b"WARC/9"), (b"\r\n", b"\n"), (b"\r\n", b"")]
    n_files = 0
    for round_ in range(240):
        name = rng.choice(sorted(originals))
        packed, plain = originals[name]
        kind = rng.choice(["flip", "run", "truncate", "edit", "edit_plain"])
        if kind == "edit_plain":
            data = bytearray(plain)
        else:
            data = bytearray(packed)
        if kind == "flip":
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == "run":
            at = rng.randrange(len(data))
            data[at:at + rng.randint(1, 300)] = bytes([rng.randrange(256)]) * rng.randint(1, 300)
        elif kind == "truncate":
            del data[rng.randrange(len(data)):]
        else:
            if kind == "edit":
                data = bytearray(plain)
            for _ in range(rng.randint(1, 8)):
                old, new = rng.choice(edits)
                at = data.find(old, rng.randrange(len(data)))
                if at >= 0:
                    data[at:at + len(old)] = new
            if kind == "edit":   # per-record gzip again where the record boundaries survive
                data = bytearray(b"".join(gzip.compress(b"WARC/" + part, mtime=0)
                                          for part in bytes(data).split(b"WARC/") if part))
        for skip_bad in (True, False):
            n_files += 1
            try:
                records = iter_records(io.BytesIO(bytes(data)), skip_bad=skip_bad)
                while True:
                    t0 = time.perf_counter()
                    rec = next(records, None)
                    if rec is None:
                        break
                    try:
                        _ = (rec.type, rec.url, rec.http_status, rec.http_method, rec.http_headers, rec.charset,
                             rec.text(), rec.fields, rec.cld2_languages())
                    except WarcError:
                        pass
                    took = time.perf_counter() - t0
                    assert took < 1.0, f"round {round_} ({name}, {kind}): a record took {took:.1f}s"
            except WarcError:
                pass
    assert n_files == 480


def test_wget_angle_brackets_and_errors_name_the_file(tmp_path):
    buf = io.BytesIO()
    WarcWriter(buf, compress=False).write_record("resource", b"abc", content_type="text/plain",
                                                 url="<https://example.org/a>")
    rec = list_records(io.BytesIO(buf.getvalue()))[0]
    assert rec.url == "https://example.org/a"
    path = tmp_path / "cut.warc"
    path.write_bytes(buf.getvalue()[:-10])
    with pytest.raises(UserError, match=f"{path}: truncated"):
        list_records(path)
    assert [r.error.reason for r in iter_records(path, skip_bad=True)] == ["truncated_warc"]
