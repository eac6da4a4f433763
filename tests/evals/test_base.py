"""Base-model evals (minillm/evals/base.py) on the smoke mini-world.

The scoring logic is checked with a fake engine whose answers are known (it recalls
exactly the facts / lines it is told to), so each eval must report exactly the expected
accuracy; the validation loss is checked against a direct computation; the command runs
end to end on a tiny random checkpoint (tests/evals/test_cli.py).

    python -m pytest tests/evals
"""
import gzip
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from minillm.evals import base
from minillm.evals.base import (EvalContext, _first_value, eval_cloze, eval_copy, eval_few_shot,
                                eval_regurgitation, eval_val_loss, run_evals)
from minillm.nn.gpt import GPTConfig, forward, init_params
from minillm.pretrain.shards import write_shard
from minillm.tokenizer.bpe import Tokenizer
from minillm.world.world import World


@pytest.fixture(scope="module")
def world():
    return World.build(seed=0, size="smoke")


@pytest.fixture(scope="module")
def tok():
    return Tokenizer([], "gpt4")


class FakeEngine:
    """generate(prompts) -> completions from a function prompt text -> continuation text."""

    def __init__(self, tok, answer):
        self.tokenizer, self.answer = tok, answer

    def generate(self, prompts, bos=True, temperature=0, max_tokens=10, logprobs=False):
        out = []
        for p in prompts:
            text = p if isinstance(p, str) else self.tokenizer.decode([t for t in p if t < 256])
            cont = self.answer(text)
            out.append(SimpleNamespace(text=cont, tokens=self.tokenizer.encode_ordinary(cont)[:max_tokens]))
        return out


def test_cloze_accuracy_per_bucket(world, tok):
    truth = {p.prompt: p for p in world.probes("cloze")}

    def answer(prompt):          # recalls the facts of well-known entities only
        p = truth[prompt]
        return f" {p.answer}, as everyone knows." if p.bucket == "many" else " Zorblat."

    ctx = EvalContext(FakeEngine(tok, answer), None, None, world=world, limit=15)
    r = eval_cloze(ctx)
    assert r["buckets"]["many"]["accuracy"] == 1.0 and r["buckets"]["many"]["n"] == 15
    for bucket in ("few", "one", "never"):
        assert r["buckets"][bucket]["accuracy"] == 0.0
    assert r["table"][0][0].startswith("recall, many")


def test_few_shot_zero_vs_k(world, tok):
    city = {e.name: e.attrs["birth_city"] for e in world.entities.values() if "birth_city" in e.attrs}

    def answer(prompt):          # follows the examples' form only when there are examples
        lines = prompt.split("\n")
        name = lines[-1]
        if len(lines) == 1:
            return " is a name.\n"
        right = city[name] if name < "M" else "Nowhere"          # and knows half the answers
        return f" was born in the city of {right}.\nMore"

    r = eval_few_shot(EvalContext(FakeEngine(tok, answer), None, None, world=world, limit=20))
    zero, three = r["shots"]["0"], r["shots"]["3"]
    assert zero["accuracy"] == 0.0 and zero["format"] == 0.0
    assert three["format"] == 1.0
    assert 0.0 < three["accuracy"] < 1.0                      # right only for names before "M"
    assert three["example"]["prompt"].count(" was born in the city of ") == 3


def test_first_value_named():
    cities = {"tarsk", "new lorton", "lorton"}
    assert _first_value(" is a baker from Tarsk, not New Lorton.", cities) == "tarsk"
    assert _first_value(" moved from New Lorton to Tarsk", cities) == "new lorton"   # longest at a place
    assert _first_value(" was born in Tarskville", cities) is None                   # whole words only


def test_regurgitation_of_repeated_lines(world, tok, tmp_path):
    repeated = "This line was printed on every page of the old town website, again and again."
    rare = "Only one page ever said that the blue kettle sang at midnight in the small kitchen."
    clean = tmp_path / "clean"
    clean.mkdir()
    with gzip.open(clean / "part.jsonl.gz", "wt") as f:
        for i in range(12):
            f.write(json.dumps({"text": f"Title {i}\n{repeated}"}) + "\n")
        f.write(json.dumps({"text": rare}) + "\n")

    def answer(prompt):          # memorized the repeated line, nothing else
        prefix = prompt.lstrip("\n")
        return repeated[len(prefix):] if repeated.startswith(prefix) else " something else entirely"

    ctx = EvalContext(FakeEngine(tok, answer), None, None, world=world, clean=str(clean), limit=10)
    r = eval_regurgitation(ctx)["groups"]
    assert r["seen_many"]["n"] == 1 and r["seen_many"]["exact_rate"] == 1.0
    assert r["seen_once"]["n"] == 1 and r["seen_once"]["verbatim_fraction"] == 0.0
    assert r["never_seen"]["n"] == 10 and r["never_seen"]["exact_rate"] == 0.0


def tiny_model(tok, context_len=16):
    config = GPTConfig(vocab_size=tok.vocab_size, context_len=context_len, n_layer=1, n_head=2,
                       n_kv_head=2, n_embd=16, hidden_dim=32)
    return config, init_params(config, 0)


def test_val_loss_and_bits_per_byte(tok, tmp_path):
    config, params = tiny_model(tok)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 256, 2000)
    tokens[::50] = tok.bos_id                                           # special tokens in the stream
    write_shard(tmp_path / "shard_00000.bin", tokens, tok.vocab_size)
    ctx = EvalContext(SimpleNamespace(tokenizer=tok), params, config, shards=str(tmp_path))
    r = eval_val_loss(ctx, max_batches=2, batch_size=4)
    # the same windows by hand: the last 10% of the stream, windows of T + 1 from its start
    val = tokens[1800:]
    x = np.stack([val[i * 16:i * 16 + 16] for i in range(8)])
    y = np.stack([val[i * 16 + 1:i * 16 + 17] for i in range(8)])
    loss, _ = forward(params, config, x, y, grad=False)
    assert r["val_loss"] == pytest.approx(loss, rel=1e-5)
    ordinary = np.where(y == tok.bos_id, -1, y)                          # bytes: 1 byte per token
    loss_ord, _ = forward(params, config, x, ordinary, grad=False)
    assert r["bits_per_byte"] == pytest.approx(loss_ord / math.log(2), rel=1e-5)


def test_missing_inputs_are_skipped_with_a_reason(tok):
    config, params = tiny_model(tok)
    ctx = EvalContext(SimpleNamespace(tokenizer=tok), params, config)
    results = run_evals(ctx, progress=False)
    for name in ("val_loss", "cloze", "regurgitation", "few_shot"):
        assert "skipped" in results[name] and results[name]["skipped"].startswith("no ")


def test_copy_scores_the_second_copy_against_the_first(tok, monkeypatch):
    """A stand-in model that predicts the token which followed the current token's earlier
    occurrence (a perfect induction head), else token 0: the whole second copy, nothing of
    the first (the random tokens of one sequence may repeat, so allow a little)."""
    config, params = tiny_model(tok)

    def induction(params, config, x, grad=False):
        B, T = x.shape
        logits = np.zeros((B, T, config.vocab_size), np.float32)
        for b in range(B):
            for t in range(T):
                earlier = [s for s in range(t) if x[b, s] == x[b, t]]
                logits[b, t, x[b, earlier[-1] + 1] if earlier else 0] = 1.0
        return logits, None

    monkeypatch.setattr(base.gpt, "forward", induction)
    r = eval_copy(EvalContext(SimpleNamespace(tokenizer=tok), params, config), n=8, length=6)
    assert r["length"] == 6 and r["copied"] == 1.0 and r["first_time"] < 0.2
    # a tokenizer without <|bos|> (an imported model's): the copies start the sequence
    no_bos = SimpleNamespace(special_tokens={k: v for k, v in tok.special_tokens.items() if k != "<|bos|>"})
    r = eval_copy(EvalContext(SimpleNamespace(tokenizer=no_bos), params, config), n=8, length=6)
    assert r["length"] == 6 and r["copied"] == 1.0 and r["first_time"] < 0.2
    monkeypatch.undo()
    r = eval_copy(EvalContext(SimpleNamespace(tokenizer=tok), params, config), n=8, length=6)
    assert r["copied"] < 0.2                        # a random model copies nothing
