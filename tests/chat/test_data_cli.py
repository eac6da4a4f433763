"""`minillm chat probe` and `minillm chat data` on a tiny run: world, clean corpus, random base model."""
import argparse
import gzip
import json
import re

import pytest

from minillm.chat import cli
from minillm.chat.data import KINDS
from minillm.chat.template import load_conversations
from minillm.common import UserError
from minillm.nn.checkpoint import save_checkpoint
from minillm.nn.gpt import GPTConfig, init_params
from minillm.tokenizer.bpe import Tokenizer
from minillm.world.world import World


def chat(*argv):
    parser = argparse.ArgumentParser(prog="minillm chat")
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([str(a) for a in argv]))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """runs/<tmp>/{world, clean, base}: a smoke world, its English documents as the clean
    corpus, and a tiny random base model with the chat specials."""
    root = tmp_path_factory.mktemp("run")
    world = World.build(seed=0, size="smoke")
    world.save(root / "world")
    (root / "clean").mkdir()
    with gzip.open(root / "clean" / "shard-00000.jsonl.gz", "wt", encoding="utf-8") as f:
        for doc in world.iter_documents():
            if doc.lang == "en":
                f.write(json.dumps({"text": doc.text, "url": f"https://example.org/{doc.id}"}) + "\n")
    tok = Tokenizer([], "gpt4")
    config = GPTConfig(vocab_size=tok.vocab_size, context_len=512, n_layer=1, n_head=2, n_kv_head=2,
                       n_embd=16, hidden_dim=32)
    save_checkpoint(root / "base", config, init_params(config, 0), tokenizer=tok)
    return root


def test_probe_then_data_writes_both_files(run, capsys):
    chat("probe", "--ckpt", run / "base", "-k", "2", "--limit", "4")
    out = capsys.readouterr().out
    probe = run / "chat" / "probe.jsonl"
    assert f"wrote 12 probe records to {probe}" in out and "many" in out
    chat("data", "--run", run, "--size", "120", "--eval-size", "20")
    out = capsys.readouterr().out
    path = run / "chat" / "conversations.jsonl"
    assert f"to {path} (probe {probe})" in out
    assert (run / "chat" / "search.npz").is_file()
    for kind in KINDS:
        assert f"\n{kind}" in out
    # as the speedrun: what the base model's 512-token (byte) context cannot hold is left
    # out, so `minillm sft` reads the file without an over-long exchange
    dropped = int(re.search(r"left out (\d+) conversation", out).group(1))
    records = load_conversations(path, Tokenizer.load(run / "base" / "tokenizer.json"), 513)
    assert 0 < dropped < 20 and len(records) == 140 - dropped
    assert {r["kind"] for r in records} == set(KINDS) - {"search"}      # ~700 bytes of passages
    sizes = [m["content"] for r in records if r.get("category") == "size" for m in r["messages"][1::2]]
    assert any(re.search(r"about \d[\d,]+ parameters", s) for s in sizes)     # counted from base/
    first = path.read_bytes()
    chat("data", "--run", run, "--size", "120", "--eval-size", "20")       # the saved index this time
    assert path.read_bytes() == first


def test_ablation_flags(run, capsys, tmp_path):
    out_file = tmp_path / "no_identity.jsonl"
    chat("data", "--run", run, "--size", "80", "--eval-size", "10", "--without", "identity",
         "--think-formats", "answer_first", "--out", out_file)
    records = load_conversations(out_file)
    assert not any(r["kind"] == "identity" for r in records)
    assert {r["format"] for r in records if r["kind"] == "think"} == {"answer_first"}
    with pytest.raises(UserError, match="unknown conversation kind"):
        chat("data", "--run", run, "--without", "poetry")


def test_missing_world_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no world in"):
        chat("data", "--run", tmp_path)
    with pytest.raises(UserError, match="no world at"):
        chat("probe", "--ckpt", tmp_path / "base")
