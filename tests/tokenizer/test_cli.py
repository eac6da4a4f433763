"""`minillm tokenizer ...` end to end, in-process, on tmp_path."""
import json

import pytest

from minillm.cli import main
from minillm.tokenizer.bpe import Tokenizer

TEXT = " ".join(f"Hello world {i}! The tokenizer learns merges from text number {i * 7}." for i in range(200))
TEXT += "\n東京 café 12345\n"


@pytest.fixture
def trained(tmp_path, capsys):
    src = tmp_path / "corpus.txt"
    src.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run" / "tokenizer.json"
    assert main(["tokenizer", "train", "--input", str(src), "--vocab-size", "300", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and " 33 merges" in printed and "ran out" not in printed
    return out


def test_train_writes_a_loadable_tokenizer(trained):
    tok = Tokenizer.load(trained)
    assert tok.vocab_size == 300 and len(tok.merges) == 300 - 256 - 11


def test_encode_decode_round_trip(trained, tmp_path, capsys):
    assert main(["tokenizer", "encode", "--tokenizer", str(trained), "Hello <|bos|> world"]) == 0
    ids = capsys.readouterr().out.split()
    tok = Tokenizer.load(trained)
    assert [int(i) for i in ids] == tok.encode("Hello <|bos|> world")
    assert main(["tokenizer", "decode", "--tokenizer", str(trained), *ids]) == 0
    assert capsys.readouterr().out == "Hello <|bos|> world\n"
    assert main(["tokenizer", "encode", "--tokenizer", str(trained), "--allowed-special", "all",
                 "--out", str(tmp_path / "ids.txt"), "<|bos|>Hi"]) == 0
    expected = [tok.bos_id] + tok.encode("Hi")
    assert f"wrote {len(expected)} ids to {tmp_path / 'ids.txt'}" in capsys.readouterr().out
    assert (tmp_path / "ids.txt").read_text().split() == [str(i) for i in expected]


def test_errors_are_one_line_exit_2(trained, tmp_path, capsys):
    assert main(["tokenizer", "encode", "--tokenizer", str(trained), "--strict", "a <|bos|>"]) == 2
    assert main(["tokenizer", "decode", "--tokenizer", str(trained), "1", "99999"]) == 2
    assert main(["tokenizer", "show", "--tokenizer", str(tmp_path / "none.json"), "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("minillm: error:") for line in err)
    assert "disallowed" in err[0] and "out of range" in err[1] and "tokenizer train" in err[2]


def test_show_demo_and_colours(trained, capsys):
    assert main(["tokenizer", "show", "--tokenizer", str(trained), "--demo", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "[<|assistant_start|>]" in out          # the allowed control token, one bracket
    out = out.replace("[", "").replace("]", "")
    for needle in ("straw", "9.11", "12345", "<d0><9f>", "def", "<|assistant_start|>"):
        assert needle in out   # "П" is two byte tokens here: <d0><9f>
    assert main(["tokenizer", "show", "--tokenizer", str(trained), "Hello world"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[48;5;" in out and "ids: [" in out


def test_stats_and_export(trained, tmp_path, capsys):
    src = tmp_path / "corpus.txt"
    assert main(["tokenizer", "stats", "--tokenizer", str(trained.parent), str(src)]) == 0
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if "corpus.txt" in line][0].split()
    tok = Tokenizer.load(trained)
    assert int(row[2].replace(",", "")) == len(tok.encode(TEXT))
    for fmt, name in (("hf", "tokenizer.json"), ("tiktoken", "t.tiktoken")):
        dest = tmp_path / "export" / name
        assert main(["tokenizer", "export", "--tokenizer", str(trained), "--format", fmt, "--out", str(dest)]) == 0
        assert f"to {dest}" in capsys.readouterr().out
    assert json.loads((tmp_path / "export" / "tokenizer.json").read_text())["model"]["type"] == "BPE"
