"""Pretraining: the loop that turns a token stream into a base model.

    minillm pretrain --data runs/default/shards --depth 6 --steps 2000
    minillm pretrain --data ../shared/data/text/tinyshakespeare.txt --n-layer 4 --n-head 4 \\
        --n-embd 128 --context-len 64 --batch-size 12 --steps 2000 --lr 1e-3 --min-lr 1e-4
    minillm pretrain --resume runs/default/base        # continue an interrupted run exactly

    from minillm.pretrain.train import TrainConfig, train       # the Python API (speedrun uses it)
    result = train(TrainConfig(data="...", steps=100))

One step: for each of grad_accum micro-batches, forward + backward and add the gradients
into the optimizer's flat buffer; then one AdamW update (clipping, the non-finite guard and
the LR schedule live in minillm/nn/optim.py). Every step appends a line to metrics.jsonl;
every eval_every steps the validation loss is measured; every ckpt_every steps and at the
end a checkpoint is written. Ctrl-C stops at the end of the current step, writes a
checkpoint and says how to resume (a second Ctrl-C aborts at once).

Exact resume: the checkpoint holds the weights, AdamW's moments and step count, the data
loader's (epoch, position) and the full TrainConfig. There is no dropout, so the only
randomness is the initialisation (seed) and the loader's order (derived from seed and
epoch): a resumed run repeats the uninterrupted run's losses bit for bit on the same machine
and thread count (tests/test_train.py checks it).

Run: python -m pytest tests/test_train.py
"""
import argparse
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from minillm.common import UserError, read_json, runs_dir
from minillm.pretrain.loop import TrainResult, run_training, setup_run

__all__ = ["TrainConfig", "TrainResult", "train", "add_arguments", "run", "default_lr"]

MODEL_FLAGS = ("n_layer", "n_head", "n_kv_head", "n_embd", "hidden_dim", "tie_embeddings")
# what --resume may change; every other setting must match the checkpoint's
RESUME_MAY_CHANGE = {"steps", "tokens", "eval_every", "eval_batches", "final_eval_batches", "ckpt_every", "log_every",
                     "threads", "progress", "out", "metrics", "resume", "data", "tokenizer"}


@dataclass
class TrainConfig:
    """Everything a pretraining run needs; None means "derive a default" (see resolved())."""
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
    batch_size: int = 8
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
    ckpt_every: int = 1000           # steps between checkpoints (0: only at the end)
    log_every: int = 1               # steps between metrics.jsonl lines
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
    """Run (or resume) pretraining; returns a TrainResult. Raises UserError on bad input."""
    if config.resume:
        config = resume_config(config.resume, config)
    run_state = setup_run(config)
    return run_training(run_state)


def resume_config(ckpt_dir, requested):
    """The TrainConfig a checkpoint was trained with, updated by `requested`'s fields in
    RESUME_MAY_CHANGE; any other field of `requested` that is set and differs is an error."""
    from minillm.nn.checkpoint import checkpoint_dir

    state_file = checkpoint_dir(ckpt_dir) / "trainer_state.json"
    trainer_state = read_json(state_file, what="trainer state") if state_file.exists() else None
    if not trainer_state or "train" not in trainer_state:
        raise UserError(f"{ckpt_dir} has no trainer state (not a pretraining checkpoint); cannot resume")
    saved = _config_from_dict(trainer_state["train"])
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


def _config_from_dict(d):
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    d = {k: v for k, v in d.items() if k in names}
    if isinstance(d.get("betas"), list):
        d["betas"] = tuple(d["betas"])
    return TrainConfig(**d)


# ---- the command line ------------------------------------------------------------------

def add_arguments(parser):
    """`minillm pretrain` flags. Unset flags stay None so --resume can tell them apart."""
    a = parser.add_argument
    a("--data", help="token-shard directory (minillm tokenizer ...) or a text file (byte-level)")
    a("--tokenizer", help="tokenizer.json: encode a text file with it; copied into checkpoints "
      "(default: <data>/../tokenizer.json for shards when present)")
    a("--name", help="run name: outputs go to runs/<name>/ (default: default)")
    a("--out", help="checkpoint directory (default: runs/<name>/base)")
    a("--resume", nargs="?", const=True, help="continue from a checkpoint (default: --out's)")
    g = parser.add_argument_group("model size")
    g.add_argument("--depth", type=int, help="the size dial: layers; width, heads follow (default 6)")
    g.add_argument("--n-layer", type=int)
    g.add_argument("--n-head", type=int)
    g.add_argument("--n-kv-head", type=int, help="key/value heads (grouped-query attention)")
    g.add_argument("--n-embd", type=int)
    g.add_argument("--hidden-dim", type=int, help="SwiGLU inner size")
    g.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction,
                   help="share tok_emb and the LM head")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, help="sequences per micro-batch (default 8)")
    g.add_argument("--context-len", type=int, help="tokens per sequence (default 256)")
    g.add_argument("--steps", type=int, help="optimizer steps (default 1000)")
    g.add_argument("--tokens", type=float, help="token budget instead of --steps (e.g. 2e7)")
    g.add_argument("--grad-accum", type=int, help="micro-batches per step (default 1)")
    g.add_argument("--lr", type=float, help="peak learning rate (default: by width, 1e-3 at 128)")
    g.add_argument("--min-lr", type=float, help="final learning rate (default lr/10)")
    g.add_argument("--warmup", type=int, help="warmup steps (default min(100, steps/10))")
    g.add_argument("--schedule", choices=["cosine", "wsd"], help="LR schedule (default cosine)")
    g.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay (default 0.1)")
    g.add_argument("--beta1", type=float, help="AdamW beta1 (default 0.9)")
    g.add_argument("--beta2", type=float, help="AdamW beta2 (default 0.95; nanoGPT's tiny runs use 0.99)")
    g.add_argument("--clip", type=float, help="max global gradient norm, 0 = off (default 1.0)")
    g.add_argument("--seed", type=int, help="initialisation and data order (default 0)")
    g = parser.add_argument_group("bookkeeping")
    g.add_argument("--eval-every", type=int, help="steps between validation losses (default 250)")
    g.add_argument("--eval-batches", type=int, help="batches per validation loss (default 20)")
    g.add_argument("--final-eval-batches", type=int,
                   help="batches for the last validation loss, 0 = whole split (default: --eval-batches)")
    g.add_argument("--ckpt-every", type=int, help="steps between checkpoints (default 1000)")
    g.add_argument("--log-every", type=int, help="steps between metrics.jsonl lines (default 1)")
    g.add_argument("--metrics", help="metrics file (default runs/<name>/metrics.jsonl)")
    g.add_argument("--threads", type=int, help="threads for kernels and optimizer (default all cores)")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar")


def run(args):
    """`minillm pretrain`: build a TrainConfig from the flags and train."""
    given = {k: v for k, v in vars(args).items() if v is not None and k != "resume"}
    beta1, beta2 = given.pop("beta1", None), given.pop("beta2", None)
    if beta1 is not None or beta2 is not None:
        default = TrainConfig().betas
        given["betas"] = (default[0] if beta1 is None else beta1, default[1] if beta2 is None else beta2)
    if "tokens" in given:
        given["tokens"] = int(given["tokens"])
    config = TrainConfig(**given)
    if args.resume is not None:
        config.resume = str(config.out_dir() if args.resume is True else Path(args.resume))
    elif config.data is None:
        raise UserError("--data is required: a token-shard directory or a text file")
    result = train(config)
    return 130 if result.interrupted else 0


def losses_from_metrics(path, stage="base"):
    """{step: loss} of one stage in a metrics.jsonl (tests and reports use it)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("stage") == stage and "loss" in rec:
                out[rec["step"]] = rec["loss"]
    return out

