"""WARC writer (minillm/internet/warc_writer.py): round trips through the reader, one gzip
member a record, determinism, atomic files."""
import io
import zlib

import pytest

from minillm.internet.warc import iter_records, sha1_base32
from minillm.internet.warc_writer import WarcWriter


def list_records(source):
    return list(iter_records(source))


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
