"""Every command that writes, against every kind of --out (common.prepare_dir / prepare_file).

For each writing command x {missing path, its own earlier output, a non-empty directory of
the user's, a plain file of the user's, the command's own input}: the exit status (0 or 2),
a one-line `minillm: error:` naming the flag that helps (--force or --out), no traceback,
the user's files untouched; --force replaces only minillm's files; temporary files a killed
run left behind are removed by the next run. Inputs are tiny (a smoke world, a 2-shard
crawl, a one-layer model) and `download` fetches from a local HTTP server.

    python -m pytest tests/test_outputs.py
"""
import functools
import http.server
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from export_helpers import checkpoint, tokenizer
from minillm import speedrun
from minillm.cli import main
from minillm.common import MARKER, UserError, prepare_dir, write_json
from minillm.crawl import pages
from minillm.nn import checkpoint as ckpt_module

USER_TEXT = "my thesis, not minillm's\n"
TINY = dict(n_layer=1, n_embd=32, n_head=2, n_kv_head=2, hidden_dim=48, context_len=64)


@dataclass(frozen=True)
class Command:
    """argv(inputs, out) -> the command line; dir: --out is a directory (else a file);
    resumes: a rerun onto its own output succeeds without --force; input: the inputs
    attribute naming an input (None: the command has no input file); out_flag: the flag
    that names the output."""
    argv: object
    dir: bool
    resumes: bool
    input: str = None
    out_flag: str = "--out"


def _pretrain(s, out):
    return ["pretrain", "--data", s.text, "--out", out, "--depth", "1", "--n-embd", "16",
            "--n-head", "2", "--context-len", "8", "--batch-size", "2", "--steps", "2",
            "--eval-every", "100", "--eval-batches", "1", "--no-progress", "--metrics", s.metrics]


COMMANDS = {
    "world build": Command(lambda s, o: ["world", "build", "--size", "smoke", "--out", o], True, True),
    "crawl": Command(lambda s, o: ["crawl", "--world", s.world, "--out", o, "--shards", "2",
                                   "--no-progress"], True, True, "world"),
    "clean": Command(lambda s, o: ["clean", "--crawl", s.crawl, "--out", o, "--workers", "1"],
                     True, True, "crawl"),
    "clean --shards": Command(lambda s, o: ["clean", "--crawl", s.crawl, "--out", s.clean,
                                            "--workers", "1", "--tokenizer", s.tok, "--shards", o],
                              True, True, "tok"),
    "download": Command(lambda s, o: ["download", s.url, "--out", o], True, True),
    "tokenizer train": Command(lambda s, o: ["tokenizer", "train", "--input", s.text, "--vocab-size",
                                             "300", "--out", o], False, False, "text"),
    "tokenizer encode": Command(lambda s, o: ["tokenizer", "encode", "--tokenizer", s.tok, "--input",
                                              s.text, "--out", o], False, False, "text"),
    "tokenizer decode": Command(lambda s, o: ["tokenizer", "decode", "--tokenizer", s.tok, "72", "105",
                                              "--out", o], False, False, "tok"),
    "tokenizer export": Command(lambda s, o: ["tokenizer", "export", "--tokenizer", s.tok, "--format",
                                              "hf", "--out", o], False, False, "tok"),
    "pretrain": Command(_pretrain, True, False, "text"),
    "eval": Command(lambda s, o: ["eval", "--ckpt", s.ckpt, "--world", s.world, "--only", "cloze",
                                  "--limit", "2", "--out", o], False, True, "world"),
    "export gguf": Command(lambda s, o: ["export", "--ckpt", s.ckpt, "--format", "gguf", "--out", o],
                           False, False, "ckpt"),
    "export hf": Command(lambda s, o: ["export", "--ckpt", s.ckpt, "--format", "hf", "--out", o],
                         True, False, "ckpt"),
    "export llama2c": Command(lambda s, o: ["export", "--ckpt", s.ckpt, "--format", "llama2c",
                                            "--out", o], False, False, "ckpt"),
    "import": Command(lambda s, o: ["import", "--hf", s.hf, "--out", o], True, False, "hf"),
    "speedrun": Command(lambda s, o: ["speedrun", "--profile", "smoke", "--name", Path(o).name],
                        True, True, out_flag="--name"),
}


class Inputs:
    """Paths of the inputs every command reads, built once for the module."""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    s = Inputs()
    s.world, s.crawl, s.clean = str(root / "world"), str(root / "crawl"), str(root / "clean")
    s.text, s.tok, s.ckpt = str(root / "text.txt"), str(root / "tok.json"), str(root / "ckpt")
    s.hf, s.metrics = str(root / "hf"), str(root / "metrics.jsonl")
    Path(s.text).write_text("hello world, hello there; the quick brown fox.\n" * 40, encoding="utf-8")
    tok = tokenizer()
    tok.save(s.tok)
    checkpoint(s.ckpt, tok, **TINY)
    for argv in (["world", "build", "--size", "smoke", "--out", s.world],
                 ["crawl", "--world", s.world, "--out", s.crawl, "--shards", "2", "--no-progress"],
                 ["clean", "--crawl", s.crawl, "--out", s.clean, "--workers", "1"],
                 ["export", "--ckpt", s.ckpt, "--format", "hf", "--out", s.hf]):
        assert main(argv) == 0, argv
    served = root / "served"
    served.mkdir()
    (served / "corpus.txt").write_text("a small corpus\n" * 10, encoding="utf-8")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    s.url = f"http://127.0.0.1:{server.server_address[1]}/corpus.txt"
    yield s
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def fake_speedrun(monkeypatch, tmp_path):
    """speedrun's stages replaced by ones that write their artifacts (test_speedrun.py's)."""
    monkeypatch.setenv("MINILLM_RUNS", str(tmp_path))

    def make(stage):
        def stage_fn(run, p):
            if stage in speedrun.TRAINED:
                sub, steps = speedrun.TRAINED[stage]
                write_json(run / sub / "trainer_state.json", {"step": p[steps]})
            else:
                write_json(run / speedrun.ARTIFACTS[stage], {"stage": stage})
            return {}
        return stage_fn
    monkeypatch.setattr(speedrun, "STAGES", [(name, make(name)) for name, _ in speedrun.STAGES])


def run(argv, capsys):
    """(exit status, stderr) of `minillm argv`; a refusal must be one clean line."""
    capsys.readouterr()
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status == 2:
        lines = [x for x in err.splitlines() if x.startswith("minillm: error:")]
        assert len(lines) == 1, err
        return status, lines[0]
    return status, err


def written(out, cmd):
    """True when the command's output is there."""
    out = Path(out)
    return (out / MARKER).is_file() if cmd.dir else out.is_file() and out.stat().st_size > 0


def snapshot(path):
    """Bytes of every file under `path` (or of the file), to prove an input is untouched."""
    path = Path(path)
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != MARKER}


@pytest.fixture(params=list(COMMANDS))
def command(request, inputs, tmp_path, monkeypatch):
    name = request.param
    if name == "speedrun":
        request.getfixturevalue("fake_speedrun")
    return name, COMMANDS[name], inputs


def test_missing_path_is_created(command, tmp_path, capsys):
    name, cmd, s = command
    out = tmp_path / "out" if name == "speedrun" else tmp_path / "new" / "deeper" / "out"
    status, err = run(cmd.argv(s, out), capsys)
    assert status == 0, err
    assert written(out, cmd)


def test_own_earlier_output_is_resumed_or_needs_force(command, tmp_path, capsys):
    name, cmd, s = command
    out = tmp_path / "out"
    assert run(cmd.argv(s, out), capsys)[0] == 0
    user = (out if cmd.dir else tmp_path) / "notes.txt"     # the user's file in / beside it
    user.write_text(USER_TEXT)
    status, err = run(cmd.argv(s, out), capsys)
    if cmd.resumes:
        assert status == 0, err
    else:
        assert status == 2 and "--force" in err, err
    status, err = run(cmd.argv(s, out) + ["--force"], capsys)
    assert status == 0, err
    assert written(out, cmd)
    assert user.read_text() == USER_TEXT


def test_non_empty_directory_of_the_users(command, tmp_path, capsys):
    name, cmd, s = command
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.txt").write_text(USER_TEXT)
    status, err = run(cmd.argv(s, out), capsys)
    assert status == 2
    assert ("--force" if cmd.dir else cmd.out_flag) in err, err
    assert (out / "thesis.txt").read_text() == USER_TEXT
    status, err = run(cmd.argv(s, out) + ["--force"], capsys)
    if cmd.dir:                        # --force writes into it, keeping the user's file
        assert status == 0, err
        assert written(out, cmd)
    else:                              # a file output can never replace a directory
        assert status == 2 and cmd.out_flag in err, err
    assert (out / "thesis.txt").read_text() == USER_TEXT


def test_plain_file_of_the_users(command, tmp_path, capsys):
    name, cmd, s = command
    out = tmp_path / "out"
    out.write_text(USER_TEXT)
    status, err = run(cmd.argv(s, out), capsys)
    assert status == 2
    assert (cmd.out_flag if cmd.dir else "--force") in err, err
    assert out.read_text() == USER_TEXT
    status, err = run(cmd.argv(s, out) + ["--force"], capsys)
    if cmd.dir:                        # no flag turns a file into a directory
        assert status == 2 and cmd.out_flag in err, err
        assert out.read_text() == USER_TEXT
    else:                              # the user named this very file and said --force
        assert status == 0, err
        assert written(out, cmd)


def test_the_commands_own_input_is_refused(command, tmp_path, capsys):
    name, cmd, s = command
    if cmd.input is None:
        assert name in ("world build", "download", "speedrun")   # nothing read from a path
        return
    src = getattr(s, cmd.input)
    before = snapshot(src)
    for force in ([], ["--force"]):
        status, err = run(cmd.argv(s, src) + force, capsys)
        assert status == 2 and "--out" in err, err
        assert snapshot(src) == before


def test_input_inside_out_is_refused(inputs, tmp_path, capsys):
    """The issue's case: `pretrain --data myproject/shards --out myproject` deleted both."""
    project = tmp_path / "myproject"
    project.mkdir()
    (project / "thesis.txt").write_text(USER_TEXT)
    data = project / "data.txt"
    data.write_bytes(Path(inputs.text).read_bytes())
    status, err = run(_pretrain(inputs, project)[:2] + [data, "--out", project, "--force"], capsys)
    assert status == 2 and "inside --out" in err
    assert (project / "thesis.txt").read_text() == USER_TEXT and data.exists()


def test_pretrain_never_overwrites_a_checkpoint_silently(inputs, tmp_path, capsys):
    out = tmp_path / "ck"
    argv = _pretrain(inputs, out)
    assert run(argv[:argv.index("--steps")] + ["--steps", "4"] + argv[argv.index("--steps") + 2:],
               capsys)[0] == 0
    status, err = run(argv, capsys)                     # 2 steps, no --resume: refused
    assert status == 2 and "--resume" in err and "--force" in err
    assert json.loads((out / "trainer_state.json").read_text())["step"] == 4


def test_force_removes_only_minillms_files(inputs, tmp_path, capsys):
    """A world rebuilt with --force over one of another seed: minillm's files replaced,
    the user's files in the directory (even ones that look like outputs) kept."""
    out = tmp_path / "w"
    assert run(["world", "build", "--size", "smoke", "--seed", "1", "--out", out], capsys)[0] == 0
    (out / "notes.jsonl").write_text(USER_TEXT)
    (out / "sub").mkdir()
    (out / "sub" / "stats.json").write_text(USER_TEXT)
    status, err = run(["world", "build", "--size", "smoke", "--out", out], capsys)
    assert status == 2 and "--force" in err                     # other settings
    assert run(["world", "build", "--size", "smoke", "--out", out, "--force"], capsys)[0] == 0
    assert json.loads((out / "stats.json").read_text())["seed"] == 0
    assert (out / "notes.jsonl").read_text() == USER_TEXT
    assert (out / "sub" / "stats.json").read_text() == USER_TEXT


def test_a_users_file_with_an_outputs_name_is_never_replaced(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stats.json").write_text(USER_TEXT)
    status, err = run(["world", "build", "--size", "smoke", "--out", out, "--force"], capsys)
    assert status == 2 and "stats.json" in err and "--force" in err
    assert (out / "stats.json").read_text() == USER_TEXT


def test_another_commands_output_is_refused_even_with_force(inputs, tmp_path, capsys):
    status, err = run(["export", "--ckpt", inputs.ckpt, "--format", "hf", "--out", inputs.world,
                       "--force"], capsys)
    assert status == 2 and "world output" in err
    assert (Path(inputs.world) / "stats.json").exists()


# ---- temporary files of a killed run ------------------------------------------------------

KILLED = {   # command -> temp names a kill leaves, relative to --out ("../x" beside it)
    "world build": [".documents.jsonl.gz.ab12cd_3.tmp", ".stats.json.zz99yy00.tmp"],
    "crawl": [".crawl-00000.warc.gz.k3j4h5g6.tmp", "truth/.crawl-00001.jsonl.gz.q1w2e3r4.tmp"],
    "clean": [".crawl-00000.jsonl.gz.a1b2c3d4.tmp", "work/.crawl-00001.sigs.npy.abcdefgh.tmp",
              "removed/.crawl-00000.jsonl.gz.u7i8o9p0.tmp", ".funnel.json.mnbvcxz1.tmp"],
    "pretrain": ["../.out.tmp-x1y2z3w4/model.safetensors"],
    "speedrun": [".base.tmp-ab12cd34/config.json", "world/.documents.jsonl.gz.ab12cd_3.tmp",
                 "/".join(("clean", "work", ".crawl-00000.keys.npy.zzzzzzzz.tmp"))],   # relative to the run
}


@pytest.mark.parametrize("name", list(KILLED))
def test_temporary_files_of_a_killed_run_are_removed(name, inputs, tmp_path, capsys, request):
    if name == "speedrun":
        request.getfixturevalue("fake_speedrun")
    cmd, out = COMMANDS[name], tmp_path / "out"
    assert run(cmd.argv(inputs, out), capsys)[0] == 0
    temps = [out / t for t in KILLED[name]]
    keep = [out / ".my.tmp", out / "notes.abcdefgh.tmp", out / ".notes.tmp-later"]  # not minillm's names
    for p in temps + keep:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("left by a kill")
    again = ["--resume"] if name == "pretrain" else []
    status, err = run(cmd.argv(inputs, out) + again, capsys)
    assert status == 0, err
    for p in temps:
        assert not p.exists() and not (p.parent.name.startswith(".") and p.parent.exists()), p
    for p in keep:
        assert p.read_text() == "left by a kill"


def test_checkpoint_save_keeps_the_users_files(tmp_path):
    """save_checkpoint swaps whole directories: the user's files move to the new one."""
    tok = tokenizer()
    checkpoint(tmp_path / "ck", tok, **TINY)
    (tmp_path / "ck" / "notes.txt").write_text(USER_TEXT)
    (tmp_path / "ck" / "plots").mkdir()
    (tmp_path / "ck" / "plots" / "loss.png").write_bytes(b"png")
    checkpoint(tmp_path / "ck", tok, **TINY)
    assert (tmp_path / "ck" / "notes.txt").read_text() == USER_TEXT
    assert (tmp_path / "ck" / "plots" / "loss.png").read_bytes() == b"png"
    assert not list(tmp_path.glob(".ck.*"))


def test_a_save_killed_after_its_swap_gives_the_files_back(tmp_path):
    """Killed between the swap and moving the user's files: the next save brings them back."""
    tok = tokenizer()
    checkpoint(tmp_path / "ck", tok, **TINY)
    stranded = tmp_path / ".ck.old-abcd1234" / "ckpt"
    stranded.mkdir(parents=True)
    (stranded / "notes.txt").write_text(USER_TEXT)
    (stranded / "config.json").write_text("{}")          # the old checkpoint's own file
    checkpoint(tmp_path / "ck", tok, **TINY)
    assert (tmp_path / "ck" / "notes.txt").read_text() == USER_TEXT
    assert not stranded.parent.exists()
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["format"] == ckpt_module.FORMAT


def test_prepare_dir_states(tmp_path):
    out = tmp_path / "o"
    assert prepare_dir(out, pages.OUTPUT) == "new"
    (out / "crawl.json").write_text("{}")
    assert prepare_dir(out, pages.OUTPUT) == "resume"
    assert prepare_dir(out, pages.OUTPUT, force=True) == "replace"
    assert not (out / "crawl.json").exists() and (out / MARKER).exists()


def test_a_metrics_file_that_is_not_minillms_is_never_rewritten(inputs, tmp_path, capsys):
    """A fresh run trims its stage's lines from --metrics: never from a file of the user's."""
    notes = tmp_path / "notes.txt"
    notes.write_text(USER_TEXT)
    argv = _pretrain(inputs, tmp_path / "ck")
    argv[argv.index("--metrics") + 1] = str(notes)
    status, err = run(argv, capsys)
    assert status == 2 and "--metrics" in err
    assert notes.read_text() == USER_TEXT


@pytest.mark.parametrize("name, files", [
    ("crawl", {"plan.json": '{"my": "plan"}', "crawl-data.warc.gz": "mine"}),
    ("clean", {"work/notes.txt": "mine", "data.jsonl.gz": "mine"}),
    ("clean --shards", {"shards.json": '{"my": 1}', "weights.bin": "mine"}),
])
def test_user_files_with_output_like_names_are_not_taken_for_an_output(name, files, inputs,
                                                                        tmp_path, capsys):
    """Recognising an earlier output needs its marker or its own metadata, not a file name
    a user might also use: else --force would delete the user's files."""
    out = tmp_path / "out"
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    status, err = run(COMMANDS[name].argv(inputs, out), capsys)
    assert status == 2 and "non-empty directory minillm did not write" in err
    run(COMMANDS[name].argv(inputs, out) + ["--force"], capsys)
    for rel, text in files.items():
        assert (out / rel).read_text() == text


def test_a_directory_claimed_by_a_refused_run_counts_as_empty(tmp_path):
    """A run that stopped after claiming its output (only the marker there) leaves nothing to
    resume: the next run starts afresh instead of asking for --resume or --force."""
    out = tmp_path / "ckpt"
    assert prepare_dir(out, ckpt_module.OUTPUT, resume=False, resume_flag="--resume") == "new"
    assert sorted(p.name for p in out.iterdir()) == [MARKER]
    assert prepare_dir(out, ckpt_module.OUTPUT, resume=False, resume_flag="--resume") == "new"
    (out / "config.json").write_text("{}")
    with pytest.raises(UserError, match="--resume"):
        prepare_dir(out, ckpt_module.OUTPUT, resume=False, resume_flag="--resume")
