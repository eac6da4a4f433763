"""download.py against a local HTTP server on 127.0.0.1 (no external network).

The server serves the shared real-data folder (the `shared_data` fixture) and can
misbehave on purpose: cut the first transfer off after K bytes, ignore Range headers, or
fail with 503 a few times.
"""
import argparse
import hashlib
import http.server
import threading

import pytest

from minillm.common import UserError
from minillm.internet import cli, filters
from minillm.internet import download as dl

FILE = "text/tinyshakespeare.txt"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        if srv.fail_first > 0:
            srv.fail_first -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = srv.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = srv.override.get(self.path, None) or path.read_bytes()
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and srv.support_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if srv.cut_after is not None:
            cut, srv.cut_after = srv.cut_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(shared_data):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.root, srv.requests, srv.override = shared_data, [], {}
    srv.cut_after, srv.support_range, srv.fail_first = None, True, 0
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _get(server, dest, sha=None, **kw):
    kw.setdefault("backoff", 0.0)
    return dl.download(f"{server.url}/{FILE}", dest, sha, progress=False, log=lambda *a: None, **kw)


def test_plain_download_verifies_and_renames(server, shared_data, tmp_path):
    src = shared_data / FILE
    out = _get(server, tmp_path / "a.txt", dl.CATALOGUE["tinyshakespeare"].sha256)
    assert out.read_bytes() == src.read_bytes()
    assert not (tmp_path / "a.txt.part").exists()
    assert [r["range"] for r in server.requests] == [None]


def test_cut_off_transfer_resumes_with_range(server, shared_data, tmp_path):
    server.cut_after = 300_000
    out = _get(server, tmp_path / "a.txt", _sha(shared_data / FILE))
    assert out.read_bytes() == (shared_data / FILE).read_bytes()
    assert [r["range"] for r in server.requests] == [None, "bytes=300000-"]


def test_partial_file_from_an_earlier_run_is_resumed(server, shared_data, tmp_path):
    data = (shared_data / FILE).read_bytes()
    (tmp_path / "a.txt.part").write_bytes(data[:123_457])
    out = _get(server, tmp_path / "a.txt", _sha(shared_data / FILE))
    assert out.read_bytes() == data
    assert [r["range"] for r in server.requests] == ["bytes=123457-"]


def test_server_without_range_support_restarts_from_scratch(server, shared_data, tmp_path):
    server.cut_after, server.support_range = 200_000, False
    out = _get(server, tmp_path / "a.txt", _sha(shared_data / FILE))
    assert out.read_bytes() == (shared_data / FILE).read_bytes()  # not a doubled prefix
    assert [r["range"] for r in server.requests] == [None, "bytes=200000-"]


def test_complete_part_file_gets_416_and_finishes(server, shared_data, tmp_path):
    data = (shared_data / FILE).read_bytes()
    (tmp_path / "a.txt.part").write_bytes(data)
    out = _get(server, tmp_path / "a.txt", _sha(shared_data / FILE))
    assert out.read_bytes() == data and len(server.requests) == 1


def test_checksum_mismatch_is_reported_and_leaves_nothing(server, tmp_path):
    with pytest.raises(UserError, match="checksum mismatch.*deleted"):
        _get(server, tmp_path / "a.txt", "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_corrupted_resume_is_caught_by_the_checksum(server, shared_data, tmp_path):
    (tmp_path / "a.txt.part").write_bytes(b"X" * 1000)  # a stale .part of some other file
    with pytest.raises(UserError, match="checksum mismatch"):
        _get(server, tmp_path / "a.txt", _sha(shared_data / FILE))
    assert list(tmp_path.iterdir()) == []


def test_transient_errors_are_retried_then_give_up(server, shared_data, tmp_path):
    server.fail_first = 2
    out = _get(server, tmp_path / "a.txt", retries=3)
    assert out.read_bytes() == (shared_data / FILE).read_bytes() and len(server.requests) == 3
    server.fail_first, server.requests[:] = 10, []
    with pytest.raises(UserError, match="failed 3 times in a row"):
        _get(server, tmp_path / "b.txt", retries=3)
    assert len(server.requests) == 3 and not (tmp_path / "b.txt").exists()


def test_backoff_doubles(server, tmp_path, monkeypatch):
    sleeps = []
    monkeypatch.setattr(dl.time, "sleep", sleeps.append)
    server.fail_first = 3
    _get(server, tmp_path / "a.txt", retries=5, backoff=0.5)
    assert sleeps == [0.5, 1.0, 2.0]


def test_http_404_is_not_retried(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404"):
        dl.download(f"{server.url}/nope.txt", tmp_path / "x", progress=False, backoff=0.0)
    assert len(server.requests) == 1 and list(tmp_path.iterdir()) == []


def test_existing_file_is_checked_not_refetched(server, shared_data, tmp_path):
    (tmp_path / "a.txt").write_bytes(b"other")
    with pytest.raises(UserError, match="exists but its sha256"):
        _get(server, tmp_path / "a.txt", _sha(shared_data / FILE))
    assert _get(server, tmp_path / "a.txt") == tmp_path / "a.txt"
    assert server.requests == []


def test_unknown_checksum_is_printed(server, shared_data, tmp_path):
    lines = []
    dl.download(f"{server.url}/{FILE}", tmp_path / "a.txt", progress=False, log=lines.append)
    assert _sha(shared_data / FILE) in lines[-1]


def test_catalogue_and_resolve(shared_data):
    assert dl.CATALOGUE["tinyshakespeare"].sha256 == _sha(shared_data / FILE)
    assert dl.CATALOGUE["tinyshakespeare"].size == (shared_data / FILE).stat().st_size
    for src in dl.CATALOGUE.values():
        assert src.url.startswith("https://") and (src.sha256 is None or len(src.sha256) == 64)
    assert dl.resolve("tinyshakespeare")[2] == "input.txt"
    assert dl.resolve("https://h.org/a/b%20c.txt?x=1") == ("https://h.org/a/b%20c.txt?x=1", None, "b c.txt")
    with pytest.raises(UserError, match="unknown source"):
        dl.resolve("no-such-corpus")


def _download_args(*argv):
    parser = argparse.ArgumentParser()
    cli.add_download_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_run(server, shared_data, tmp_path, capsys):
    argv = [f"{server.url}/{FILE}", "--out", str(tmp_path), "--retries", "2", "--timeout", "5"]
    cli.run_download(_download_args(*argv, "--sha256", _sha(shared_data / FILE)))
    assert (tmp_path / "tinyshakespeare.txt").read_bytes() == (shared_data / FILE).read_bytes()
    assert str(tmp_path / "tinyshakespeare.txt") in capsys.readouterr().out
    with pytest.raises(UserError, match="64 hex digits"):
        cli.run_download(_download_args(*argv, "--sha256", "abc"))


def test_fineweb_url_lists_download_as_one_directory(server, shared_data, tmp_path, capsys, monkeypatch):
    """The catalogue's checksums are those of FineWeb's published lists (the copies under
    shared data); the group lands in one directory that --url-filter accepts."""
    members = dl.GROUPS["fineweb-url-filter"]
    for name in members:
        src = dl.CATALOGUE[name]
        local = shared_data / "url-filter" / src.url.rsplit("/", 1)[1]
        assert src.sha256 == _sha(local) and src.size == local.stat().st_size
        monkeypatch.setitem(dl.CATALOGUE, name, dl.Source(f"{server.url}/url-filter/{local.name}",
                                                          src.sha256, src.size, src.note))
    out = tmp_path / "lists"
    cli.run_download(_download_args("fineweb-url-filter", "--out", str(out), "--retries", "1"))
    printed = capsys.readouterr().out
    assert f"--url-filter {out}" in printed
    assert sorted(p.name for p in out.iterdir()) == [".minillm.json", "banned_subwords.txt", "banned_words.txt",
                                                     "soft_banned_words.txt"]
    lists = filters.load_url_lists(out)
    assert lists.source == str(out) and len(lists.banned_words) > 100
    with pytest.raises(UserError, match="its own checksum|their own checksums"):
        cli.run_download(_download_args("fineweb-url-filter", "--sha256", "0" * 64))
    cli.run_download(_download_args("--list"))
    assert "fineweb-url-filter" in capsys.readouterr().out
