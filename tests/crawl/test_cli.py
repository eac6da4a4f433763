"""`minillm crawl` (minillm/crawl/cli.py) on a hand-made world: World is replaced by a
stand-in whose load/build return a FakeWorld, so the command's own work is what runs."""
import argparse

import pytest

from minillm.common import UserError
from minillm.crawl import cli

from fake_world import FakeWorld


class _FakeWorldClass:
    load = staticmethod(lambda folder: FakeWorld(40))
    build = staticmethod(lambda seed, size: FakeWorld(40, seed))


def _args(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_run_with_a_fake_world(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "World", _FakeWorldClass)
    (tmp_path / "w").mkdir()
    cli.run(_args("--world", str(tmp_path / "w"), "--out", str(tmp_path / "c"), "--shards", "2",
                  "--no-progress"))
    out = capsys.readouterr().out
    assert "crawl-*.warc.gz" in out and str(tmp_path / "c") in out
    assert (tmp_path / "c" / "crawl.json").exists()
    with pytest.raises(UserError, match="no world at"):
        cli.run(_args("--world", str(tmp_path / "nope"), "--out", str(tmp_path / "c")))
    with pytest.raises(UserError, match="--shards must be at least 1"):
        cli.run(_args("--shards", "0"))


def test_cli_builds_a_world_in_memory(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "World", _FakeWorldClass)
    cli.run(_args("--world-size", "smoke", "--out", str(tmp_path / "c"), "--shards", "1", "--no-progress"))
    assert "from world built (smoke)" in capsys.readouterr().out


def test_a_url_filter_that_is_not_a_list_directory_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "World", _FakeWorldClass)
    with pytest.raises(UserError, match="--url-filter .*nope: no such directory"):
        cli.run(_args("--world-size", "smoke", "--out", str(tmp_path / "crawl"), "--url-filter", str(tmp_path / "nope")))
    with pytest.raises(UserError, match="missing banned_words.txt"):
        cli.run(_args("--world-size", "smoke", "--out", str(tmp_path / "crawl"), "--url-filter", str(tmp_path)))
    assert not (tmp_path / "crawl").exists()


def test_a_damaged_plan_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "World", _FakeWorldClass)
    (tmp_path / "w").mkdir()
    argv = ("--world", str(tmp_path / "w"), "--out", str(tmp_path / "c"), "--shards", "2", "--no-progress")
    cli.run(_args(*argv))
    (tmp_path / "c" / "plan.json").write_text('{"version": ')
    with pytest.raises(UserError, match="plan.json is not valid JSON"):
        cli.run(_args(*argv))
    (tmp_path / "c" / "plan.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not a crawl plan"):
        cli.run(_args(*argv))
