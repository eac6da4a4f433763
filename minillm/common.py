"""Small shared utilities: where runs live, atomic writes, one-line user errors.

Everything a stage writes goes through `atomic_write` (or `atomic_path`, `atomic_dir`), so an
interrupted run never leaves a half-written artifact behind: the data goes to a temporary
file in the same directory, is flushed to disk, and is renamed over the target in one step.
"""
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


class UserError(Exception):
    """A mistake the user can fix. The CLI prints its message as one line, no traceback."""


def runs_dir():
    """Root directory of runs: $MINILLM_RUNS, else ./runs."""
    return Path(os.environ.get("MINILLM_RUNS", "runs"))


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


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary directory next to `path`; on success it replaces `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        if path.exists():
            if not path.is_dir():
                raise UserError(f"{path} exists and is not a directory")
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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
    """Append one JSON record as a line (metrics.jsonl). A line is written with one
    write() call, so an interrupted run loses at most the line being written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
