"""`minillm download` and `minillm clean` (minillm/internet/cli.py) through the top-level
command line; downloading itself is tested against a local server in test_download.py."""
import json

import pytest

from minillm.cli import main
from minillm.crawl import pages
from minillm.internet.download import CATALOGUE
from minillm.internet.pipeline import read_jsonl_gz
from minillm.pretrain.shards import shard_paths
from minillm.tokenizer.train import train_tokenizer
from minillm.world.world import World

from fake_world import FakeWorld


def test_download_lists_the_catalogue_and_needs_a_source(capsys):
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out and src.url in out for name, src in CATALOGUE.items())
    assert main(["download"]) == 2
    assert "say what to download" in capsys.readouterr().err
    assert main(["download", "ftp://example.org/x"]) == 2
    assert "unknown source" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_crawl(tmp_path_factory):
    crawl = tmp_path_factory.mktemp("crawl")
    pages.crawl(FakeWorld(120), crawl, n_shards=2, seed=0, progress=False)
    return crawl


def test_clean_writes_the_documents_and_the_report(small_crawl, tmp_path, capsys):
    out = tmp_path / "clean"
    assert main(["clean", "--crawl", str(small_crawl), "--out", str(out), "--workers", "1", "--report"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("clean: ") and "[2 shards, 0 resumed]" in text
    assert "quality report:" in text and f"report: {out}/report.json" in text
    report = json.loads((out / "report.json").read_text())
    assert report["truth"] is True and report["filters"]["true_positives"] > 0
    assert sorted(p.name for p in out.glob("*.jsonl.gz")) == ["crawl-00000.jsonl.gz", "crawl-00001.jsonl.gz"]
    assert (out / "funnel.json").exists() and (out / "removed").is_dir()


def test_clean_without_warcs_is_a_one_line_error(tmp_path, capsys):
    assert main(["clean", "--crawl", str(tmp_path), "--out", str(tmp_path / "clean")]) == 2
    assert "no WARC files" in capsys.readouterr().err


def test_clean_writes_token_shards_when_given_a_tokenizer(tmp_path, capsys):
    """The fake world's pages are all filtered out as repetitive; the real smoke world's are not."""
    small_crawl, out, shards = tmp_path / "crawl", tmp_path / "clean", tmp_path / "shards"
    pages.crawl(World.build(seed=0, size="smoke"), small_crawl, n_shards=2, seed=0, progress=False)
    assert main(["clean", "--crawl", str(small_crawl), "--out", str(out), "--workers", "1",
                 "--tokenizer", str(tmp_path / "tok.json")]) == 2
    assert "--tokenizer and --shards go together" in capsys.readouterr().err
    train_tokenizer("The old mill stood near the river. " * 50, 300).save(tmp_path / "tok.json")
    assert main(["clean", "--crawl", str(small_crawl), "--out", str(out), "--workers", "1",
                 "--tokenizer", str(tmp_path / "tok.json"), "--shards", str(shards)]) == 0
    text = capsys.readouterr().out
    n_docs = sum(len(list(read_jsonl_gz(p))) for p in out.glob("*.jsonl.gz"))
    assert f"token shards: {n_docs} documents" in text and f"-> {shards}" in text
    assert n_docs > 0 and list(shard_paths(shards))


@pytest.mark.parametrize("argv,message", [
    (["--url-filter", "nope"], "--url-filter nope: no such directory"),
    (["--max-record-mb", "0"], "--max-record-mb must be a positive number"),
    (["--max-record-mb", "nan"], "--max-record-mb must be a positive number"),
])
def test_clean_flag_mistakes_are_one_line_errors(small_crawl, tmp_path, capsys, argv, message):
    out = tmp_path / "clean"
    assert main(["clean", "--crawl", str(small_crawl), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not out.exists()


def test_a_damaged_work_file_is_one_line(tmp_path, capsys):
    crawl, out = tmp_path / "crawl", tmp_path / "clean"
    pages.crawl(World.build(seed=0, size="smoke"), crawl, n_shards=2, seed=0, progress=False)
    assert main(["clean", "--crawl", str(crawl), "--out", str(out), "--workers", "1"]) == 0
    capsys.readouterr()
    (out / "funnel.json").unlink()                       # pass 2 runs again, pass 1 is done
    (out / "work" / "crawl-00000.keys.npy").write_bytes(b"\x93NUMPY damaged")
    assert main(["clean", "--crawl", str(crawl), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]             # after the progress bars
    assert last.startswith("minillm: error: ") and "crawl-00000.keys.npy is damaged" in last
    assert "Traceback" not in err
