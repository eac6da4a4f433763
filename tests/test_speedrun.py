"""The speedrun (minillm/speedrun.py): stage skipping and resuming with stand-in stages
(fast), and the whole smoke profile end to end (slow, `pytest -m slow`).

    python -m pytest tests/test_speedrun.py -m "slow or not slow"
"""
import json
import os
import signal
import time

import numpy as np
import pytest

from minillm import speedrun
from minillm.nn.checkpoint import load_checkpoint
from minillm.pretrain import shards
from minillm.cli import main
from minillm.common import UserError, write_json


@pytest.fixture
def fake_stages(monkeypatch, tmp_path):
    """Replace every stage by one that writes its artifact and records that it ran."""
    monkeypatch.setenv("MINILLM_RUNS", str(tmp_path))
    ran = []

    def make(stage):
        def stage_fn(run, p):
            ran.append(stage)
            if stage in speedrun.TRAINED:
                sub, steps = speedrun.TRAINED[stage]
                write_json(run / sub / "trainer_state.json", {"step": p[steps]})
            else:
                write_json(run / speedrun.ARTIFACTS[stage], {"stage": stage})
            return {"n": len(ran)}
        return stage_fn

    monkeypatch.setattr(speedrun, "STAGES", [(name, make(name)) for name, _ in speedrun.STAGES])
    return ran, tmp_path


NAMES = [name for name, _ in speedrun.STAGES]


def test_stages_run_once_then_are_skipped(fake_stages):
    ran, root = fake_stages
    summary = speedrun.speedrun("smoke")
    assert ran == NAMES
    assert summary["run"] == str(root / "smoke")
    ran.clear()
    summary = speedrun.speedrun("smoke")
    assert ran == []
    assert all(summary["stages"][s]["skipped"] for s in NAMES)
    assert json.loads((root / "smoke" / "speedrun.json").read_text())["profile"] == "smoke"


def test_a_stage_without_its_artifact_reruns_with_everything_after_it(fake_stages):
    ran, root = fake_stages
    speedrun.speedrun("smoke")
    run = root / "smoke"
    (run / "tokenizer.json").unlink()                 # as if killed while training the tokenizer
    (run / "base" / "model.safetensors").write_text("old model")
    (run / "base" / "notes.txt").write_text("the user's")
    ran.clear()
    speedrun.speedrun("smoke")
    assert ran == NAMES[NAMES.index("tokenizer"):]
    assert not (run / "base" / "model.safetensors").exists()   # trained on the old shards
    assert (run / "base" / "notes.txt").read_text() == "the user's"   # not minillm's: kept


def test_unfinished_pretraining_resumes(fake_stages):
    ran, root = fake_stages
    speedrun.speedrun("smoke")
    run = root / "smoke"
    write_json(run / "base" / "trainer_state.json", {"step": 3})   # killed at step 3
    (run / "base" / "evals.json").unlink()
    ran.clear()
    speedrun.speedrun("smoke")
    assert ran == NAMES[NAMES.index("pretrain"):]


def test_profile_mismatch_and_unknown_profile(fake_stages):
    speedrun.speedrun("smoke", name="x")
    with pytest.raises(UserError, match="profile 'smoke'"):
        speedrun.speedrun("default", name="x")
    with pytest.raises(UserError, match="unknown profile"):
        speedrun.speedrun("huge")


def test_from_redoes_a_stage_and_all_after_it(fake_stages):
    ran, root = fake_stages
    speedrun.speedrun("smoke")
    ran.clear()
    speedrun.speedrun("smoke", start="sft")
    assert ran == NAMES[NAMES.index("sft"):]


def test_only_redoes_one_stage_and_needs_the_ones_before(fake_stages):
    ran, root = fake_stages
    speedrun.speedrun("smoke")
    ran.clear()
    speedrun.speedrun("smoke", only="sft")
    assert ran == ["sft"]
    (root / "smoke" / "chat" / "conversations.jsonl").unlink()          # chat_data not done any more
    with pytest.raises(UserError, match="--only rl needs .* chat_data is not"):
        speedrun.speedrun("smoke", only="rl")
    with pytest.raises(UserError, match="no such stage .* the stages are world, crawl"):
        speedrun.speedrun("smoke", start="sftt")
    with pytest.raises(UserError, match="do not go together"):
        speedrun.speedrun("smoke", start="sft", only="rl")


def test_a_budget_sizes_pretraining_once_per_run(fake_stages, monkeypatch):
    ran, root = fake_stages
    monkeypatch.setattr(speedrun, "measure_throughput", lambda p: 25_000.0)
    p = speedrun.PROFILES["smoke"]
    steps, other = speedrun.plan_budget(p, 2, 25_000.0)
    ref = p["reference"]
    assert other == pytest.approx(ref["other_seconds"] * ref["probe_tokens_per_s"] / 25_000)
    step_s = ref["pretrain_step_seconds"] * ref["probe_tokens_per_s"] / 25_000
    assert steps == int((120 - other) / step_s)
    assert speedrun.plan_budget(p, 4, 25_000.0)[0] > steps                   # more time, more steps
    summary = speedrun.speedrun("smoke", minutes=2)
    assert summary["run"] == str(root / "smoke-2min")
    assert summary["budget"]["steps"] == steps and summary["settings"]["steps"] == steps
    assert json.loads((root / "smoke-2min" / "base" / "trainer_state.json").read_text())["step"] == steps
    monkeypatch.setattr(speedrun, "measure_throughput", lambda p: 1.0)      # resuming: not measured again
    ran.clear()
    assert speedrun.speedrun("smoke", minutes=2)["budget"]["steps"] == steps and ran == []
    with pytest.raises(UserError, match="2-minute budget: pass --minutes 2"):
        speedrun.speedrun("smoke", name="smoke-2min")
    with pytest.raises(UserError, match="not 3"):
        speedrun.speedrun("smoke", name="smoke-2min", minutes=3)
    with pytest.raises(UserError, match="too short .* give at least"):
        speedrun.speedrun("smoke", name="tiny", minutes=0.1)


def test_default_model_shape():
    config = speedrun.model_config(speedrun.PROFILES["default"], 2048)
    assert (config.n_layer, config.n_embd, config.context_len) == (
        speedrun.PROFILES["default"]["depth"], speedrun.PROFILES["default"]["n_embd"],
        speedrun.PROFILES["default"]["context_len"])


@pytest.mark.slow
def test_smoke_speedrun_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINILLM_RUNS", str(tmp_path))
    t = time.perf_counter()
    assert main(["speedrun", "--profile", "smoke"]) == 0
    seconds = time.perf_counter() - t
    out = capsys.readouterr().out
    run = tmp_path / "smoke"
    summary = json.loads((run / "speedrun.json").read_text())
    st = summary["stages"]
    assert st["clean"]["documents"] > 20 and st["shards"]["tokens"] > 10_000    # pages bundle documents
    assert st["pretrain"]["steps"] == speedrun.PROFILES["smoke"]["steps"]
    assert st["pretrain"]["val_loss"] < 6.0                # from ln(512) = 6.24 at the start
    assert 0.0 <= st["evals"]["recall_many"] <= 1.0 and "bits_per_byte" in st["evals"]
    assert 0.0 <= st["evals"]["copy"] <= 1.0
    assert len(st["samples"]["samples"]) == speedrun.PROFILES["smoke"]["samples"]
    assert st["rl"]["steps"] == speedrun.PROFILES["smoke"]["rl_steps"] and st["rl"]["pass1_after"] is not None
    assert 0.6 < st["rl_evals"]["demonstrator"] < 0.8 and set(st["rl_evals"]["countdown"]) == {
        "sft", "rl_math", "rl_countdown"}
    assert 0.0 <= st["reward_model"]["accuracy"] <= 1.0 and st["reward_model"]["pairs"] > 0
    for name in ("policy", "policy_kl"):
        r = st["rlhf"][name]
        assert r["peak_true"] >= r["sft_true"] and 0 <= r["peak_step"] <= speedrun.PROFILES["smoke"]["rlhf_steps"]
    assert {"sft", "rlhf (peak)", "rlhf (last step)", "base"} <= set(st["arena"]["ratings"])
    for path in ("world/stats.json", "crawl/crawl.json", "clean/funnel.json", "tokenizer.json",
                 "shards/shards.json", "base/config.json", "base/evals.json", "base/samples.json",
                 "sft/chat_evals.json", "rl/config.json", "rl_countdown/config.json", "rl_evals.json",
                 "rlhf/pairs.jsonl", "rlhf/reward_model/config.json", "rlhf/policy/samples.json",
                 "rlhf/policy_last/config.json", "rlhf/policy_kl/config.json", "rlhf/curves.json",
                 "arena.json", "arena.md"):
        assert (run / path).exists(), path
    assert "outputs:" in out and str(run) in out
    report = (run / "report.md").read_text()             # the report card, every section filled
    for heading in ("1. Download", "2. Tokenization", "3. Pre-training", "4. Inference",
                    "5. Post-training: supervised", "6. Post-training: reinforcement"):
        assert heading in report, heading
    assert "has not run yet" not in report.split("7. RLHF")[0]
    assert "| many |" in report and "tokens/s" in report and (run / "report.html").exists()
    assert seconds < 180, f"smoke speedrun took {seconds:.0f}s (target 3 minutes)"
    # a second call finds everything done
    t = time.perf_counter()
    assert main(["speedrun", "--profile", "smoke"]) == 0
    assert time.perf_counter() - t < 10
    assert "(skipped: done)" in capsys.readouterr().out


def test_every_stage_names_its_part_of_the_lecture():
    assert set(speedrun.LECTURE) == {name for name, _ in speedrun.STAGES}


@pytest.mark.slow
def test_an_interrupted_speedrun_resumes_to_the_same_result(tmp_path, monkeypatch):
    """Ctrl-C during pretraining (a real SIGINT, at the 25th training batch), then the same
    command again: every stage's numbers and the base model's weights equal an
    uninterrupted run's."""
    monkeypatch.setenv("MINILLM_RUNS", str(tmp_path))
    speedrun.speedrun("smoke", name="straight", threads=1)
    calls, real_next = [], shards.BatchLoader.next_batch

    def next_batch(loader):
        if loader.split == "train":
            calls.append(1)
            if len(calls) == 25:
                os.kill(os.getpid(), signal.SIGINT)     # the loop finishes this step, then stops
        return real_next(loader)

    monkeypatch.setattr(shards.BatchLoader, "next_batch", next_batch)
    with pytest.raises(KeyboardInterrupt):
        speedrun.speedrun("smoke", name="resumed", threads=1)
    assert json.loads((tmp_path / "resumed" / "base" / "trainer_state.json").read_text())["step"] == 25
    monkeypatch.setattr(shards.BatchLoader, "next_batch", real_next)
    speedrun.speedrun("smoke", name="resumed", threads=1)
    a, b = (json.loads((tmp_path / n / "speedrun.json").read_text())["stages"] for n in ("straight", "resumed"))

    def numbers(d):                                     # everything but timings
        return {k: numbers(v) if isinstance(v, dict) else v for k, v in d.items()
                if k not in ("seconds", "skipped", "tokens_per_s", "seconds_data", "seconds_training")}
    assert numbers(b) == numbers(a)
    wa, wb = (load_checkpoint(tmp_path / n / "base")[1] for n in ("straight", "resumed"))
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_the_speedrun_refuses_to_run_under_mpirun(fake_stages, monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    with pytest.raises(UserError, match="runs in one process"):
        speedrun.speedrun("smoke")
    assert fake_stages[0] == []
