"""Pretraining: the configuration and the Python API behind `minillm pretrain`.

    from minillm.pretrain.train import TrainConfig, train
    result = train(TrainConfig(data="runs/default/shards", steps=100))   # a TrainResult
    result = train(TrainConfig(resume="runs/default/base"))             # continue exactly

train() builds a TrainState (setup_state: the data loaders, the model, AdamW; on resume
the weights, the optimizer's moments and the loader's position from the checkpoint) and
hands it to loop.py's train_loop. A resumed run repeats the uninterrupted run's losses bit
for bit on the same machine and thread count: the checkpoint holds everything that
changes, and the only randomness is the initialisation and the loader's order, both drawn
from the seed.

Read next: loop.py (the loop), then shards.py (the data). The flags: cli.py.
Run: python -m pytest tests/pretrain/test_train.py
"""
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minillm import clib
from minillm.common import UserError, atomic_write, read_json, runs_dir
from minillm.nn import gpt
from minillm.nn.checkpoint import checkpoint_dir, load_checkpoint, load_training_state
from minillm.nn.optim import AdamW
from minillm.pretrain import dist
from minillm.pretrain.loop import TrainState, train_loop
from minillm.pretrain.shards import BatchLoader, is_shard
from minillm.tokenizer.bpe import Tokenizer

MODEL_FLAGS = ("n_layer", "n_head", "n_kv_head", "n_embd", "hidden_dim", "tie_embeddings")
# what --resume may change; every other setting must match the checkpoint's
RESUME_MAY_CHANGE = {"steps", "tokens", "eval_every", "eval_batches", "final_eval_batches", "ckpt_every", "log_every",
                     "sample_prompt", "threads", "progress", "out", "metrics", "resume", "data", "tokenizer",
                     "check_every"}


@dataclass
class TrainConfig:
    """Everything a pretraining run needs; None means "derive a default" (see setup_state)."""
    data: str = None                 # a token-shard directory / shard file, or a text file (bytes)
    out: str = None                  # checkpoint directory (default runs/<name>/base)
    name: str = "default"            # run name for the default out directory
    tokenizer: str = None            # tokenizer.json: encodes a text file; copied into checkpoints
    depth: int = 6                   # the size dial: GPTConfig.from_depth
    n_layer: int = None              # explicit overrides of the depth dial
    n_head: int = None
    n_kv_head: int = None
    n_embd: int = None
    hidden_dim: int = None
    tie_embeddings: bool = None
    batch_size: int = 8              # sequences per micro-batch, over all ranks (mpirun -np R)
    context_len: int = 256
    steps: int = None                # optimizer steps (default 1000, or from `tokens`)
    tokens: int = None               # token budget: steps = ceil(tokens / tokens per step)
    grad_accum: int = 1              # micro-batches per step
    lr: float = None                 # peak learning rate (default: default_lr(model))
    min_lr: float = None             # final learning rate (default lr / 10)
    warmup: int = None               # warmup steps (default min(100, steps // 10))
    schedule: str = "cosine"         # "cosine" or "wsd" (warmup-stable-decay)
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.95)
    clip: float = 1.0                # max global gradient norm (0: no clipping)
    val_frac: float = 0.1            # the last 10% of the tokens are the validation split
    eval_every: int = 250            # steps between validation losses (0: only at the end)
    eval_batches: int = 20           # batches per validation loss (0: the whole split)
    final_eval_batches: int = None   # batches for the final validation loss (default
                                     # eval_batches; 0: the whole validation split)
    sample_prompt: str = None        # at every evaluation, print and log a short sample of
                                     # this prompt's continuation (gibberish turning into text)
    ckpt_every: int = 1000           # steps between checkpoints (0: only at the end)
    log_every: int = 1               # steps between metrics.jsonl lines
    check_every: int = dist.CHECK_EVERY   # mpirun: steps between checks that every rank holds the
                                     # same weights (0: at the start and the end only)
    seed: int = 0
    threads: int = None              # C kernel + optimizer threads (default: all cores)
    metrics: str = None              # default: <out>/../metrics.jsonl
    resume: str = None               # a checkpoint directory to continue from
    progress: bool = True            # show the tqdm bar
    stage: str = "base"

    def out_dir(self):
        return Path(self.out) if self.out else runs_dir() / self.name / "base"

    def metrics_path(self):
        return Path(self.metrics) if self.metrics else self.out_dir().parent / "metrics.jsonl"


def default_lr(n_embd):
    """Peak AdamW learning rate for a width: 1e-3 at n_embd 128 (nanoGPT's CPU recipe),
    scaled by 1/sqrt(width) above it (wider matrices take smaller steps)."""
    return 1e-3 * math.sqrt(128 / max(128, n_embd))


def train(config):
    """Run (or resume) pretraining; returns a TrainResult. Raises UserError on bad input.
    Under `mpirun -np R` every rank calls it and they train one model (dist.py)."""
    world = dist.connect()
    return dist.run_ranks(world, _train, config, world)


def _train(config, world):
    state, error = None, None
    try:                                    # every rank meets a bad setting alike: say it once
        if config.resume:
            config = resume_config(config.resume, config)
        state = setup_state(config, world)
    except UserError as e:
        error = e
    dist.agree(world, error)
    return train_loop(state)


def resume_config(ckpt_dir, requested):
    """The TrainConfig a checkpoint was trained with, updated by `requested`'s fields in
    RESUME_MAY_CHANGE; any other field of `requested` that is set and differs is an error."""
    state_file = checkpoint_dir(ckpt_dir) / "trainer_state.json"
    trainer_state = read_json(state_file, what="trainer state") if state_file.exists() else None
    if not trainer_state or "train" not in trainer_state:
        raise UserError(f"{ckpt_dir} has no trainer state (not a pretraining checkpoint); cannot resume")
    saved = config_from_dict(TrainConfig, trainer_state["train"])
    base = TrainConfig()
    changes = {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(requested, f.name)
        if f.name in RESUME_MAY_CHANGE:
            if value != getattr(base, f.name):
                changes[f.name] = value
        elif value != getattr(base, f.name) and value != getattr(saved, f.name):
            raise UserError(f"--{f.name.replace('_', '-')} {value} differs from the checkpoint's "
                            f"{getattr(saved, f.name)}; a resumed run keeps its settings")
    changes["resume"] = str(ckpt_dir)
    if "out" not in changes:
        changes["out"] = str(ckpt_dir)
    return dataclasses.replace(saved, **changes)


def config_from_dict(cls, d):
    """A config dataclass `cls` (TrainConfig, SFTConfig) from a checkpoint's saved settings:
    unknown keys dropped, JSON's lists back to tuples where the dataclass has them."""
    names = {f.name for f in dataclasses.fields(cls)}
    d = {k: v for k, v in d.items() if k in names}
    if isinstance(d.get("betas"), list):
        d["betas"] = tuple(d["betas"])
    return cls(**d)




# ---- setup: the TrainState of a fresh or resumed run ---------------------------------------

def check_numbers(config):
    """A one-line UserError for a setting no run can use (0 steps, a NaN learning rate, ...)."""
    for name in ("steps", "tokens", "batch_size", "context_len", "grad_accum"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    for name in ("lr", "min_lr", "weight_decay", "clip"):
        value = getattr(config, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number >= 0, not {value}")
    if config.lr is not None and config.lr == 0:
        raise UserError("--lr must be above 0")
    if not all(math.isfinite(b) and 0 <= b < 1 for b in config.betas):
        raise UserError(f"--beta1 and --beta2 must be in [0, 1), not {config.betas}")


def setup_state(config, world=dist.World()):
    """Data loaders, model, optimizer and step: a fresh run, or one restored from config.resume.
    world: the data-parallel ranks (dist.py); each loader then reads this rank's slice."""
    check_numbers(config)
    t_start = time.perf_counter()
    threads = config.threads or dist.default_threads(world)
    if threads:
        clib.set_num_threads(threads)
    source, tokenizer, vocab_size = _open_data(config)
    shard = {"vocab_size": vocab_size, "rank": world.rank, "ranks": world.size}
    loader = BatchLoader(source, config.batch_size, config.context_len, "train", config.seed,
                         config.val_frac, **shard)
    val_loader = BatchLoader(source, config.batch_size, config.context_len, "val", config.seed,
                             config.val_frac, **shard)
    overrides = {k: getattr(config, k) for k in MODEL_FLAGS if getattr(config, k) is not None}
    try:
        model = gpt.GPTConfig.from_depth(config.depth, loader.vocab_size, config.context_len,
                                         **overrides)
    except ValueError as e:
        raise UserError(f"bad model shape: {e}") from None
    tokens_per_step = config.batch_size * config.context_len * config.grad_accum
    if config.steps is not None:
        steps = config.steps
    else:
        steps = math.ceil(config.tokens / tokens_per_step) if config.tokens is not None else 1000
    lr = default_lr(model.n_embd) if config.lr is None else config.lr
    if config.resume:
        params, opt_state, trainer = _restore(config.resume, model, loader)
    else:
        params, opt_state, trainer = gpt.init_params(model, config.seed), None, {}
    optimizer = AdamW(params, betas=config.betas, weight_decay=config.weight_decay,
                      extra=dist.EXTRA_SLOTS if world.size > 1 else 0)
    if opt_state is not None:
        optimizer.load_state(*opt_state)
    step = int(trainer.get("step", 0))
    if world.root:
        _trim_metrics(config.metrics_path(), config.stage, step)
    return TrainState(
        config=config, model=model, params=params, optimizer=optimizer, loader=loader, world=world,
        val_loader=val_loader, tokenizer=tokenizer, total_steps=steps,
        tokens_per_step=tokens_per_step, lr=lr,
        min_lr=lr / 10 if config.min_lr is None else config.min_lr,
        warmup=min(100, steps // 10) if config.warmup is None else config.warmup,
        out=config.out_dir(), metrics=config.metrics_path(), step=step,
        tokens_seen=int(trainer.get("tokens_seen", 0)),
        val_losses={int(k): v for k, v in trainer.get("val_losses", {}).items()},
        skipped=list(trainer.get("skipped_steps", [])), first_step=step, t_start=t_start)


def _open_data(config):
    """(loader source, tokenizer or None, vocab_size or None) for config.data."""
    if not config.data:
        raise UserError("no training data: pass --data (a token-shard directory or a text file)")
    path = Path(config.data)
    if not path.exists():
        raise UserError(f"data not found: {path}")
    tok_path = Path(config.tokenizer) if config.tokenizer else None
    if tok_path is None and path.is_dir() and (path.parent / "tokenizer.json").exists():
        tok_path = path.parent / "tokenizer.json"
    tokenizer = Tokenizer.load(tok_path) if tok_path else None     # a missing file: UserError
    if path.is_file() and not is_shard(path) and tokenizer is not None:
        ids = tokenizer.encode_ordinary(path.read_text(encoding="utf-8", errors="replace"))
        return np.asarray(ids, dtype=np.int32), tokenizer, tokenizer.vocab_size
    return path, tokenizer, (tokenizer.vocab_size if tokenizer is not None else None)


def _restore(ckpt_dir, model, loader):
    """(params, optimizer state, trainer state) of a checkpoint; moves `loader` to its position."""
    saved_model, params, _ = load_checkpoint(ckpt_dir)
    if saved_model != model:
        raise UserError(f"checkpoint {ckpt_dir} holds a different model ({saved_model}) than these "
                        f"settings give ({model})")
    opt_state, trainer = load_training_state(ckpt_dir)
    if opt_state is None or trainer is None:
        raise UserError(f"{ckpt_dir} has no optimizer/trainer state; it cannot be resumed "
                        "(it was saved for inference only)")
    loader.restore(trainer["loader"])
    return params, opt_state, trainer


def _trim_metrics(path, stage, step):
    """Drop this stage's metrics lines after `step` (a fresh run: step 0 drops them all), so
    a resumed run's metrics.jsonl reads like an uninterrupted one's."""
    path = Path(path)
    if not path.exists():
        return
    kept = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read the metrics file {path} ({e}); choose another --metrics") from None
    for k, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict):
            if not line.strip() or k == len(lines) - 1 and not line.endswith("\n"):
                continue                    # a line cut by a crash
            # subtle: rewriting would drop this line; it is not ours to drop
            raise UserError(f"{path} is not a minillm metrics file (line {k + 1} is not a JSON "
                            "record); choose another --metrics")
        if rec.get("stage") != stage or rec.get("step", 0) <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    atomic_write(path, "".join(kept))
