"""Checkpoints: a self-contained directory with the model, its tokenizer and training state.

    runs/<name>/base/
      config.json            {"format": "minillm-checkpoint", "version": 1, "model": {GPTConfig},
                              "stage", "step", "tokens_seen", "data", "train", ...}
      model.safetensors      float32 weights, named as in minillm/nn/gpt.py
      tokenizer.json         when the model has a tokenizer (byte-level runs have none)
      optimizer.safetensors  AdamW moments m.<param>, v.<param> (training checkpoints)
      trainer_state.json     step, RNG state, data loader position, optimizer scalars

    save_checkpoint(path, config, params, tokenizer=..., optimizer_state=..., trainer_state=...)
    config, params, meta = load_checkpoint(path)
    optimizer_state, trainer_state = load_training_state(path)

    python -m pytest tests/nn/test_checkpoint.py

Read next: minillm/pretrain/, which trains a model and saves these.
"""
import dataclasses
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from minillm.common import (
    MARKER, Output, UserError, atomic_path, current_umask, glob_escape, read_json, write_json)
from minillm.nn.gpt import GPTConfig, param_shapes

FORMAT, VERSION = "minillm-checkpoint", 1
# every file a checkpoint directory may hold from minillm (pretrain, import, eval, speedrun);
# anything else in it is the user's and survives every save (common.prepare_dir: --force)
OUTPUT = Output("checkpoint", ("config.json", "model.safetensors", "tokenizer.json",
                               "optimizer.safetensors", "trainer_state.json", "evals.json",
                               "samples.json"), meta=(("config.json", FORMAT),))

# safetensors dtype name <-> NumPy dtype (little-endian). BF16 has no NumPy type: it is
# read as uint16 and widened to float32 (a bfloat16 is the high half of a float32).
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8",
           "BOOL": "?"}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items() if k not in ("BF16",)}
_MAX_HEADER = 100 * 1024 * 1024


# ---- safetensors ---------------------------------------------------------------------
# The layout (huggingface/safetensors, written and read here by our own code):
#     8 bytes    N, the header length, unsigned 64-bit little-endian
#     N bytes    JSON: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]},
#                       ..., "__metadata__": {"key": "string value"}}  (space-padded to 8)
#     the rest   raw little-endian tensor bytes; a tensor is bytes [b, e) of this part

def save_safetensors(path, tensors, metadata=None):
    """Write `tensors` (dict name -> array) to `path` in the safetensors layout, atomically.

    metadata: optional dict str -> str, stored as the header's "__metadata__".
    """
    header, offset, arrays = {}, 0, []
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, array in tensors.items():
        array = np.asarray(array, order="C")          # (ascontiguousarray would make 0-d 1-d)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in _NAMES:
            raise ValueError(f"tensor {name}: dtype {array.dtype} has no safetensors name")
        array = array.astype(dtype, copy=False)
        header[name] = {"dtype": _NAMES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
        arrays.append(array)
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)                # data starts 8-byte aligned
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for array in arrays:
                f.write(memoryview(array).cast("B") if array.size else b"")


def read_safetensors_header(path):
    """(header dict without __metadata__, metadata dict, data start offset) of a file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise UserError(f"{path} is truncated (no safetensors header); delete it and re-save")
            (n,) = struct.unpack("<Q", raw)
            if n > min(size - 8, _MAX_HEADER):
                raise UserError(f"{path} is not a safetensors file or is truncated "
                                f"(header length {n}, file size {size})")
            header = json.loads(f.read(n).decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} has a corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise UserError(f"{path} has a corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    _check_layout(path, header, size - 8 - n)
    return header, metadata, 8 + n


def _check_layout(path, header, data_size):
    """Every tensor's bytes lie inside the data part, match its shape, and don't overlap."""
    spans = []
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]])
            shape = [int(d) for d in info["shape"]]
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: tensor {name!r} has a corrupt header entry {info!r}") from None
        if end - begin != dtype.itemsize * int(np.prod(shape, dtype=np.int64)) or begin < 0:
            raise UserError(f"{path}: tensor {name!r} has {end - begin} bytes for shape {shape}")
        if end > data_size:
            raise UserError(f"{path} is truncated: tensor {name!r} ends at byte {end} "
                            f"of a {data_size}-byte data section")
        spans.append((begin, end, name))
    spans.sort()
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise UserError(f"{path}: tensors {a!r} and {b!r} overlap")


def load_safetensors(path, widen=True):
    """Read a safetensors file into a dict name -> writable NumPy array (file order).

    F32 stays float32. BF16 is always widened to float32 (NumPy has no bfloat16): its 16
    bits become the high half of a float32, exactly. F16 is widened to float32 too unless
    widen=False. Integer dtypes keep their type. Metadata: read_safetensors_header().
    """
    header, _, start = read_safetensors_header(path)
    size = max([info["data_offsets"][1] for info in header.values()], default=0)
    # a read-only map of the data part: each tensor is copied out once, and the OS can drop
    # the file's pages again (no second full copy of a large import in memory)
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=start, shape=(size,)) if size else None
    tensors = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]])
        raw = data[begin:end].view(dtype).reshape(info["shape"]) if end > begin else \
            np.zeros(info["shape"], dtype)                          # (shape) from the file
        if info["dtype"] == "BF16":
            array = raw.astype(np.uint32) << 16     # (shape) uint32 bit patterns
            array = array.view(np.float32)
        elif info["dtype"] == "F16" and widen:
            array = raw.astype(np.float32)
        else:
            array = raw.astype(raw.dtype.newbyteorder("="))    # a native, writable copy
        tensors[name] = array
    return tensors


# ---- checkpoint directories ---------------------------------------------------------

def save_checkpoint(path, config, params, *, tokenizer=None, meta=None, optimizer_state=None,
                    trainer_state=None):
    """Write a checkpoint directory at `path`, atomically.

    The files go into a temporary sibling directory, renamed into place only when every
    file is complete. An existing checkpoint is first renamed aside (.<name>.old-*) and
    deleted only after the new one is in place; if the process dies between the two
    renames, load_checkpoint names the complete old copy in its error. Files in the old
    directory that a checkpoint does not write (the user's, evals.json, ...) are moved
    into the new one first, so a save never deletes them.

    config: a GPTConfig (or a dict of its fields). params: dict name -> float32 array.
    tokenizer: an object with .save(path), or a path to a tokenizer.json, or None.
    meta: extra config.json fields (stage, step, tokens_seen, data, train, ...).
    optimizer_state: (tensors, scalars) from AdamW.state(); trainer_state: a JSON-able dict.
    Returns the Path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    doc = {"format": FORMAT, "version": VERSION, "model": model, "stage": "base", "step": 0,
           "tokens_seen": 0}
    doc.update(meta or {})
    _recover_foreign(path)
    tmp, old = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent)), None
    os.chmod(tmp, 0o777 & ~current_umask())                # mkdtemp makes it private (0700)
    try:
        write_json(tmp / MARKER, {"kind": OUTPUT.kind, "version": 1})
        save_safetensors(tmp / "model.safetensors", params, {"format": "pt"})
        if tokenizer is not None:
            if isinstance(tokenizer, (str, os.PathLike)):
                shutil.copyfile(tokenizer, tmp / "tokenizer.json")
            else:
                tokenizer.save(tmp / "tokenizer.json")
        if optimizer_state is not None:
            tensors, scalars = optimizer_state
            save_safetensors(tmp / "optimizer.safetensors", tensors, {"state": json.dumps(scalars)})
        if trainer_state is not None:
            write_json(tmp / "trainer_state.json", trainer_state)
        write_json(tmp / "config.json", doc)        # written last: its presence = complete
        _fsync_dir(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / "ckpt")          # the complete previous checkpoint, kept
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            _move_foreign(old / "ckpt", path)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists() and (old / "ckpt").exists():
            os.replace(old / "ckpt", path)          # interrupted between the renames: undo
            shutil.rmtree(old, ignore_errors=True)
        raise
    return path


def _move_foreign(src, dst):
    """Move every entry of `src` that `dst` does not have (files the save did not write)."""
    for entry in sorted(src.iterdir()):
        if not (dst / entry.name).exists():
            os.replace(entry, dst / entry.name)


def _recover_foreign(path):
    """A save killed after its swap left the old copy in .<name>.old-*/ckpt: once `path`
    is complete again, bring back the files of it the save had not moved yet, then drop it."""
    if not (path / "config.json").is_file():
        return                                  # checkpoint_dir's error names the old copy
    for leftover in path.parent.glob(f".{glob_escape(path.name)}.old-*"):
        if (leftover / "ckpt").is_dir():
            _move_foreign(leftover / "ckpt", path)
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on this platform
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_dir(path):
    """`path` as a Path if it holds a complete checkpoint, else a one-line UserError."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    leftovers = sorted(path.parent.glob(f".{path.name}.old-*/ckpt/config.json"))
    if leftovers:
        raise UserError(f"checkpoint {path} is missing, but a complete earlier one survived an "
                        f"interrupted save at {leftovers[-1].parent}: move it to {path}")
    if path.is_dir():
        raise UserError(f"{path} is not a complete checkpoint (no config.json); delete it and re-save")
    raise UserError(f"checkpoint not found: {path}")


def load_checkpoint(path):
    """(config: GPTConfig, params: dict name -> float32 array, meta: the config.json dict).

    Raises a one-line UserError if the directory is incomplete, a file is corrupt or
    truncated, or the weights do not match the config (names or shapes).
    """
    path = checkpoint_dir(path)
    meta = read_json(path / "config.json", what="checkpoint config")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path / 'config.json'} is not a minillm checkpoint config")
    if meta.get("version") != VERSION:
        raise UserError(f"{path} is checkpoint version {meta.get('version')}; this minillm reads "
                        f"version {VERSION}")
    fields = {f.name for f in dataclasses.fields(GPTConfig)}
    model = meta.get("model") or {}
    unknown = set(model) - fields
    if unknown:
        raise UserError(f"{path}/config.json has unknown model fields {sorted(unknown)}")
    try:
        config = GPTConfig(**model)
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}/config.json: bad model config ({e})") from None
    params = load_safetensors(path / "model.safetensors")
    expected = param_shapes(config)
    if set(params) != set(expected):
        missing, extra = sorted(set(expected) - set(params)), sorted(set(params) - set(expected))
        raise UserError(f"{path}/model.safetensors does not match its config: missing {missing[:5]}, "
                        f"unexpected {extra[:5]}")
    for name, shape in expected.items():
        if params[name].shape != shape or params[name].dtype != np.float32:
            raise UserError(f"{path}/model.safetensors: {name} is {params[name].dtype} "
                            f"{params[name].shape}, the config needs float32 {shape}")
    return config, params, meta


def load_training_state(path):
    """(optimizer_state (tensors, scalars) or None, trainer_state dict or None) of a checkpoint."""
    path = checkpoint_dir(path)
    optimizer_state = trainer_state = None
    if (path / "optimizer.safetensors").exists():
        _, metadata, _ = read_safetensors_header(path / "optimizer.safetensors")
        try:
            scalars = json.loads(metadata["state"])
        except (KeyError, json.JSONDecodeError):
            raise UserError(f"{path}/optimizer.safetensors has no optimizer scalars; it is corrupt") from None
        tensors = load_safetensors(path / "optimizer.safetensors")
        _check_optimizer(path, tensors, scalars)
        optimizer_state = (tensors, scalars)
    if (path / "trainer_state.json").exists():
        trainer_state = read_json(path / "trainer_state.json", what="trainer state")
        _check_trainer_state(path / "trainer_state.json", trainer_state)
    return optimizer_state, trainer_state


def _check_optimizer(path, tensors, scalars):
    """The AdamW moments (m.<param>, v.<param>) must have the shapes of the checkpoint's own
    parameters, and the step count must be a count: else a one-line UserError."""
    where = f"{path}/optimizer.safetensors"
    fix = "delete it (and trainer_state.json) to keep the weights for inference, or re-save"
    t = scalars.get("t") if isinstance(scalars, dict) else None
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise UserError(f"{where} is corrupt: its step count is {t!r}; {fix}")
    meta = read_json(path / "config.json", what="checkpoint config")
    try:
        shapes = param_shapes(GPTConfig(**meta["model"]))
    except (KeyError, TypeError, ValueError):
        return                  # load_checkpoint reports a bad config.json with its own words
    for name, shape in shapes.items():
        for key in (f"m.{name}", f"v.{name}"):
            got = tensors.get(key)
            if got is None or got.shape != shape:
                raise UserError(f"{where} is corrupt: {key} has shape "
                                f"{None if got is None else got.shape}, the model needs {shape}; {fix}")


def _check_trainer_state(path, state):
    """trainer_state.json: a JSON object with a step count and the data loader's position."""
    if not isinstance(state, dict):
        raise UserError(f"{path} is corrupt (not a JSON object); delete the checkpoint's "
                        "optimizer.safetensors and trainer_state.json, or train afresh")
    step = state.get("step", 0)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise UserError(f"{path} is corrupt: step is {step!r}")
    for key in ("loader", "train"):
        if key in state and not isinstance(state[key], dict):
            raise UserError(f"{path} is corrupt: {key!r} is not a JSON object")
    if "loader" not in state:
        raise UserError(f"{path} is corrupt: no \"loader\" position; it cannot be resumed "
                        "(delete it and optimizer.safetensors to keep the weights for inference)")
