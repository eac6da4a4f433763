"""The report card (minillm/report.py): every section present, what has not run said so,
model text escaped in the HTML, plots embedded, errors in one line.

The full report of a real run is checked by the smoke speedrun (tests/test_speedrun.py).
"""
import json

import pytest

from minillm.cli import main
from minillm.common import UserError
from minillm.report import SECTIONS, build, to_html, write_report

HEADINGS = ("1. Download and preprocess the internet", "2. Tokenization", "3. Pre-training",
            "4. Inference", "5. Post-training: supervised", "6. Post-training: reinforcement",
            "7. RLHF", "8. Keeping track")


def _run(tmp_path, stages=None):
    run = tmp_path / "r"
    run.mkdir()
    (run / "speedrun.json").write_text(json.dumps({"profile": "smoke", "stages": stages or {}}))
    return run


def test_every_section_is_there_and_says_what_has_not_run(tmp_path):
    run = _run(tmp_path, {"world": {"seconds": 1.5, "entities": 10}})
    md, page = write_report(run)
    text = md.read_text()
    assert len(SECTIONS) == len(HEADINGS)
    for heading in HEADINGS:
        assert heading in text and heading in page.read_text()
    assert "The cleaning stage has not run yet." in text and "RL has not run yet." in text
    assert "| world | 1.5 |" in text                       # the stage times table


def test_model_text_is_escaped_in_the_html(tmp_path):
    run = _run(tmp_path)
    (run / "base").mkdir()
    (run / "base" / "evals.json").write_text(json.dumps({"cloze": {"buckets": {
        "many": {"n": 2, "accuracy": 0.5}}}}))
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    (run / "base" / "samples.json").write_text(json.dumps([{"prompt": hostile, "text": hostile}]))
    page = to_html(build(run))
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_plots_are_files_for_markdown_and_inline_in_html(tmp_path):
    pytest.importorskip("matplotlib")
    run = _run(tmp_path, {"pretrain": {"seconds": 3.0, "steps": 20, "val_loss": 2.0}})
    (run / "base").mkdir()
    (run / "base" / "config.json").write_text(json.dumps({"model": {
        "vocab_size": 64, "context_len": 16, "n_layer": 1, "n_head": 1, "n_kv_head": 1,
        "n_embd": 8, "hidden_dim": 16, "tie_embeddings": True, "rope_theta": 10000.0,
        "norm_eps": 1e-5}}))
    with open(run / "metrics.jsonl", "w") as f:
        for step in (10, 20):
            f.write(json.dumps({"stage": "base", "step": step, "loss": 3.0 - step / 20,
                                "val_loss": 2.5}) + "\n")
    (run / "report").mkdir()
    (run / "report" / "stale.png").write_bytes(b"old")     # a plot the report no longer makes
    md, page = write_report(run)
    assert "![the loss curve](report/loss.png)" in md.read_text()
    assert (run / "report" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert not (run / "report" / "stale.png").exists()
    assert "src='data:image/png;base64," in page.read_text()


def test_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(UserError, match="no speedrun.json"):
        build(tmp_path)
    assert main(["report", "--run", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "no run directory" in err and "Traceback" not in err


def test_a_damaged_artifact_costs_its_section_only(tmp_path):
    run = _run(tmp_path, {"world": {"seconds": 1.0}})
    (run / "tokenizer.json").write_text("{not json")
    md, _ = write_report(run)
    text = md.read_text()
    assert "(section tokenizer: could not be read:" in text
    assert "3. Pre-training" in text and "8. Keeping track" in text
