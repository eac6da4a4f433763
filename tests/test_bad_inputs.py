"""Every command against bad inputs: one line, exit status 2, never a traceback.

A table of (command line, what the message must say) over flag values out of range (zero,
negative, NaN, absurd sizes), corrupt or missing artifacts in a run directory (bad JSON,
missing keys, truncated files, non-UTF-8 text) and hostile checkpoint configs (negative or
huge shapes, a context_len of 1e12 or 0). Each runs through minillm.cli.main in-process;
the stderr must hold exactly one "minillm...: error: ..." line naming the problem. The
thread-count segfault (MINILLM_THREADS=100000) runs in a subprocess, since a regression
would kill the test process. Inputs are tiny: a one-layer model, a short text, a smoke world.

    python -m pytest tests/test_bad_inputs.py
"""
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export_helpers import checkpoint, tokenizer
from minillm.cli import main
from minillm.nn.checkpoint import load_checkpoint, save_safetensors
from minillm.nn.optim import AdamW
from minillm.pretrain.shards import write_shard

TINY = dict(n_layer=1, n_embd=32, n_head=2, n_kv_head=2, hidden_dim=48, context_len=64)
ERROR = re.compile(r"^minillm( [a-z]+)*: error: ")


class Inputs:
    """Paths of good inputs (and of copies to break), built once for the module."""


@pytest.fixture(scope="module")
def s(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    s = Inputs()
    s.root = root
    s.text, s.tok, s.ckpt, s.world = (str(root / n) for n in ("text.txt", "tok.json", "ckpt", "world"))
    Path(s.text).write_text("hello world, hello there; the quick brown fox.\n" * 40, encoding="utf-8")
    tok = tokenizer()
    tok.save(s.tok)
    checkpoint(s.ckpt, tok, **TINY)
    assert main(["world", "build", "--size", "smoke", "--out", s.world]) == 0
    return s


_OUTS = itertools.count()      # a fresh --out per case: a refused run may leave its marker


def _pretrain(s, *extra):
    return ["pretrain", "--data", s.text, "--out", str(s.root / f"p{next(_OUTS)}"), "--depth", "1", "--n-embd", "16",
            "--n-head", "2", "--context-len", "8", "--batch-size", "2", "--steps", "2",
            "--eval-every", "100", "--eval-batches", "1", "--no-progress", *extra]


def _sample(s, *extra):
    return ["sample", "--ckpt", s.ckpt, "--prompt", "hello", "--max-tokens", "2", *extra]


def _broken_ckpt(s, name, edit):
    """A copy of the tiny checkpoint whose config.json["model"] went through edit(model)."""
    path = s.root / f"ckpt-{name}"
    if not path.exists():
        checkpoint(str(path), tokenizer(), **TINY)
        config = json.loads((path / "config.json").read_text())
        edit(config["model"])
        (path / "config.json").write_text(json.dumps(config))
    return str(path)


def _hf_with(s, name, edit):
    """The tiny checkpoint exported to Hugging Face's layout, config.json through edit(config)."""
    path = s.root / f"hf-{name}"
    if not path.exists():
        assert main(["export", "--ckpt", s.ckpt, "--format", "hf", "--out", str(path)]) == 0
        config = json.loads((path / "config.json").read_text())
        edit(config)
        (path / "config.json").write_text(json.dumps(config))
    return str(path)


def _file(s, name, data):
    path = s.root / name
    path.write_bytes(data)
    return str(path)


def _world_with(s, name, edit):
    """A copy of the smoke world with edit(path) applied."""
    path = s.root / f"world-{name}"
    if not path.exists():
        shutil.copytree(s.world, path)
        edit(path)
    return str(path)


def _resumable(s, name, edit):
    """A copy of a 2-step pretraining checkpoint with edit(path) applied; argv resuming it."""
    base = s.root / "trained"
    if not base.exists():
        assert main(_pretrain(s, "--out", str(base))) == 0
    path = s.root / f"trained-{name}"
    if not path.exists():
        shutil.copytree(base, path)
        edit(path)
    return ["pretrain", "--resume", str(path), "--steps", "3", "--no-progress"]


def _bad_optimizer(path):
    """The optimizer state of another model (a different shape) in the checkpoint."""
    other = path.parent / (path.name + "-other")
    checkpoint(str(other), tokenizer(), **TINY)
    config, params, _ = load_checkpoint(other)
    tensors, scalars = AdamW(params).state()
    save_safetensors(path / "optimizer.safetensors", tensors, {"state": json.dumps(scalars)})


def _json(name, text):
    return lambda p: (p / name).write_text(text)


def _shards_with(s, index):
    """A shard directory (one shard of the text's bytes, vocabulary 256) whose shards.json
    is `index` (None: no index)."""
    path = s.root / f"shards-{index is None}"
    path.mkdir(exist_ok=True)
    write_shard(path / "shard-0000.bin", np.frombuffer(Path(s.text).read_bytes(), np.uint8), 256)
    if index is not None:
        (path / "shards.json").write_text(index)
    return str(path)


def _first_entity(world):
    with open(Path(world) / "entities.jsonl", encoding="utf-8") as f:
        return json.loads(f.readline())["id"]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# name -> (argv(s), a piece of the expected message)
CASES = {
    # flag values
    "pretrain --depth 0": (lambda s: _pretrain(s, "--depth", "0"), "--depth"),
    "pretrain --depth -3": (lambda s: _pretrain(s, "--depth", "-3"), "--depth"),
    "pretrain --n-embd 0": (lambda s: _pretrain(s, "--n-embd", "0"), "--n-embd"),
    "pretrain --hidden-dim -1": (lambda s: _pretrain(s, "--hidden-dim", "-1"), "--hidden-dim"),
    "pretrain --n-head 0": (lambda s: _pretrain(s, "--n-head", "0"), "--n-head"),
    "pretrain --batch-size 0": (lambda s: _pretrain(s, "--batch-size", "0"), "--batch-size"),
    "pretrain --context-len -8": (lambda s: _pretrain(s, "--context-len", "-8"), "--context-len"),
    "pretrain --grad-accum 0": (lambda s: _pretrain(s, "--grad-accum", "0"), "--grad-accum"),
    "pretrain --eval-every -1": (lambda s: _pretrain(s, "--eval-every", "-1"), "--eval-every"),
    "pretrain --warmup -1": (lambda s: _pretrain(s, "--warmup", "-1"), "--warmup"),
    "pretrain --threads 0": (lambda s: _pretrain(s, "--threads", "0"), "--threads"),
    "pretrain --threads 100000": (lambda s: _pretrain(s, "--threads", "100000"), "--threads"),
    "pretrain --depth 1000": (lambda s: _pretrain(s, "--depth", "1000", "--n-embd", "4096",
                                                  "--n-head", "32"), "GiB"),
    "pretrain --batch-size huge": (lambda s: _pretrain(s, "--batch-size", "100000000"), "GiB"),
    "sample -n 0": (lambda s: _sample(s, "-n", "0"), "-n"),
    "sample -n 100000000": (lambda s: _sample(s, "-n", "100000000"), "GiB"),
    "sample --max-tokens -1": (lambda s: _sample(s, "--max-tokens", "-1"), "--max-tokens"),
    "sample --top-k 0": (lambda s: _sample(s, "--top-k", "0"), "--top-k"),
    "sample --threads 100000": (lambda s: _sample(s, "--threads", "100000"), "--threads"),
    "eval --limit 0": (lambda s: ["eval", "--ckpt", s.ckpt, "--limit", "0"], "--limit"),
    "eval --threads -2": (lambda s: ["eval", "--ckpt", s.ckpt, "--threads", "-2"], "--threads"),
    "crawl --shards 0": (lambda s: ["crawl", "--world", s.world, "--out", str(s.root / "c"),
                                    "--shards", "0"], "--shards"),
    "download --timeout 0": (lambda s: ["download", "http://127.0.0.1:9/x", "--out", str(s.root / "d"),
                                        "--timeout", "0"], "--timeout"),
    "download --retries -1": (lambda s: ["download", "http://127.0.0.1:9/x", "--out", str(s.root / "d"),
                                         "--retries", "-1"], "--retries"),
    "clean --workers 0": (lambda s: ["clean", "--crawl", str(s.root), "--out", str(s.root / "cl"),
                                     "--workers", "0"], "--workers"),
    "tokenizer train --vocab-size -1": (lambda s: ["tokenizer", "train", "--input", s.text,
                                                   "--vocab-size", "-1", "--out", str(s.root / "t.json")],
                                        "--vocab-size"),
    "import --context-len 0": (lambda s: ["import", "--hf", s.ckpt, "--out", str(s.root / "i"),
                                          "--context-len", "0"], "--context-len"),
    "speedrun --threads 100000": (lambda s: ["speedrun", "--profile", "smoke", "--threads", "100000"],
                                  "--threads"),
    "sft --batch-size 0": (lambda s: ["sft", "--ckpt", s.ckpt, "--batch-size", "0"], "--batch-size"),
    "sft --threads 100000": (lambda s: ["sft", "--ckpt", s.ckpt, "--threads", "100000"], "--threads"),
    "chat --max-tokens 0": (lambda s: ["chat", "--ckpt", s.ckpt, "--max-tokens", "0"], "--max-tokens"),
    "chat search -k 0": (lambda s: ["chat", "search", "-k", "0", "x"], "-k"),
    # files a user gives
    "sample non-UTF-8 --prompt-file": (lambda s: ["sample", "--ckpt", s.ckpt, "--prompt-file",
                                                  _file(s, "latin1.txt", b"caf\xe9 \xff\xfe")],
                                       "--prompt-file"),
    "pretrain empty --data": (lambda s: _pretrain(s) + ["--data", _file(s, "empty.txt", b"")], "empty"),
    "tokenizer train empty --input": (lambda s: ["tokenizer", "train", "--input", _file(s, "empty2.txt", b""),
                                                 "--vocab-size", "300", "--out", str(s.root / "t2.json")],
                                      "empty"),
    # hostile checkpoint configs
    "ckpt context_len 1e12": (lambda s: _sample(s) + ["--ckpt", _broken_ckpt(
        s, "ctx1e12", lambda m: m.update(context_len=1e12))], "context_len"),
    "ckpt context_len 0": (lambda s: _sample(s) + ["--ckpt", _broken_ckpt(
        s, "ctx0", lambda m: m.update(context_len=0))], "context_len"),
    "ckpt n_embd -32": (lambda s: _sample(s) + ["--ckpt", _broken_ckpt(
        s, "neg", lambda m: m.update(n_embd=-32))], "n_embd"),
    "ckpt n_layer 2**40": (lambda s: _sample(s) + ["--ckpt", _broken_ckpt(
        s, "huge", lambda m: m.update(n_layer=2**40))], "n_layer"),
    "ckpt missing field": (lambda s: _sample(s) + ["--ckpt", _broken_ckpt(
        s, "missing", lambda m: m.pop("n_head"))], "n_head"),
    "import HF max_position_embeddings 1e12": (lambda s: ["import", "--hf", _hf_with(
        s, "ctx", lambda c: c.update(max_position_embeddings=10**12)), "--out", str(s.root / "imp")],
        "context_len"),
    # corrupt artifacts in a run directory
    "world bad stats.json": (lambda s: ["eval", "--ckpt", s.ckpt, "--only", "cloze", "--limit", "2",
                                        "--world", _world_with(s, "badjson", lambda p: (p / "stats.json")
                                                               .write_text("{nope"))], "stats.json"),
    "world stats.json missing keys": (lambda s: ["eval", "--ckpt", s.ckpt, "--only", "cloze", "--limit", "2",
                                                 "--world", _world_with(s, "nokeys", lambda p: (
                                                     p / "stats.json").write_text("{}"))], "stats.json"),
    "world stats.json without seed": (lambda s: ["eval", "--ckpt", s.ckpt, "--only", "cloze", "--limit", "2",
                                                 "--world", _world_with(s, "noseed", lambda p: (
                                                     p / "stats.json").write_text(json.dumps({
                                                         k: v for k, v in json.loads((p / "stats.json")
                                                                                     .read_text()).items()
                                                         if k != "seed"})))], "seed"),
    "world truncated documents": (lambda s: ["crawl", "--world", _world_with(
        s, "trunc", lambda p: _truncate(p / "documents.jsonl.gz")), "--out", str(s.root / "c2"),
        "--shards", "1", "--no-progress"], "documents.jsonl.gz"),
    "world missing documents": (lambda s: ["crawl", "--world", _world_with(
        s, "nodocs", lambda p: (p / "documents.jsonl.gz").unlink()), "--out", str(s.root / "c3"),
        "--shards", "1", "--no-progress"], "documents.jsonl.gz"),
    "world documents not gzip": (lambda s: ["crawl", "--world", _world_with(
        s, "notgz", lambda p: (p / "documents.jsonl.gz").write_bytes(b"plain text\n")),
        "--out", str(s.root / "c4"), "--shards", "1", "--no-progress"], "documents.jsonl.gz"),
    "world show truncated": (lambda s: ["world", "show", _first_entity(s.world), "--docs", "100000", "--dir", _world_with(
        s, "trunc2", lambda p: _truncate(p / "documents.jsonl.gz"))], "documents.jsonl.gz"),
    # a checkpoint to resume, damaged
    "resume bad trainer_state JSON": (lambda s: _resumable(s, "badjson", _json(
        "trainer_state.json", "{nope")), "trainer_state.json"),
    "resume trainer_state no keys": (lambda s: _resumable(s, "nokeys", _json(
        "trainer_state.json", "{}")), "no trainer state"),
    "resume trainer_state a list": (lambda s: _resumable(s, "list", _json(
        "trainer_state.json", "[1, 2]")), "no trainer state"),
    "resume trainer_state bad loader": (lambda s: _resumable(s, "badloader", lambda p: (
        p / "trainer_state.json").write_text(json.dumps(
            {**json.loads((p / "trainer_state.json").read_text()), "loader": 7}))), "trainer_state.json"),
    "resume optimizer wrong shapes": (lambda s: _resumable(s, "opt", _bad_optimizer),
                                      "optimizer.safetensors"),
    "resume optimizer truncated": (lambda s: _resumable(s, "opttrunc", lambda p: _truncate(
        p / "optimizer.safetensors")), "optimizer.safetensors"),
    "pretrain tokenizer does not match shards": (lambda s: _pretrain(s) + [
        "--data", _shards_with(s, None), "--tokenizer", s.tok], "vocabulary"),
    "pretrain shards.json corrupt": (lambda s: _pretrain(s) + ["--data", _shards_with(s, "{}")], "shards.json"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line(name, s, capsys):
    argv, expect = CASES[name]
    argv = [str(a) for a in argv(s)]
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as e:        # argparse's own one-line errors
        status = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert status == 2, err
    lines = [x for x in err.splitlines() if ERROR.match(x)]
    assert len(lines) == 1, err
    assert expect in lines[0], lines[0]


@pytest.mark.parametrize("env,argv", [
    ({"MINILLM_THREADS": "100000"}, ["info"]),
    ({"MINILLM_THREADS": "0"}, ["info"]),
    ({"MINILLM_THREADS": "many"}, ["info"]),
])
def test_bad_thread_count_in_the_environment(env, argv):
    # a subprocess: before the bound, 100000 threads segfaulted the interpreter
    res = subprocess.run([sys.executable, "-m", "minillm", *argv], env=dict(os.environ, **env),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert [x for x in res.stderr.splitlines() if ERROR.match(x)] == [
        f"minillm: error: MINILLM_THREADS={env['MINILLM_THREADS']!r} is not a thread count "
        "(an integer in 1..512); unset it or change it"]


@pytest.mark.parametrize("argv", [["speedrun", "--profile", "smoke"], ["clean"], ["chat", "data", "--run", "x"],
                                  ["download", "tinyshakespeare"]])
def test_a_runs_root_that_is_a_file(argv, tmp_path, monkeypatch, capsys):
    """MINILLM_RUNS names a file: one line, before anything is written."""
    (tmp_path / "runs").write_text("not a directory")
    monkeypatch.setenv("MINILLM_RUNS", str(tmp_path / "runs"))
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert [x for x in err.splitlines() if ERROR.match(x)] == [
        f"minillm: error: MINILLM_RUNS ({tmp_path / 'runs'}) is a file, not a directory: runs go into "
        "a directory; set MINILLM_RUNS to one or move the file"]
    assert (tmp_path / "runs").read_text() == "not a directory"
