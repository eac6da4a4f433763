"""WARC reader/writer: real Common Crawl files, round trips, digests, charsets, errors."""
import gzip
import io
import zlib

import pytest

from minillm.common import UserError
from minillm.internet.warc import Headers, WarcWriter, detect_charset, iter_records, normalize_charset, sha1_base32

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


def _write_sample(target, seed="s"):
    with WarcWriter(target, seed=seed) as w:
        # subtle: every record gets a date; one left out is "now", and two files written
        # either side of a second boundary would differ
        w.write_warcinfo({"software": "minillm test", "format": "WARC File Format 1.1"}, filename="x.warc.gz",
                         date="2024-01-02T03:04:00Z")
        req = w.write_request("https://example.org/a/b?c=1", date="2024-01-02T03:04:05Z")
        body = "<html><head><meta charset=\"iso-8859-1\"></head><body>Café crème</body></html>".encode("latin-1")
        resp = w.write_response("https://example.org/a/b?c=1", body,
                                [("Content-Type", "text/html; charset=ISO-8859-1")],
                                date="2024-01-02T03:04:05Z", concurrent_to=req, ip="10.0.0.1")
        w.write_metadata("https://example.org/a/b?c=1", {"languages-cld2": '{"languages":[{"code":"fr","text-covered":0.97}]}'},
                         date="2024-01-02T03:04:05Z", concurrent_to=resp)
    return body


def test_writer_round_trip(tmp_path):
    path = tmp_path / "t.warc.gz"
    body = _write_sample(path)
    recs = list_records(path)
    assert [r.type for r in recs] == ["warcinfo", "request", "response", "metadata"]
    assert all(r.version == "WARC/1.1" for r in recs)
    info, req, resp, meta = recs
    assert info.headers["WARC-Filename"] == "x.warc.gz" and info.fields["software"] == "minillm test"
    assert req.headers["WARC-Warcinfo-ID"] == info.record_id
    assert req.http_method == "GET" and req.http_headers["Host"] == "example.org"
    assert resp.headers["WARC-Concurrent-To"] == req.record_id
    assert resp.http_body == body and resp.http_status == 200
    assert resp.http_headers["content-length"] == str(len(body))
    assert resp.charset == "cp1252" and resp.text().endswith("Café crème</body></html>")
    assert resp.headers["WARC-Payload-Digest"] == sha1_base32(body)
    assert resp.headers["WARC-Block-Digest"] == sha1_base32(resp.content)
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    assert resp.date == "2024-01-02T03:04:05Z" and resp.headers["WARC-IP-Address"] == "10.0.0.1"
    assert resp.headers["WARC-Identified-Payload-Type"] == "text/html"
    assert meta.cld2_languages() == [("fr", 0.97)]
    assert all(r.record_id.startswith("<urn:uuid:") and r.record_id.endswith(">") for r in recs)
    assert len({r.record_id for r in recs}) == 4


def test_writer_gzips_each_record_as_its_own_member(tmp_path):
    path = tmp_path / "t.warc.gz"
    _write_sample(path)
    data, members = path.read_bytes(), 0
    while data:
        d = zlib.decompressobj(31)
        rec = d.decompress(data)
        assert rec.startswith(b"WARC/1.1\r\n") and rec.endswith(b"\r\n\r\n")
        data, members = d.unused_data, members + 1
    assert members == 4


def test_writer_is_deterministic_with_a_seed_and_dates(tmp_path):
    _write_sample(tmp_path / "a.warc.gz", seed="x")
    _write_sample(tmp_path / "b.warc.gz", seed="x")
    _write_sample(tmp_path / "c.warc.gz", seed="y")
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.warc.gz", "b.warc.gz", "c.warc.gz"))
    assert a == b and a != c


def test_writer_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "t.warc.gz"
    with pytest.raises(ValueError):
        with WarcWriter(path, seed=0) as w:
            w.write_request("http://x.org/")
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_uncompressed_to_file_object():
    buf = io.BytesIO()
    w = WarcWriter(buf, seed=1, compress=False)
    w.write_response("http://x.org/", b"hello", {"Content-Type": "text/plain"})
    assert buf.getvalue().startswith(b"WARC/1.1\r\nWARC-Type: response\r\n")
    (rec,) = list_records(io.BytesIO(buf.getvalue()))
    assert rec.http_body == b"hello" and rec.text() == "hello"


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
