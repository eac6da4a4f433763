"""WARC reader (minillm/internet/warc.py): real Common Crawl files, digests, charsets, errors."""
import gzip
import io

import pytest

from minillm.common import UserError
from minillm.internet.warc import Headers, detect_charset, iter_records, normalize_charset, sha1_base32
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
