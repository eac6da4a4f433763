"""The exercises (minillm/exercises/): each is cut from its markers in the real code, its
solution (minillm's own lines) passes its check, its empty skeleton and a typical mistake
fail it in one line; `start` never writes over a learner's file; the CLI is wired.

    python -m pytest tests/exercises
"""
import re
from pathlib import Path

import pytest

from minillm.cli import main
from minillm.common import UserError
from minillm.exercises.registry import BY_NAME, EXERCISES, find
from minillm.exercises.source import RAISE, marked_regions
from minillm.exercises.workspace import (exercise_file, file_text, solution_text, verdict,
                                        write_skeleton)
from minillm.nn import attention, gpt

PACKAGE = Path(__file__).resolve().parents[2] / "minillm"
NAMES = [e.name for e in EXERCISES]

# A typical mistake per exercise: (minillm's text, the mistaken text) in the solved file.
MISTAKES = {
    "gopher_quality": ("words = [t for t in tokens if _is_word(t)]", "words = tokens"),
    "minhash": ("keys = keys * _MIX + bands[:, :, r]", "keys = keys + bands[:, :, r]"),
    "bpe": ("            k += 2", "            k += 1"),
    "rmsnorm_backward": ("rstd ** 3", "rstd ** 2"),
    "attention_backward": ("p * (dp - D)", "p * dp"),
    "rope": ("np.multiply(x.view(freqs.dtype), freqs,", "np.multiply(x.view(freqs.dtype), np.conj(freqs),"),
    "adamw": ("step_size=lr * math.sqrt(bc2) / bc1,", "step_size=lr,"),
    "kv_decode": (", :, :L], NH)[0]", "], NH)[0]"),
    "top_p": ("np.cumsum(p, axis=1) - p", "np.cumsum(p, axis=1)"),
    "chat_mask": ('learn = int(part["type"] in CALLS)', "learn = 1"),
    "calculator": ("if depth > MAX_DEPTH:", "if False:"),                 # no depth limit
    "grpo": ("+ w[..., None], axis=-1)", "- w[..., None], axis=-1)"),
    "bradley_terry": ("np.add.at(dr, c, dd)", "dr[c] += dd"),
    "elo": ("r[bt.b] -= k * (bt.score - e)", "r[bt.b] += k * (1 - bt.score - e)"),
}


def _write(tmp_path, ex, text):
    path = exercise_file(ex, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _one_line(problem):
    assert problem is not None, "the check passed"
    assert "\n" not in problem and "Traceback" not in problem, problem
    return problem


# ---- cut from the markers ----------------------------------------------------------------------

def test_the_exercises_are_in_lecture_order_and_cover_the_issue():
    assert NAMES == ["gopher_quality", "minhash", "bpe", "rmsnorm_backward", "attention_backward", "rope",
                     "adamw", "kv_decode", "top_p", "chat_mask", "calculator", "grpo", "bradley_terry", "elo"]
    assert set(MISTAKES) == set(NAMES)


def test_every_marker_belongs_to_an_exercise_function():
    """Markers in minillm/ and the registry agree: one marked block per exercised function
    (minillm/exercises/ itself shows a marker in a docstring)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "exercises":
            continue
        for name, _, _ in marked_regions(path.read_text(encoding="utf-8").splitlines()):
            found[name] = found.get(name, 0) + 1
    assert found == {e.name: len(e.functions) for e in EXERCISES}


def test_a_stray_marker_is_an_error():
    with pytest.raises(ValueError, match="never closed"):
        marked_regions(["def f():", "    # exercise: x", "    return 1"])
    with pytest.raises(ValueError, match="without"):
        marked_regions(["    # end exercise"])


@pytest.mark.parametrize("name", NAMES)
def test_skeleton_and_solution_are_the_real_function(name):
    ex = find(name)
    skeleton, solved = file_text(ex), file_text(ex, solved=True)
    compile(skeleton, "skeleton", "exec")
    assert skeleton.count('raise NotImplementedError("your code here")') == len(ex.functions)
    for f in ex.functions:
        assert f"def {f.__name__}(" in skeleton and (f.__doc__ or "").strip()[:30] in skeleton
    # an exercise is the NumPy version: no call into the C kernels is left
    assert not re.search(r"\bK[LAOMD]?\.|csrc/", solved), solved
    assert RAISE not in solved
    assert solution_text(ex).count("def ") >= len(ex.functions)


# ---- the checks --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_the_solution_passes_and_the_skeleton_fails(tmp_path, name):
    ex = find(name)
    path = _write(tmp_path, ex, file_text(ex, solved=True))
    assert verdict(ex, path) is None
    path = _write(tmp_path, ex, file_text(ex))
    assert "not written yet: NotImplementedError at" in _one_line(verdict(ex, path))


@pytest.mark.parametrize("name", NAMES)
def test_a_typical_mistake_fails_with_a_wrong_answer(tmp_path, name):
    ex = find(name)
    old, new = MISTAKES[name]
    solved = file_text(ex, solved=True)
    assert old in solved, f"the mistake's text is gone from minillm's code: update MISTAKES[{name!r}]"
    problem = _one_line(verdict(ex, _write(tmp_path, ex, solved.replace(old, new))))
    assert "NotImplementedError" not in problem and "raised" not in problem, problem


def test_the_real_functions_are_back_after_a_check(tmp_path):
    ex = BY_NAME["kv_decode"]
    verdict(ex, _write(tmp_path, ex, file_text(ex, solved=True)))
    assert gpt.attention_cached is attention.attention_cached      # swapped there, then restored
    assert attention.attention_cached.__module__ == "minillm.nn.attention"


def test_what_goes_wrong_is_one_line_naming_file_and_line(tmp_path):
    ex = BY_NAME["elo"]
    path = _write(tmp_path, ex, "def expected(ra, rb):\n    return (ra - rb\n")
    assert _one_line(verdict(ex, path)) == f"{path}:2: syntax error: '(' was never closed"
    _write(tmp_path, ex, "import numpy as np\ndef expected(ra, rb):\n    return 1 / 0\n\n"
           "def elo(b, n, k=4.0):\n    return np.zeros(n)\n")
    assert _one_line(verdict(ex, path)).endswith(f"ZeroDivisionError: division by zero at {path}:3")
    _write(tmp_path, ex, "def expected(ra, rb):\n    return 0.5\n")
    assert _one_line(verdict(ex, path)) == f"{path} defines no function elo"
    _write(tmp_path, ex, "import nothing_here\n")
    assert "ModuleNotFoundError" in _one_line(verdict(ex, path))


def test_an_endless_loop_is_stopped(tmp_path):
    ex = BY_NAME["elo"]
    path = _write(tmp_path, ex, "def expected(ra, rb):\n    while True:\n        pass\n\n"
                  "def elo(b, n, k=4.0):\n    pass\n")
    assert "ran for more than 0.3 s" in _one_line(verdict(ex, path, time_limit=0.3))


# ---- start and the command line ----------------------------------------------------------------

def test_start_never_writes_over_a_learners_file(tmp_path):
    ex = BY_NAME["top_p"]
    path = write_skeleton(ex, tmp_path)
    path.write_text("# my work\n")
    with pytest.raises(UserError, match="exists already"):
        write_skeleton(ex, tmp_path)
    assert path.read_text() == "# my work\n"


def test_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["exercise", "list"]) == 0
    listing = capsys.readouterr().out
    assert [line.split()[1] for line in listing.splitlines()[1:15]] == NAMES

    assert main(["exercise", "start", "bradley_terry"]) == 0
    path = Path("exercises/bradley_terry/bradley_terry.py")
    assert str(path) in capsys.readouterr().out and path.is_file()
    assert main(["exercise", "list"]) == 0 and "(started)" in capsys.readouterr().out

    assert main(["exercise", "check", "bradley_terry"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL bradley_terry: not written yet") and out.count("\n") == 1

    path.write_text(file_text(BY_NAME["bradley_terry"], solved=True))
    assert main(["exercise", "check", "bradley_terry"]) == 0
    assert capsys.readouterr().out == "PASS bradley_terry\n"

    assert main(["exercise", "start", "bradley_terry"]) == 2                 # kept, said so
    err = capsys.readouterr().err
    assert "exists already" in err and err.count("\n") == 1

    assert main(["exercise", "hint", "elo"]) == 0
    assert BY_NAME["elo"].hint in capsys.readouterr().out
    assert main(["exercise", "solution", "rmsnorm_backward"]) == 0
    out = capsys.readouterr().out
    assert "minillm/nn/layers.py:" in out and "rstd ** 3" in out and "csrc" not in out

    assert main(["exercise", "check", "elo"]) == 2                           # not started
    assert "minillm exercise start elo" in capsys.readouterr().err


def test_an_unknown_name_lists_the_names(capsys):
    assert main(["exercise", "start", "softmax"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no exercise 'softmax'" in err
    assert all(name in err for name in NAMES)


@pytest.mark.parametrize("action", ["list", "start", "check", "hint", "solution"])
def test_every_action_explains_itself(action, capsys):
    with pytest.raises(SystemExit) as done:
        main(["exercise", action, "-h"])
    assert done.value.code == 0
    _, _, rest = capsys.readouterr().out.partition("\n\n")
    assert rest.strip() and not rest.lstrip().startswith(("options:", "positional")), rest[:200]
