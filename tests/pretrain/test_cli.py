"""`minillm pretrain`'s flags: numbers no run can use are one-line errors (before --out is
touched), and a run whose steps keep failing stops instead of saving a broken model.

    python -m pytest tests/pretrain/test_cli.py
"""
import json

import numpy as np
import pytest

from minillm.cli import main
from minillm.nn import gpt
from minillm.nn.checkpoint import load_checkpoint


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    return path


def argv(text, out, *extra):
    return ["pretrain", "--data", str(text), "--out", str(out), "--n-layer", "1", "--n-head", "2",
            "--n-embd", "16", "--context-len", "8", "--batch-size", "2", "--eval-every", "0",
            "--eval-batches", "1", "--no-progress", "--metrics", str(out.parent / "m.jsonl"),
            *extra]


@pytest.mark.parametrize("flags, says", [
    (["--steps", "0"], "--steps must be at least 1"),            # used to train 1000 steps
    (["--tokens", "0"], "--tokens must be at least 1"),          # likewise
    (["--tokens", "nan"], "--tokens must be at least 1"),
    (["--steps", "-3"], "--steps must be at least 1"),
    (["--lr", "nan"], "--lr must be a finite number"),           # used to save NaN weights
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--lr", "-0.1"], "--lr must be a finite number"),
    (["--lr", "0"], "--lr must be above 0"),
    (["--min-lr", "nan"], "--min-lr must be a finite number"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--grad-accum", "0"], "--grad-accum must be at least 1"),
    (["--beta2", "1.5"], "--beta1 and --beta2 must be in [0, 1)"),
])
def test_unusable_numbers_are_one_line_errors(text, tmp_path, capsys, flags, says):
    out = tmp_path / "ck"
    assert main(argv(text, out, "--steps", "2", *flags)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minillm: error: ") and says in err and "\n" not in err
    assert not out.exists()                              # nothing was created


def test_steps_that_keep_failing_stop_the_run(text, tmp_path, monkeypatch, capsys):
    real, calls = gpt.forward, [0]

    def forward(*args, **kw):                            # diverged from step 3 on
        loss, cache = real(*args, **kw)
        calls[0] += 1
        return (float("nan") if calls[0] >= 3 else loss), cache

    monkeypatch.setattr(gpt, "forward", forward)
    out = tmp_path / "ck"
    assert main(argv(text, out, "--steps", "20", "--ckpt-every", "2")) == 2
    err = capsys.readouterr().err
    assert "minillm: error: 5 steps in a row (to step 7)" in err and "Traceback" not in err
    # checkpoints of skipped steps hold the last good weights (skips change nothing)
    assert json.loads((out / "trainer_state.json").read_text())["step"] == 6
    assert all(np.isfinite(w).all() for w in load_checkpoint(out)[1].values())
