"""The post-training pipeline end to end (slow): smoke world -> ... -> base model -> probe ->
conversations -> SFT -> chat evals, through the smoke speedrun, with a fixed seed.

The lecture's claim, as a test: SFT measurably improves identity and world QA over the
base model (and the "I don't know" data lowers hallucination). `minillm chat eval` on the
SFT checkpoint reproduces the speedrun's numbers.

    python -m pytest tests/chat/test_pipeline.py -m slow
"""
import json
import time

import pytest

from minillm import speedrun
from minillm.cli import main


@pytest.mark.slow
def test_sft_beats_the_base_model_on_identity_and_qa(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINILLM_RUNS", str(tmp_path))
    t = time.perf_counter()
    assert main(["speedrun", "--profile", "smoke"]) == 0
    assert time.perf_counter() - t < 150
    run = tmp_path / "smoke"
    base = json.loads((run / "chat" / "base_chat_evals.json").read_text())
    sft = json.loads((run / "sft" / "chat_evals.json").read_text())
    numbers = json.loads((run / "speedrun.json").read_text())["stages"]
    assert numbers["sft"]["steps"] == speedrun.PROFILES["smoke"]["sft_steps"]
    assert numbers["chat_evals"]["sft"]["identity"] == round(sft["identity"]["rate"], 4)
    assert sft["identity"]["n"] >= 30 and sft["world_qa"]["n"] >= 30
    assert base["identity"]["rate"] < 0.2 and sft["identity"]["rate"] >= 0.8
    assert sft["world_qa"]["rate"] >= base["world_qa"]["rate"] + 0.1
    assert sft["hallucination"]["rate"] <= base["hallucination"]["rate"] - 0.3
    assert "identity" in capsys.readouterr().out
    # the command gives the same numbers (greedy decoding, the same items)
    out = tmp_path / "again.json"
    limit = str(speedrun.PROFILES["smoke"]["chat_eval_limit"])
    assert main(["chat", "eval", "--ckpt", str(run / "sft"), "--limit", limit, "--out", str(out)]) in (0, None)
    printed = capsys.readouterr().out
    assert "world_qa" in printed and str(out) in printed
    assert json.loads(out.read_text()) == sft
