"""`minillm eval` end to end on a tiny random checkpoint in a run directory: the table, the
defaults taken from the run directory, and evals.json.

    python -m pytest tests/evals/test_cli.py
"""
import json

import pytest

from minillm.cli import main
from minillm.nn.checkpoint import save_checkpoint
from minillm.nn.gpt import GPTConfig, init_params
from minillm.pretrain.shards import ShardWriter
from minillm.tokenizer.bpe import Tokenizer
from minillm.world.world import World


@pytest.fixture(scope="module")
def world():
    return World.build(seed=0, size="smoke")


@pytest.fixture(scope="module")
def tok():
    return Tokenizer([], "gpt4")


def tiny_model(tok, context_len=16):
    config = GPTConfig(vocab_size=tok.vocab_size, context_len=context_len, n_layer=1, n_head=2,
                       n_kv_head=2, n_embd=16, hidden_dim=32)
    return config, init_params(config, 0)


def test_eval_command_end_to_end(world, tok, tmp_path, capsys):
    run = tmp_path / "run"
    world.save(run / "world")
    with ShardWriter(run / "shards", tok.vocab_size, tok.bos_id) as w:
        for doc in list(world.iter_documents())[:40]:
            w.add(tok.encode_ordinary(doc.text))
    config, params = tiny_model(tok, context_len=256)
    save_checkpoint(run / "base", config, params, tokenizer=tok, meta={"data": {"source": str(run / "shards")}})
    assert main(["eval", "--ckpt", str(run / "base"), "--limit", "5", "--only", "val_loss,cloze,few_shot"]) == 0
    out = capsys.readouterr().out
    assert "bits per byte" in out and "recall, many" in out and "few-shot birth_city, 3-shot" in out
    saved = json.loads((run / "base" / "evals.json").read_text())
    assert set(saved) == {"val_loss", "cloze", "few_shot"}
    assert saved["cloze"]["buckets"]["many"]["n"] == 5
    # --only one eval again: it is replaced, the others' results stay
    assert main(["eval", "--ckpt", str(run / "base"), "--limit", "5", "--only", "copy,cloze"]) == 0
    assert "copy a repeated random sequence" in capsys.readouterr().out
    again = json.loads((run / "base" / "evals.json").read_text())
    assert set(again) == {"val_loss", "cloze", "few_shot", "copy"} and again["few_shot"] == saved["few_shot"]
    assert 0 <= again["copy"]["copied"] <= 1 and again["copy"]["length"] == 24


@pytest.mark.parametrize("flag", ["--world", "--shards", "--clean"])
def test_a_path_given_but_absent_is_an_error_not_a_skipped_eval(flag, tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["eval", "--ckpt", str(tmp_path / "base"), flag, str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"minillm: error: {flag} {missing} does not exist"
    assert not (tmp_path / "base").exists()


def test_a_world_directory_that_is_not_a_world_is_an_error(tmp_path, capsys):
    assert main(["eval", "--ckpt", str(tmp_path / "base"), "--world", str(tmp_path)]) == 2
    assert "is not a mini-world (no stats.json)" in capsys.readouterr().err
    assert main(["eval", "--ckpt", str(tmp_path / "base"), "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err
