"""probe.py: the base-model probe's records, their labels, and the file round trip."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from minillm.chat.probe import ProbeConfig, probe_facts, read_probe, summary, write_probe
from minillm.common import UserError
from minillm.generate.engine import Engine
from minillm.nn.gpt import GPTConfig, init_params
from minillm.tokenizer.bpe import Tokenizer
from minillm.world.world import World

FIELDS = {"entity", "relation", "answer", "bucket", "prompt", "samples", "correct", "k", "temperature",
          "seed", "known"}


@pytest.fixture(scope="module")
def world():
    return World.build(seed=0, size="smoke")


@pytest.fixture(scope="module")
def engine():
    tok = Tokenizer([], "gpt4")                                   # bytes + specials
    config = GPTConfig(vocab_size=tok.vocab_size, context_len=64, n_layer=1, n_head=2, n_kv_head=2,
                       n_embd=16, hidden_dim=32)
    return Engine(init_params(config, 0), config, tok)


def test_a_tiny_random_model_gives_the_schema(world, engine):
    config = ProbeConfig(k=2, limit=3, batch=4)
    records = probe_facts(engine, world, config)
    assert len(records) == 3 * len(config.buckets)
    for r in records:
        assert set(r) == FIELDS
        assert len(r["samples"]) == 2 and 0 <= r["correct"] <= 2
        assert r["known"] == (r["correct"] == 2)
        assert world.entities[r["entity"]].attrs[r["relation"]] == r["answer"]
        assert r["bucket"] in config.buckets
    # the same samples however the facts are batched: one generator per (seed, fact, sample)
    assert probe_facts(engine, world, ProbeConfig(k=2, limit=3, batch=64)) == records
    assert probe_facts(engine, world, ProbeConfig(k=2, limit=3, seed=5)) != records


class ScriptedEngine:
    """Answers each probe right on the first `right` of its samples, wrong after."""

    def __init__(self, world, right):
        self.world, self.right = world, right
        self.tokenizer = SimpleNamespace(encode_ordinary=lambda s: list(s.encode()))
        self.by_prompt = {p.prompt: p.answer for p in world.probes("cloze")}

    def generate(self, prompts, n, **kwargs):
        assert len(kwargs["seed"]) == len(prompts) * n
        return [SimpleNamespace(text=" " + self.by_prompt[p] + "." if j < self.right else " nothing")
                for p in prompts for j in range(n)]


def test_known_means_consistently_right(world):
    everything = probe_facts(ScriptedEngine(world, 4), world, ProbeConfig(k=4, min_correct=1.0))
    assert everything and all(r["known"] and r["correct"] == 4 for r in everything)
    assert {r["bucket"] for r in everything} == {"many", "few", "one"}              # never: eval only
    three = probe_facts(ScriptedEngine(world, 3), world, ProbeConfig(k=4, limit=5, min_correct=1.0))
    assert not any(r["known"] for r in three)
    lenient = probe_facts(ScriptedEngine(world, 3), world, ProbeConfig(k=4, limit=5, min_correct=0.75))
    assert all(r["known"] for r in lenient)
    assert all(r["known"] for r in probe_facts(ScriptedEngine(world, 2), world, ProbeConfig(k=4, limit=5)))
    assert not any(r["known"] for r in probe_facts(ScriptedEngine(world, 1), world, ProbeConfig(k=4, limit=5)))
    rows = summary(three)
    assert [row[0] for row in rows] == ["many", "few", "one"] and all(row[3] == 0.75 for row in rows)


def test_file_round_trip_and_bad_files(world, tmp_path):
    records = probe_facts(ScriptedEngine(world, 1), world, ProbeConfig(k=2, limit=2))
    path = write_probe(records, tmp_path / "probe.jsonl")
    back = read_probe(path)
    assert back == {(r["entity"], r["relation"]): r for r in records}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(records[0]) + "\n" + json.dumps({"entity": "x"}) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2: not a probe record"):
        read_probe(bad)
    with pytest.raises(UserError, match="not found"):
        read_probe(tmp_path / "missing.jsonl")
    with pytest.raises(UserError, match="min_correct"):
        probe_facts(ScriptedEngine(world, 1), world, ProbeConfig(min_correct=0))
    assert np.isfinite(summary(records)[0][2])
