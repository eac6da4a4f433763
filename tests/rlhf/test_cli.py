"""`minillm rlhf` and `minillm arena` (rlhf/cli.py), and the whole RLHF path on a tiny random
model: labelled pairs -> a reward model -> RL against it with its curves and samples -> an
arena table. Bad input is one line and exit status 2, never a traceback.

    python -m pytest tests/rlhf/test_cli.py
"""
import json

import pytest

from minillm.cli import main


@pytest.mark.parametrize("argv, says", [
    (["rlhf"], "give --ckpt SFT"),
    (["rlhf", "--ckpt", "no-such-ckpt"], "checkpoint not found: no-such-ckpt"),
    (["rlhf", "reward-model", "--ckpt", "no-such-ckpt"], "checkpoint not found: no-such-ckpt"),
    (["arena", "--ckpt", "a"], "give at least two --ckpt"),
    (["arena", "--ckpt", "a", "--ckpt", "b"], "checkpoint not found: a"),
])
def test_bad_input_is_one_line(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_errors_on_a_real_run_are_one_line(run, capsys):
    cases = [(["rlhf", "--ckpt", str(run / "sft"), "--reward-model", str(run / "nothing")], "no reward model at"),
             (["rlhf", "--ckpt", str(run / "sft"), "--reward-model", str(run / "base")], "not a reward model"),
             (["arena", "--ckpt", str(run / "sft"), "--ckpt", str(run / "base"), "--name", "x"], "1 --name for 2 --ckpt"),
             (["arena", "--ckpt", str(run / "sft"), "--ckpt", str(run / "sft")], "the same name"),
             (["rlhf", "reward-model", "--ckpt", str(run / "sft"), "--out", str(run / "sft")], "is the input checkpoint")]
    for argv, says in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_the_whole_path_on_a_tiny_model(run, tmp_path, capsys):
    rm = tmp_path / "rlhf" / "reward_model"
    assert main(["rlhf", "reward-model", "--ckpt", str(run / "sft"), "--out", str(rm), "--prompts", "6",
                 "--held-out", "3", "--k", "3", "--max-tokens", "12", "--threads", "1"]) == 0
    assert "held-out pair accuracy" in capsys.readouterr().err
    meta = json.loads((rm / "config.json").read_text())
    assert meta["stage"] == "reward_model" and len(meta["reward_head"]) == 32 and 0 <= meta["accuracy"] <= 1
    assert (tmp_path / "rlhf" / "pairs.jsonl").exists()
    # refused a second time without --force
    assert main(["rlhf", "reward-model", "--ckpt", str(run / "sft"), "--out", str(rm)]) == 2
    assert "--force replaces it" in capsys.readouterr().err

    out = tmp_path / "rlhf" / "policy"
    argv = ["rlhf", "--ckpt", str(run / "sft"), "--reward-model", str(rm), "--out", str(out), "--steps", "3",
            "--prompts", "2", "--group", "2", "--max-tokens", "10", "--eval-every", "1", "--eval-prompts", "2",
            "--hack", "--no-progress", "--threads", "1"]
    assert main(argv) == 0
    assert "held-out true score" in capsys.readouterr().err
    lines = [json.loads(x) for x in (tmp_path / "rlhf" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if r["stage"] == "rlhf" and "rm" in r]
    assert [r["step"] for r in steps] == [0, 1, 2] and all("true" in r and "kl" in r for r in steps)
    assert (tmp_path / "rlhf" / "policy_last" / "config.json").exists()
    samples = json.loads((out / "samples.json").read_text())
    assert set(samples) == {"before", "peak", "after"} and samples["after"]["step"] == 3
    peak = json.loads((out / "config.json").read_text())
    assert peak["stage"] == "rlhf" and peak["step"] == samples["peak"]["step"]
    assert main(argv) == 2 and "--force replaces it" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0                  # and the metrics of the first run are replaced
    again = [json.loads(x) for x in (tmp_path / "rlhf" / "metrics.jsonl").read_text().splitlines()]
    assert len(again) == len(lines)

    table = tmp_path / "arena"
    assert main(["arena", "--ckpt", str(run / "sft"), "--ckpt", str(out), "--ckpt", str(run / "base"),
                 "--name", "sft", "--name", "rlhf", "--name", "base", "--prompts", "2", "--rounds", "20",
                 "--max-tokens", "8", "--out", str(table), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(table.with_suffix(".json").read_text())
    assert {m["name"] for m in result["models"]} == {"sft", "rlhf", "base"} and result["battles"] == 3 * 6
    assert all(m["bt_ci"][0] <= m["bt"] <= m["bt_ci"][1] for m in result["models"])
    assert "| rank | model |" in printed and table.with_suffix(".md").read_text().startswith("| rank")


def test_without_hack_the_run_stops_past_the_peak(run, tmp_path, capsys):
    rm = tmp_path / "reward_model"
    assert main(["rlhf", "reward-model", "--ckpt", str(run / "sft"), "--out", str(rm), "--prompts", "4",
                 "--held-out", "2", "--k", "2", "--max-tokens", "8", "--threads", "1"]) == 0
    out = tmp_path / "policy"
    assert main(["rlhf", "--ckpt", str(run / "sft"), "--reward-model", str(rm), "--out", str(out), "--steps", "12",
                 "--prompts", "2", "--group", "2", "--max-tokens", "8", "--eval-every", "1", "--eval-prompts", "2",
                 "--patience", "1", "--lr", "0.05", "--no-progress", "--threads", "1"]) == 0
    capsys.readouterr()
    evals = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if "eval_true" in r]
    best = max(evals, key=lambda r: r["eval_true"])
    peak = json.loads((out / "config.json").read_text())
    assert peak["step"] == best["step"] and peak["eval_true"] == best["eval_true"]
    assert evals[-1]["step"] < 12, "a random model's true score should not rise 12 times in a row"
    assert evals[-1]["step"] == best["step"] + 1         # stopped one eval (patience 1) past the peak
    assert not (tmp_path / "policy_last").exists()
