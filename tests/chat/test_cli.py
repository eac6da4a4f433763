"""cli.py: `minillm chat render` (text and --json) and `minillm chat search`, driven through
add_arguments / run as minillm/cli.py does."""
import argparse
import gzip
import json

import pytest

from minillm.chat import cli
from minillm.chat.template import render
from minillm.common import UserError

CONVS = [{"kind": "calc", "messages": [
             {"role": "system", "content": "Be brief."}, {"role": "user", "content": "17*23? <|assistant_start|>"},
             {"role": "assistant", "content": [{"type": "python", "text": "17*23"}, {"type": "output", "text": "391"},
                                               {"type": "text", "text": "It is 391."}]}]},
         [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am minillm's assistant."},
          {"role": "user", "content": "Thanks!"}, {"role": "assistant", "content": "You are welcome."}]]


def chat(*argv):
    parser = argparse.ArgumentParser(prog="minillm chat")
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([str(a) for a in argv]))


@pytest.fixture
def files(tmp_path, tok):
    path = tmp_path / "convs.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CONVS))
    return path, tok.save(tmp_path / "tokenizer.json")


def test_render_json_gives_ids_mask_and_tokens(files, tok, capsys):
    path, tok_path = files
    chat("render", path, "--tokenizer", tok_path, "--json")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["index"] for r in lines] == [0, 1]
    for record, conv in zip(lines, CONVS):
        ids, mask = render(conv["messages"] if isinstance(conv, dict) else conv, tok)
        assert record["ids"] == ids.tolist() and record["mask"] == mask.tolist()
        assert len(record["tokens"]) == len(ids) and record["tokens"][0] == "<|bos|>"


def test_render_index_and_max_len(files, tok, capsys):
    path, tok_path = files
    first = render(CONVS[1][:2], tok)[0].tolist()                   # the first exchange only
    chat("render", path, "--tokenizer", tok_path, "--json", "--index", 1, "--max-len", len(first) + 2)
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["ids"] == first
    with pytest.raises(UserError, match="--index 5: .* has 2 conversations"):
        chat("render", path, "--tokenizer", tok_path, "--index", 5)
    with pytest.raises(UserError, match="conversation 0: the first exchange has \\d+ tokens, more than max_len 5"):
        chat("render", path, "--tokenizer", tok_path, "--max-len", 5)


def test_render_text_view(files, capsys):
    path, tok_path = files
    chat("render", path, "--tokenizer", tok_path, "--color", "never")
    out = capsys.readouterr().out
    assert "# conversation 0, kind calc: " in out and "# conversation 1: " in out
    assert "{<|python_start|>}" in out and "[<|output_start|>]" in out and "\x1b" not in out
    chat("render", path, "--tokenizer", tok_path, "--color", "always", "--index", 0)
    assert "\x1b[48;5;" in capsys.readouterr().out


def test_render_bad_file_names_file_and_line(files, tmp_path):
    _, tok_path = files
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(CONVS[1]) + "\n" + json.dumps([{"role": "user", "content": "x"},
                                                            {"role": "assistant", "content": [{"type": "output", "text": "1"}]}]) + "\n")
    with pytest.raises(UserError, match=r"bad\.jsonl:2: message 2 part 1: a tool output must directly follow"):
        chat("render", bad, "--tokenizer", tok_path)
    with pytest.raises(UserError, match="tokenizer not found"):
        chat("render", bad, "--tokenizer", tmp_path / "nope.json")


def test_no_action_is_a_user_error():
    with pytest.raises(UserError, match="give an action: render, search"):
        chat()


def test_search_builds_the_index_then_queries_it(tmp_path, capsys):
    clean = tmp_path / "run" / "clean"
    clean.mkdir(parents=True)
    with gzip.open(clean / "s0.jsonl.gz", "wt", encoding="utf-8") as f:
        for i, text in enumerate(["Ostrin is the capital of Velmora.", "The river Dale runs through Kessel."]):
            f.write(json.dumps({"id": str(i), "url": f"http://w/{i}", "text": text}) + "\n")
    chat("search", "--run", tmp_path / "run", "capital", "of", "Velmora")
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'run' / 'chat' / 'search.npz'}" in out
    assert "1. score" in out and "[http://w/0]" in out and "Ostrin is the capital of Velmora." in out
    chat("search", "--run", tmp_path / "run", "Dale", "-k", 1)
    out = capsys.readouterr().out
    assert "wrote" not in out and "The river Dale" in out                    # the saved index is reused
    with pytest.raises(UserError, match="no clean documents"):
        chat("search", "--run", tmp_path, "x")
