"""Small shared utilities: where runs live, atomic writes, safe outputs, one-line user errors.

Everything a stage writes goes through `atomic_write` (or `atomic_path`), so an
interrupted run never leaves a half-written artifact behind: the data goes to a temporary
file in the same directory, is flushed to disk, and is renamed over the target in one step.

Before writing, a command checks its output path (`prepare_dir`, `prepare_file`): a missing
path is created; a directory holding an earlier output of the same kind (its `.minillm.json`
marker {kind, version}, or the output's own metadata file) is resumed, or with --force
replaced (only the files matching the kind's patterns are removed); anything else (a
directory of unknown files, a file where a directory goes, the command's own input) is a
one-line UserError. minillm never deletes a file it did not write. Temporary files a kill
left behind (minillm's own names only) are removed by the next run.

Flag values are checked where they enter: argparse types with ranges (positive_int,
fraction, thread_count, ...), and check_memory refuses a size this machine cannot hold.
"""
import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class UserError(Exception):
    """A mistake the user can fix. The CLI prints its message as one line, no traceback."""


def runs_dir():
    """Root directory of runs: $MINILLM_RUNS, else ./runs (a file there is a UserError)."""
    root = Path(os.environ.get("MINILLM_RUNS", "runs"))
    if root.exists() and not root.is_dir():
        where = "MINILLM_RUNS" if "MINILLM_RUNS" in os.environ else "./runs"
        raise UserError(f"{where} ({root}) is a file, not a directory: runs go into a directory; "
                        "set MINILLM_RUNS to one or move the file")
    return root


def num_cores():
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def data_path(*parts):
    """Path of a checked-in data file: minillm/_data when installed, ./data in a source checkout."""
    here = Path(__file__).resolve().parent
    # installed copy first: next to an installed package, ../data could be anything
    for root in (here / "_data", here.parent / "data"):
        if root.is_dir():
            return root.joinpath(*parts)
    raise UserError("minillm's data files are missing; reinstall minillm (pip install .)")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; on success rename it to `path`.

    For writers that want a file name (np.save, gzip.open, ...). On an exception the
    temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())  # subtle: mkstemp makes 0600; give the usual mode
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def current_umask():
    """The process umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data):
    """Write bytes or str to `path` atomically."""
    mode = "wb" if isinstance(data, (bytes, bytearray, memoryview)) else "w"
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)


def write_json(path, obj):
    """Write `obj` as indented JSON, atomically."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path, what="file"):
    """Read a JSON file, turning a missing or corrupt file into a one-line UserError."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not valid JSON ({e}); delete it or rerun the stage that writes it") from None


def append_jsonl(path, record):
    """Append one JSON record as a line (metrics.jsonl), stamped with the time it was
    written ("time": UTC, ISO 8601, seconds). A line is written with one write() call, so
    an interrupted run loses at most the line being written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = {**record, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(stamped) + "\n")


# ---- flag values: argparse types with ranges -------------------------------------------
# A `type=` callable that raises ValueError makes argparse print one line,
# "argument --depth: invalid <its __name__> value: '0'", and exit 2; so each type below is
# named after what it accepts. (Only cli.py modules import argparse.)

MAX_THREADS = 512                 # kernel threads: far above any CPU we run on; OpenMP
                                  # itself segfaulted when asked for 100000


def _number(text, kind):
    value = kind(text)            # ValueError for "abc"
    if kind is float and not math.isfinite(value):
        raise ValueError(f"not finite: {text}")
    return value


def int_range(low, high=None, name=None):
    """argparse type: an integer in [low, high] (high None: no upper bound)."""
    def parse(text):
        value = _number(text, int)
        if value < low or (high is not None and value > high):
            raise ValueError(f"out of range: {text}")
        return value
    parse.__name__ = name or (f"integer >= {low}" if high is None else f"integer in {low}..{high}")
    return parse


def float_range(low, high=None, low_open=False, name=None):
    """argparse type: a finite float >= low (> low when low_open), <= high (None: unbounded)."""
    def parse(text):
        value = _number(text, float)
        if value < low or (low_open and value == low) or (high is not None and value > high):
            raise ValueError(f"out of range: {text}")
        return value
    lower = f"> {low:g}" if low_open else f">= {low:g}"
    parse.__name__ = name or ("finite number " + lower + ("" if high is None else f" and <= {high:g}"))
    return parse


positive_int = int_range(1, name="positive integer")          # sizes, counts, steps
non_negative_int = int_range(0, name="non-negative integer")  # seeds, "0 = off"
positive_float = float_range(0.0, low_open=True, name="positive number")  # rates, timeouts
non_negative_float = float_range(0.0, name="non-negative number")  # weight decay, temperature
fraction = float_range(0.0, 1.0, name="fraction (0..1)")      # probabilities, shares
thread_count = int_range(1, MAX_THREADS, name=f"thread count (1..{MAX_THREADS})")


def parse_threads(text, source="MINILLM_THREADS"):
    """A thread count from the environment: an int in 1..MAX_THREADS, else a UserError."""
    try:
        return thread_count(text)
    except ValueError:
        raise UserError(f"{source}={text!r} is not a thread count (an integer in "
                        f"1..{MAX_THREADS}); unset it or change it") from None


def memory_bytes():
    """Physical memory of this machine in bytes (None where unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(need, what, fix):
    """Raise a UserError when `need` bytes would not fit in this machine's memory."""
    total = memory_bytes()
    if total and need > total:
        raise UserError(f"{what} needs about {need / 2**30:.1f} GiB but this machine has "
                        f"{total / 2**30:.1f} GiB; {fix}")


# ---- outputs: what may be written where ----------------------------------------------

MARKER = ".minillm.json"          # {"kind": ..., "version": 1} in every output directory
FORCE = "--force"                 # the one flag that replaces an earlier output
FORCE_HELP = ("replace an earlier output of this command (only the files minillm wrote are "
              "removed), or write into a non-empty directory (its files are kept)")
# minillm's own temporary names, and nothing else: atomic_path's mkstemp files
# (.<name>.<8 chars>.tmp) and save_checkpoint's mkdtemp directories
# (.<name>.tmp-<8 chars>); mkstemp draws the 8 characters from [a-z0-9_]
_TEMP = re.compile(r"^\..+\.(?:[a-z0-9_]{8}\.tmp|tmp-[a-z0-9_]{8})$")


@dataclass(frozen=True)
class Output:
    """What one command writes into its output directory.

    kind:  its name in the marker ("world", "crawl", "checkpoint", ...)
    files: glob patterns, relative to the directory, of every file it writes: what --force
           removes, and what must not already be there in a directory of unknown files
    meta:  (glob pattern, tag) pairs that identify an earlier output written without a
           marker (older minillm, or the Python API): a matching file whose JSON has that
           "format" tag (a str), or those keys (a tuple), or any matching file (None)
    """
    kind: str
    files: tuple
    meta: tuple = ()


def is_temp_name(name):
    """True for the names of minillm's own temporary files and directories."""
    return bool(_TEMP.match(name))


def output_kind(path):
    """The kind in `path`'s marker, or None."""
    marker = Path(path) / MARKER
    if not marker.is_file():
        return None
    try:
        d = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d.get("kind") if isinstance(d, dict) else None


def holds_output(path, output):
    """True if directory `path` holds an earlier `output` (its marker, or its own metadata)."""
    path = Path(path)
    if output_kind(path) == output.kind:
        return True
    for pattern, tag in output.meta:
        for found in path.glob(pattern):
            if tag is None:
                return True
            try:
                d = json.loads(found.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(d, dict):
                continue
            if d.get("format") == tag if isinstance(tag, str) else set(tag) <= set(d):
                return True
    return False


def prepare_dir(path, output, *, force=False, resume=True, inputs=None, resume_flag=None,
                out_flag="--out"):
    """Check output directory `path` before `output` is written there, then claim it.

    Returns "new" (missing, empty, or a non-empty directory of other files with --force:
    they are kept), "resume" (an earlier output of this kind, resume=True) or "replace"
    (an earlier output with --force: its files are removed first). Left-over temporary
    files of a killed run are removed. inputs: {flag: path} of the command's inputs, which
    (or (flag, path) pairs) may be neither `path` nor inside it. out_flag: the flag that
    chose `path`, for the messages. Anything else raises a one-line UserError.
    """
    path = Path(path)
    check_inputs(path, inputs, out_flag)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a directory; choose another {out_flag} "
                        "(minillm does not replace a file with a directory)")
    theirs = output_kind(path)
    if theirs is not None and theirs != output.kind:
        raise UserError(f"{path} holds minillm's {theirs} output, not {output.kind} output; "
                        f"choose another {out_flag}")
    names = {p.name for p in path.iterdir() if not is_temp_name(p.name)} if path.is_dir() else set()
    # subtle: a directory holding only our marker was claimed by a run that stopped before
    # writing anything (e.g. refused its data): nothing to resume, so it counts as empty
    if names != {MARKER} and holds_output(path, output):
        remove_temp_files(path, output)
        if force:
            remove_output(path, output)
            state = "replace"
        elif resume:
            state = "resume"
        else:
            again = f"pass {resume_flag} to continue it or " if resume_flag else "pass "
            raise UserError(f"{path} holds an earlier {output.kind}; {again}{FORCE} to replace it "
                            "(files minillm did not write are kept)")
    else:
        entries = sorted(names - {MARKER})
        if entries and not force:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise UserError(f"{path} is a non-empty directory minillm did not write (holds {shown}); "
                            f"pass {FORCE} to write into it (its files are kept) or choose another "
                            f"{out_flag}")
        clash = output_files(path, output)
        if clash:
            raise UserError(f"{clash[0]} was not written by minillm; move it away or choose another "
                            f"{out_flag} (even {FORCE} keeps files minillm did not write)")
        remove_temp_files(path, output)
        state = "new"
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / MARKER, {"kind": output.kind, "version": 1})
    return state


def prepare_file(path, *, force=False, inputs=None):
    """Check output file `path` before it is written: a missing file is fine (its folder
    is made), an existing one is replaced only with --force (nothing beside it is
    touched), a directory or one of the command's inputs never. Left-over temporary
    copies of `path` from a killed run are removed."""
    path = Path(path)
    check_inputs(path, inputs)
    if path.is_dir():
        raise UserError(f"{path} is a directory; --out must name a file")
    if path.exists() and not force:
        raise UserError(f"{path} already exists ({_describe_file(path)}); pass {FORCE} to replace "
                        "it or choose another --out")
    if path.parent.exists() and not path.parent.is_dir():
        raise UserError(f"{path.parent} is a file, not a directory; choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in path.parent.glob(f".{glob_escape(path.name)}.*"):
        if is_temp_name(p.name) and p.is_file():
            p.unlink()
    return "replace" if path.exists() else "new"


def check_inputs(out, inputs, out_flag="--out"):
    """A one-line UserError if output `out` is one of `inputs` ({flag: path}) or holds one."""
    out = Path(out).resolve()
    pairs = inputs.items() if isinstance(inputs, dict) else (inputs or ())
    for flag, src in pairs:
        if src is None:
            continue
        src = Path(src).resolve()
        if src == out:
            raise UserError(f"{out_flag} {out} is the input {flag}; choose another {out_flag}")
        if out in src.parents:
            raise UserError(f"the input {flag} {src} is inside {out_flag} {out}; choose another {out_flag}")


def glob_escape(name):
    """`name` with glob's special characters bracketed, for Path.glob."""
    return re.sub(r"([*?[])", r"[\1]", name)


def output_files(path, output):
    """The files in `path` matching `output`'s patterns (the marker excluded)."""
    path = Path(path)
    if not path.is_dir():
        return []
    found = set()
    for pattern in output.files:
        found.update(p for p in path.glob(pattern) if p.is_file() or p.is_symlink())
    return sorted(found)


def remove_output(path, output):
    """Delete an earlier output's files (its patterns only; other files stay) and the
    sub-directories they leave empty."""
    path = Path(path)
    remove_temp_files(path, output)
    for p in output_files(path, output):
        p.unlink()
    for sub in sorted(_subdirs(path, output), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):    # not empty: a file minillm did not write
            sub.rmdir()


def remove_temp_files(path, output=None):
    """Delete the temporary files and directories a killed run left in `path`, in the
    sub-directories `output` writes, and temporary copies of `path` itself beside it."""
    path = Path(path)
    dirs = [path] + (_subdirs(path, output) if output else [])
    victims = [p for d in dirs if d.is_dir() for p in d.iterdir() if is_temp_name(p.name)]
    if path.parent.is_dir():
        victims += [p for p in path.parent.glob(f".{glob_escape(path.name)}.tmp-*")
                    if is_temp_name(p.name)]
    for p in victims:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return victims


def _subdirs(path, output):
    subs = {Path(pattern).parent for pattern in output.files if "/" in pattern}
    return [path / s for s in sorted(subs)]


def _describe_file(path):
    """What an existing file is, for a message: "a GGUF file", "a minillm-tokenizer file"."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        small = Path(path).stat().st_size < (16 << 20)
    except OSError:
        return "a file"
    if head.startswith(b"GGUF"):
        return "a GGUF file"
    try:
        is_json = small and head.lstrip().startswith(b"{")
        d = json.loads(Path(path).read_text(encoding="utf-8")) if is_json else None
    except (OSError, ValueError):
        d = None
    if isinstance(d, dict) and isinstance(d.get("format"), str):
        return f"a {d['format']} file"
    return "a file"
