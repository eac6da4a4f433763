"""A learner's workspace: ./exercises/NAME/NAME.py written, read back, checked.

    write_skeleton(ex, "exercises")   -> exercises/NAME/NAME.py (never over an existing file)
    verdict(ex, path)                 -> None (PASS) or one line saying what is wrong
    solution_text(ex)                 -> minillm's own lines, with where they live

The file is the exercise's functions cut from minillm (source.py) under a docstring with the
commands, how the check works, the hint and the shapes. check reads it as a fresh module
(no bytecode cache: an edit a second ago counts), makes sure it defines the functions, then
runs the exercise's check with a time limit. Every way a learner's code can go wrong (a
syntax error, an exception, NotImplementedError, an endless loop) becomes one line naming
the file and line, never a traceback.

Read next: cli.py (`minillm exercise ...`).
"""
import contextlib
import importlib.util
import signal
import sys
import tempfile
import textwrap
import threading
import traceback
import warnings
from pathlib import Path

import numpy as np

from minillm.common import UserError, atomic_write
from minillm.exercises.grading import Wrong
from minillm.exercises.source import cut, imports_for, shapes_legend

TIME_LIMIT = 60.0           # seconds a check may run before it counts as an endless loop


class TimeUp(BaseException):
    """The check ran past its time limit (a BaseException, so `except Exception` in the
    learner's code cannot swallow it)."""


def exercise_file(ex, root):
    return Path(root) / ex.name / f"{ex.name}.py"


def _first_paragraph(doc):
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _wrap(label, text):
    return textwrap.fill(text, 92, initial_indent=label, subsequent_indent="    ")


def file_text(ex, solved=False):
    """The learner's file: the skeleton, or (solved) the same file with minillm's lines."""
    cuts = [cut(f, ex.name) for f in ex.functions]
    names = ", ".join(c.name for c in cuts)
    doc = [f"Exercise {ex.name}: {ex.title} (stage: {ex.stage}).", "",
           textwrap.fill(f"Write the lines that raise NotImplementedError in {names} below: the "
                         "docstrings and the lines kept around them say what comes in and what "
                         "goes out. minillm's own code is in " + ", ".join(c.where for c in cuts)
                         + " (no peeking until you have tried).", 92), "",
           f"    minillm exercise check {ex.name}        PASS, or what is wrong",
           f"    minillm exercise hint {ex.name}         the hint below",
           f"    minillm exercise solution {ex.name}     minillm's own lines", "",
           _wrap("How it is checked: ", _first_paragraph(ex.check.__doc__)), "",
           _wrap("Hint: ", ex.hint)]
    for shapes in shapes_legend(ex.functions):
        doc += ["", _wrap("", shapes)]
    text = '"""' + "\n".join(doc).replace('"""', "'''") + '\n"""\n'
    text += imports_for(ex.functions, cuts) + "\n"
    return text + "".join("\n\n" + c.text(solved) for c in cuts)


def write_skeleton(ex, root):
    """Write the skeleton to root/NAME/NAME.py; a UserError, touching nothing, if it exists."""
    path = exercise_file(ex, root)
    if path.exists():
        raise UserError(f"{path} exists already, so it is left as it is (your work); check it with "
                        f"`minillm exercise check {ex.name}`, or delete it to start over")
    try:
        atomic_write(path, file_text(ex))
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    return path


def solution_text(ex):
    """minillm's own lines for the exercise, as the learner's file would hold them."""
    out = []
    for f in ex.functions:
        c = cut(f, ex.name)
        note = ("; its C fast path is left out: the exercise is the NumPy version" if c.c_path else "")
        out.append(f"# {c.where}  {f.__qualname__}{note}\n{c.text(solved=True)}")
    return "\n\n".join(out)


# ---- check -------------------------------------------------------------------------------------

def _where(exc, path):
    """"exercises/x/x.py:12" for the innermost frame of exc in the learner's file (else the
    innermost frame anywhere)."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if Path(f.filename).resolve() == path.resolve()]
    if mine:
        return f"{path}:{mine[-1].lineno}"
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else str(path)


def _one_line(exc):
    text = str(exc).strip().splitlines()
    text = text[0] if text else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def load(path):
    """The learner's file imported as a fresh module (Python's import machinery, its bytecode
    cached in a throwaway directory so an edit is never hidden by a stale .pyc); Wrong (one
    line) when it cannot be read, does not compile or fails as it is imported."""
    try:
        path.read_bytes()
    except OSError as e:
        raise Wrong(f"cannot read {path}: {e}") from None
    spec = importlib.util.spec_from_file_location(f"minillm_exercise_{path.stem}", str(path))
    module = importlib.util.module_from_spec(spec)
    prefix = sys.pycache_prefix
    with tempfile.TemporaryDirectory() as cache:
        sys.pycache_prefix = cache
        try:
            spec.loader.exec_module(module)
        except SyntaxError as e:
            raise Wrong(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
        except Exception as e:
            raise Wrong(f"{path} fails as it is imported: {_one_line(e)} at {_where(e, path)}") from None
        finally:
            sys.pycache_prefix = prefix
    return module


def _owner(function):
    """The module or class that holds a function under its name (Tokenizer for a method)."""
    module = sys.modules[function.__module__]
    if "." not in function.__qualname__:
        return module
    return next(obj for obj in vars(module).values()
                if isinstance(obj, type) and obj.__dict__.get(function.__name__) is function)


@contextlib.contextmanager
def swapped(ex, mine):
    """The learner's functions in place of minillm's: in the function's module or class, and
    in every minillm module that imported it by name (gpt.py's attention_cached)."""
    patches = []
    for real in ex.functions:
        new, owner = vars(mine).get(real.__name__), _owner(real)
        patches.append((owner, real.__name__, real, new))
        for module in list(sys.modules.values()):
            name = getattr(module, "__name__", None) or ""
            if (name.startswith("minillm.") and not name.startswith("minillm.exercises")
                    and module is not owner and vars(module).get(real.__name__) is real):
                patches.append((module, real.__name__, real, new))
    try:
        for obj, attr, _, new in patches:
            setattr(obj, attr, new)
        yield
    finally:
        for obj, attr, old, _ in reversed(patches):
            setattr(obj, attr, old)


@contextlib.contextmanager
def _time_limit(seconds):
    """TimeUp after `seconds` (SIGALRM; no limit where there is none, or off the main thread)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(signum, frame):
        raise TimeUp

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def verdict(ex, path, time_limit=TIME_LIMIT):
    """None when the learner's file at `path` passes the exercise's check, else one line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no {path}: start the exercise with `minillm exercise start {ex.name}`")
    try:
        mine = load(path)
        for f in ex.functions:
            if not callable(vars(mine).get(f.__name__)):
                return f"{path} defines no function {f.__name__}"
        with _time_limit(time_limit), warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            ex.check(mine, lambda: swapped(ex, mine))
    except Wrong as e:
        return str(e)
    except TimeUp:
        return f"the check ran for more than {time_limit:g} s: an endless loop in your code?"
    except NotImplementedError as e:
        return f"not written yet: NotImplementedError at {_where(e, path)}"
    except RecursionError as e:
        return f"endless recursion (RecursionError) at {_where(e, path)}"
    except Exception as e:
        return f"your code raised {_one_line(e)} at {_where(e, path)}"
    return None
