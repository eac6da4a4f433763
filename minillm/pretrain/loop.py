"""The pretraining loop behind `minillm pretrain` (configuration and flags: minillm/train.py).

    state = setup_run(config)       # data, model, optimizer; restored from a checkpoint on resume
    result = run_training(state)    # steps, evals, metrics.jsonl, checkpoints, Ctrl-C

Run: python -m pytest tests/test_train.py
"""
import contextlib
import dataclasses
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from minillm.common import UserError, append_jsonl, atomic_write


@dataclass
class TrainResult:
    """What a pretraining run did (train() returns it; the CLI prints it)."""
    steps: int                      # completed optimizer steps (including resumed ones)
    tokens_seen: int
    losses: dict                    # step -> train loss, for the steps run in this process
    val_losses: dict                # step -> validation loss
    final_loss: float               # train loss of the last step
    val_loss: float                 # the last validation loss (nan if none)
    wall_time: float                # seconds in this process, setup included
    tokens_per_s: float             # training tokens / training time (no evals, no checkpoints)
    peak_rss_mb: float              # resource.getrusage's peak resident set size
    checkpoint: str                 # the last checkpoint written
    interrupted: bool = False
    skipped_steps: list = field(default_factory=list)
    time_split: dict = field(default_factory=dict)   # seconds: data, forward, backward, optimizer, ...


# ---- setup ------------------------------------------------------------------------------

def setup_run(config):
    """Everything the loop needs, as a namespace: data loaders, model, optimizer, step."""
    from minillm.pretrain.shards import BatchLoader
    from minillm.nn import gpt
    from minillm import clib
    from minillm.nn.optim import AdamW
    from minillm.pretrain.train import MODEL_FLAGS, default_lr

    t_start = time.perf_counter()
    if config.threads:
        clib.set_num_threads(config.threads)
    source, tokenizer, vocab_size = _open_data(config)
    loader = BatchLoader(source, config.batch_size, config.context_len, "train", config.seed,
                         config.val_frac, vocab_size=vocab_size)
    val_loader = BatchLoader(source, config.batch_size, config.context_len, "val", config.seed,
                             config.val_frac, vocab_size=vocab_size)
    overrides = {k: getattr(config, k) for k in MODEL_FLAGS if getattr(config, k) is not None}
    try:
        model = gpt.GPTConfig.from_depth(config.depth, loader.vocab_size, config.context_len,
                                         **overrides)
    except ValueError as e:
        raise UserError(f"bad model shape: {e}") from None
    tokens_per_step = config.batch_size * config.context_len * config.grad_accum
    steps = config.steps or (math.ceil(config.tokens / tokens_per_step) if config.tokens else 1000)
    lr = config.lr or default_lr(model.n_embd)
    s = SimpleNamespace(
        config=config, model=model, loader=loader, val_loader=val_loader, tokenizer=tokenizer,
        total_steps=steps, tokens_per_step=tokens_per_step, lr=lr,
        min_lr=lr / 10 if config.min_lr is None else config.min_lr,
        warmup=min(100, steps // 10) if config.warmup is None else config.warmup,
        step=0, tokens_seen=0, val_losses={}, skipped=[], t_start=t_start,
        out=config.out_dir(), metrics=config.metrics_path())
    if config.resume:
        params, opt_state = _restore(s, config.resume)
    else:
        params, opt_state = gpt.init_params(model, config.seed), None
        _trim_metrics(s.metrics, config.stage, 0)
    s.opt = AdamW(params, betas=config.betas, weight_decay=config.weight_decay)
    if opt_state is not None:
        s.opt.load_state(*opt_state)
    s.params = params
    s.first_step = s.step
    return s


def _open_data(config):
    """(loader source, tokenizer or None, vocab_size or None) for config.data."""
    from minillm.pretrain.shards import is_shard
    from minillm.tokenizer.bpe import Tokenizer

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


def _restore(s, ckpt_dir):
    """Load the trainer state of a checkpoint into s; returns (params, optimizer state)."""
    from minillm.nn.checkpoint import load_checkpoint, load_training_state

    model, params, meta = load_checkpoint(ckpt_dir)
    if model != s.model:
        raise UserError(f"checkpoint {ckpt_dir} holds a different model ({model}) than these "
                        f"settings give ({s.model})")
    opt_state, trainer = load_training_state(ckpt_dir)
    if opt_state is None or trainer is None:
        raise UserError(f"{ckpt_dir} has no optimizer/trainer state; it cannot be resumed "
                        "(it was saved for inference only)")
    s.step, s.tokens_seen = int(trainer["step"]), int(trainer["tokens_seen"])
    s.val_losses = {int(k): v for k, v in trainer.get("val_losses", {}).items()}
    s.skipped = list(trainer.get("skipped_steps", []))
    s.loader.restore(trainer["loader"])
    _trim_metrics(s.metrics, s.config.stage, s.step)
    return params, opt_state


def _trim_metrics(path, stage, step):
    """Drop this stage's metrics lines after `step` (a fresh run: step 0 drops them all), so
    a resumed run's metrics.jsonl reads like an uninterrupted one's."""
    path = Path(path)
    if not path.exists():
        return
    kept = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue                    # a line cut by a crash
            if rec.get("stage") != stage or rec.get("step", 0) <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
    atomic_write(path, "".join(kept))


# ---- the loop ---------------------------------------------------------------------------

def run_training(s):
    """Train from s.step to s.total_steps; returns a TrainResult."""
    from minillm.nn import gpt
    from minillm.nn.optim import SCHEDULES

    cfg = s.config
    sched = SCHEDULES[cfg.schedule]
    kw = dict(lr=s.lr, min_lr=s.min_lr, warmup=s.warmup, total=s.total_steps)
    clock = dict.fromkeys(("data", "forward", "backward", "optimizer", "eval", "checkpoint",
                           "metrics"), 0.0)
    losses, interrupted, checkpoint = {}, False, None
    if s.step >= s.total_steps:
        print(f"nothing to do: {s.out} is at step {s.step} of {s.total_steps} "
              "(pass --steps to train longer)", file=sys.stderr)
        return _finish(s, losses, clock, s.out, False)
    print(f"pretraining {gpt.num_params(s.model) / 1e6:.2f}M parameters ({_shape(s.model)}) on "
          f"{s.loader.n_tokens:,} train tokens ({s.loader.kind}); step {s.step} -> {s.total_steps}, "
          f"{s.tokens_per_step} tokens/step", file=sys.stderr)
    bar = _progress(s, cfg.progress)
    with _stop_on_sigint() as stop:
        while s.step < s.total_steps:
            lr = sched(s.step, **kw)
            loss, report = _one_step(s, lr, clock, gpt)
            s.step += 1
            s.tokens_seen += s.tokens_per_step
            losses[s.step] = loss
            last = s.step == s.total_steps
            _record(s, loss, lr, report, last, bar, clock)
            if (cfg.ckpt_every and s.step % cfg.ckpt_every == 0) or last or stop.is_set():
                with _timed(clock, "checkpoint"):
                    checkpoint = save(s)
            if stop.is_set() and not last:
                interrupted = True
                break
    bar.close()
    return _finish(s, losses, clock, checkpoint, interrupted)


def _record(s, loss, lr, report, last, bar, clock):
    """After a step: the skip report, the validation loss when due, metrics.jsonl, the bar."""
    cfg = s.config
    rec = {"stage": cfg.stage, "step": s.step, "loss": loss, "lr": lr,
           "grad_norm": report.grad_norm, "tokens": s.tokens_seen}
    if report.skipped:
        s.skipped.append(s.step)
        rec["skipped"] = report.reason
        bar.write(f"step {s.step}: skipped ({report.reason}); weights unchanged", file=sys.stderr)
    if (cfg.eval_every and s.step % cfg.eval_every == 0) or last:
        n = cfg.final_eval_batches if last and cfg.final_eval_batches is not None else cfg.eval_batches
        with _timed(clock, "eval"):
            rec["val_loss"] = s.val_losses[s.step] = evaluate(s, n)
        bar.write(f"step {s.step}: train loss {loss:.4f}, val loss {rec['val_loss']:.4f}",
                  file=sys.stderr)
    with _timed(clock, "metrics"):
        if last or "val_loss" in rec or s.step % max(1, cfg.log_every) == 0:
            append_jsonl(s.metrics, rec)
        bar.set_postfix_str(f"loss {loss:.3f}, {_rate(s, clock):,.0f} tok/s", refresh=False)
        bar.update(1)


def _one_step(s, lr, clock, gpt):
    """grad_accum micro-batches of forward + backward, then one AdamW update."""
    total = 0.0
    for _ in range(s.config.grad_accum):
        t0 = time.perf_counter()
        x, y = s.loader.next_batch()
        t1 = time.perf_counter()
        loss, cache = gpt.forward(s.params, s.model, x, y)
        t2 = time.perf_counter()
        s.opt.accumulate(gpt.backward(cache))
        t3 = time.perf_counter()
        del cache
        total += loss
        clock["data"] += t1 - t0
        clock["forward"] += t2 - t1
        clock["backward"] += t3 - t2
    loss = total / s.config.grad_accum
    t = time.perf_counter()
    report = s.opt.step(lr, clip=s.config.clip, loss=loss)
    clock["optimizer"] += time.perf_counter() - t
    return float(loss), report


def evaluate(s, batches=0):
    """Mean validation loss over the first `batches` val batches (0: the whole split);
    always the same batches, so evaluations are comparable."""
    from minillm.nn import gpt

    loader = s.val_loader
    loader.restore(dict(loader.state(), epoch=0, pos=0))
    n = max(1, loader.n_windows // loader.B)
    if batches:
        n = min(batches, n)
    total = 0.0
    for _ in range(n):
        x, y = loader.next_batch()
        loss, _ = gpt.forward(s.params, s.model, x, y, grad=False)
        total += float(loss)
    return total / n


def save(s):
    """Write a training checkpoint (weights, tokenizer, optimizer, loader, config) to s.out."""
    from minillm.nn.checkpoint import save_checkpoint

    cfg = s.config
    trainer = {"step": s.step, "tokens_seen": s.tokens_seen, "loader": s.loader.state(),
               "rng": {"kind": "numpy default_rng([seed, epoch]) per loader epoch",
                       "seed": cfg.seed, "epoch": s.loader.epoch},
               "val_losses": {str(k): v for k, v in s.val_losses.items()},
               "skipped_steps": s.skipped, "train": _jsonable(dataclasses.asdict(cfg))}
    meta = {"stage": cfg.stage, "step": s.step, "tokens_seen": s.tokens_seen,
            "data": dict(s.loader.describe(), source=str(cfg.data)),
            "train": {"lr": s.lr, "min_lr": s.min_lr, "warmup": s.warmup,
                      "total_steps": s.total_steps, "schedule": cfg.schedule,
                      "batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum,
                      "weight_decay": cfg.weight_decay, "clip": cfg.clip, "seed": cfg.seed}}
    if s.val_losses:
        meta["val_loss"] = s.val_losses[max(s.val_losses)]
    return save_checkpoint(s.out, s.model, s.params, tokenizer=s.tokenizer, meta=meta,
                           optimizer_state=s.opt.state(), trainer_state=trainer)


def _finish(s, losses, clock, checkpoint, interrupted):
    wall = time.perf_counter() - s.t_start
    train_time = sum(clock[k] for k in ("data", "forward", "backward", "optimizer"))
    clock["other"] = max(0.0, wall - sum(clock.values()))
    rss = peak_rss_mb()
    result = TrainResult(
        steps=s.step, tokens_seen=s.tokens_seen, losses=losses, val_losses=dict(s.val_losses),
        final_loss=losses[max(losses)] if losses else float("nan"),
        val_loss=s.val_losses[max(s.val_losses)] if s.val_losses else float("nan"),
        wall_time=wall, tokens_per_s=len(losses) * s.tokens_per_step / max(train_time, 1e-9),
        peak_rss_mb=rss, checkpoint=str(checkpoint), interrupted=interrupted,
        skipped_steps=list(s.skipped), time_split=clock)
    _print_summary(s, result)
    return result


def _print_summary(s, r):
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    if r.interrupted:
        say(f"interrupted at step {r.steps}/{s.total_steps}; checkpoint saved to {r.checkpoint}")
        say(f"resume with: minillm pretrain --resume {r.checkpoint}")
    split = ", ".join(f"{k} {v:.1f}s" for k, v in r.time_split.items() if v >= 0.05)
    say(f"step {r.steps}: train loss {r.final_loss:.4f}, val loss {r.val_loss:.4f}; "
        f"{r.tokens_per_s:,.0f} tokens/s; wall {r.wall_time:.1f}s ({split}); "
        f"peak RSS {r.peak_rss_mb:.0f} MB")
    if r.skipped_steps:
        say(f"skipped {len(r.skipped_steps)} non-finite steps: {r.skipped_steps[:10]}")
    say(f"checkpoint: {r.checkpoint}")
    say(f"metrics:    {s.metrics}")


# ---- small helpers ----------------------------------------------------------------------

def peak_rss_mb():
    """This process's peak resident set size in MB.

    subtle: resource.getrusage's ru_maxrss survives fork + exec, so a process started by a
    big parent (the speedrun, a benchmark holding PyTorch) reports at least the parent's
    size. Linux's /proc/self/status VmHWM belongs to this program image only; use it when
    present, else getrusage (nan where neither exists).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024         # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # not Unix
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KB on Linux, bytes on macOS
    return peak / (1 << 20 if sys.platform == "darwin" else 1 << 10)


@contextlib.contextmanager
def _timed(clock, key):
    t = time.perf_counter()
    try:
        yield
    finally:
        clock[key] += time.perf_counter() - t


@contextlib.contextmanager
def _stop_on_sigint():
    """A threading.Event set by the first Ctrl-C; the loop stops at the end of the step.
    The second Ctrl-C raises KeyboardInterrupt as usual. (Main thread only.)"""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nCtrl-C: stopping after this step and writing a checkpoint "
              "(Ctrl-C again to abort without one)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress(s, enabled):
    from tqdm import tqdm
    return tqdm(total=s.total_steps, initial=s.step, unit="step", disable=not enabled,
                dynamic_ncols=True, desc="pretrain", file=sys.stderr)


def _rate(s, clock):
    """Training tokens per second in this process (evals and checkpoints not counted)."""
    t = clock["data"] + clock["forward"] + clock["backward"] + clock["optimizer"]
    return (s.step - s.first_step) * s.tokens_per_step / t if t else 0.0


def _shape(m):
    return (f"{m.n_layer} layers, {m.n_head} heads ({m.n_kv_head} kv), {m.n_embd} wide, "
            f"hidden {m.hidden_dim}, vocab {m.vocab_size}, context {m.context_len}")


def _jsonable(d):
    return json.loads(json.dumps(d, default=str))
