"""The pretraining loop: one function, train_loop(state), read top to bottom.

    state = setup_state(config)      # train.py: data, model, optimizer (restored on --resume)
    result = train_loop(state)       # steps, evals, metrics.jsonl, checkpoints, Ctrl-C

TrainState holds everything the loop reads and changes, field by field. One step: for each
of grad_accum micro-batches, forward + backward and add the gradients into the optimizer's
flat buffer; then one AdamW update (clipping, the non-finite guard and the LR schedule live
in minillm/nn/optim.py). Every log_every steps a line goes to metrics.jsonl; every
eval_every steps the validation loss is measured; every ckpt_every steps and at the end a
checkpoint is written. Ctrl-C stops at the end of the current step, writes a checkpoint
and says how to resume (a second Ctrl-C aborts at once). Under `mpirun -np R` each rank
runs this loop on its slice of every batch and one Allreduce a step (dist.sum_step) sums
the gradients before the update; rank 0 alone writes and prints.

Read next: minillm/generate/ (sampling from the checkpoint this writes).
Run: python -m pytest tests/pretrain/test_train.py
"""
import contextlib
import dataclasses
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minillm.common import UserError, append_jsonl
from minillm.nn import gpt
from minillm.nn.checkpoint import save_checkpoint
from minillm.nn.optim import SCHEDULES, AdamW
from minillm.pretrain import dist
from minillm.pretrain.shards import BatchLoader

MAX_SKIPPED_IN_A_ROW = 5     # non-finite steps in a row: the run has diverged, stop with an error
SAMPLE_TOKENS = 32          # tokens of the sample printed at each evaluation (sample_prompt)
CLOCK = ("data", "forward", "backward", "allreduce", "optimizer", "eval", "checkpoint", "metrics")
TRAIN_CLOCK = ("data", "forward", "backward", "allreduce", "optimizer")   # what tokens/s counts


@dataclass
class TrainState:
    """Everything the loop reads and changes (setup_state in train.py builds it)."""
    config: object                  # the run's TrainConfig (train.py)
    model: gpt.GPTConfig            # the model's shape
    params: dict                    # name -> float32 array, updated in place by the optimizer
    optimizer: AdamW                # moments, step count and the gradient buffer
    loader: BatchLoader             # the train split; its (epoch, pos) is saved in checkpoints
    world: dist.World               # the data-parallel ranks; World() for a single process
    val_loader: BatchLoader         # the validation split, rewound before every evaluation
    tokenizer: object               # copied into checkpoints (None for byte-level data)
    total_steps: int                # train until step == total_steps
    tokens_per_step: int            # batch_size * context_len * grad_accum
    lr: float                       # peak learning rate of the schedule
    min_lr: float                   # final learning rate
    warmup: int                     # warmup steps
    out: Path                       # checkpoint directory
    metrics: Path                   # metrics.jsonl
    step: int = 0                   # completed optimizer steps (a resumed run starts > 0)
    tokens_seen: int = 0
    val_losses: dict = field(default_factory=dict)   # step -> validation loss
    skipped: list = field(default_factory=list)      # steps the non-finite guard skipped
    first_step: int = 0             # the step this process started at
    t_start: float = 0.0            # time.perf_counter() when setup began


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
    peak_rss_mb: float              # this process's peak resident set size
    checkpoint: str                 # the last checkpoint written
    interrupted: bool = False
    skipped_steps: list = field(default_factory=list)
    time_split: dict = field(default_factory=dict)   # seconds: data, forward, backward, optimizer, ...


def train_loop(s):
    """Train from s.step to s.total_steps; returns a TrainResult."""
    cfg, world = s.config, s.world
    schedule = SCHEDULES[cfg.schedule]
    clock = dict.fromkeys(CLOCK, 0.0)           # seconds per kind of work, for the summary
    losses, interrupted, checkpoint = {}, False, None
    if s.step >= s.total_steps:
        if world.root:
            say(f"nothing to do: {s.out} is at step {s.step} of {s.total_steps} (pass --steps to train longer)")
        return finish(s, losses, clock, s.out, False)
    ranks = f" on {world.size} ranks ({cfg.batch_size // world.size} sequences each)" if world.size > 1 else ""
    if world.root:
        say(f"pretraining {gpt.num_params(s.model) / 1e6:.2f}M parameters ({_shape(s.model)}) on "
            f"{s.loader.n_tokens:,} train tokens ({s.loader.kind}){ranks}; step {s.step} -> "
            f"{s.total_steps}, {s.tokens_per_step} tokens/step")
    dist.check_same_weights(world, s.optimizer.flat_p, s.step)    # the same start everywhere
    bar = tqdm(total=s.total_steps, initial=s.step, unit="step", disable=not (cfg.progress and world.root),
               dynamic_ncols=True, desc="pretrain", file=sys.stderr)
    note = bar.write if world.root else _quiet
    also = (signal.SIGUSR1,) if world.size > 1 else ()
    with stop_on_sigint(also, announce=world.root) as stop:
        while s.step < s.total_steps:
            lr = schedule(s.step, lr=s.lr, min_lr=s.min_lr, warmup=s.warmup, total=s.total_steps)
            total = 0.0
            for _ in range(cfg.grad_accum):     # gradients add up in the optimizer's buffer
                t0 = time.perf_counter()
                x, y = s.loader.next_batch()                                # (B / R, T) each
                t1 = time.perf_counter()
                loss, cache = gpt.forward(s.params, s.model, x, y)
                t2 = time.perf_counter()
                s.optimizer.accumulate(gpt.backward(cache))
                t3 = time.perf_counter()
                del cache                       # the activations: free them before the next batch
                total += loss
                clock["data"] += t1 - t0
                clock["forward"] += t2 - t1
                clock["backward"] += t3 - t2
            loss = total / cfg.grad_accum
            stopping = stop.is_set()
            if world.size > 1:                  # ONE Allreduce: gradient sum, loss, Ctrl-C votes
                with timed(clock, "allreduce"):
                    loss, stopping = dist.sum_step(world, s.optimizer, loss, stopping)
            t = time.perf_counter()
            report = s.optimizer.step(lr, clip=cfg.clip, loss=loss)   # skips a non-finite step
            clock["optimizer"] += time.perf_counter() - t
            loss = float(loss)
            s.step += 1
            s.tokens_seen += s.tokens_per_step
            losses[s.step] = loss
            last = s.step == s.total_steps
            rec = {"stage": cfg.stage, "step": s.step, "loss": loss, "lr": lr,
                   "grad_norm": report.grad_norm, "tokens": s.tokens_seen}
            if report.skipped:
                s.skipped.append(s.step)
                rec["skipped"] = report.reason
                note(f"step {s.step}: skipped ({report.reason}); weights unchanged", file=sys.stderr)
                if _diverged(s):
                    if world.root:
                        append_jsonl(s.metrics, rec)
                    bar.close()
                    raise dist.everywhere(UserError(
                        f"{MAX_SKIPPED_IN_A_ROW} steps in a row (to step {s.step}) had a non-finite "
                        f"loss or gradient ({report.reason}); stopped without saving them. Lower "
                        "--lr or check the data"), world.rank)
            if world.size > 1 and ((cfg.check_every and s.step % cfg.check_every == 0) or last or stopping):
                with timed(clock, "allreduce"):
                    dist.check_same_weights(world, s.optimizer.flat_p, s.step)
            if (cfg.eval_every and s.step % cfg.eval_every == 0) or last:
                n = cfg.final_eval_batches if last and cfg.final_eval_batches is not None else cfg.eval_batches
                with timed(clock, "eval"):
                    rec["val_loss"] = s.val_losses[s.step] = evaluate(s, n)
                note(f"step {s.step}: train loss {loss:.4f}, val loss {rec['val_loss']:.4f}", file=sys.stderr)
                if cfg.sample_prompt and s.tokenizer is not None and world.root:
                    with timed(clock, "eval"):
                        rec["sample"] = sample(s, cfg.sample_prompt)
                    note(f"  sample at step {s.step}: [prompt] {cfg.sample_prompt} [the model:]"
                         f"{rec['sample']!r}", file=sys.stderr)
            if world.size == 1:                 # a Ctrl-C during this step's eval counts too
                stopping = stop.is_set()
            with timed(clock, "metrics"):
                if world.root and (last or "val_loss" in rec or s.step % max(1, cfg.log_every) == 0):
                    append_jsonl(s.metrics, rec)
                bar.set_postfix_str(f"loss {loss:.3f}, {_rate(s, clock):,.0f} tok/s", refresh=False)
                bar.update(1)
            if (cfg.ckpt_every and s.step % cfg.ckpt_every == 0) or last or stopping:
                with timed(clock, "checkpoint"):
                    checkpoint = save(s)
            if stopping and not last:
                interrupted = True
                break
    bar.close()
    return finish(s, losses, clock, checkpoint, interrupted)


def _diverged(s):
    """True when the last MAX_SKIPPED_IN_A_ROW steps were all skipped (s.skipped ascends)."""
    recent = s.skipped[-MAX_SKIPPED_IN_A_ROW:]
    return len(recent) == MAX_SKIPPED_IN_A_ROW and recent[0] == s.step - MAX_SKIPPED_IN_A_ROW + 1


def evaluate(s, batches=0):
    """Mean validation loss over the first `batches` val batches (0: the whole split);
    always the same batches, so evaluations are comparable."""
    loader = s.val_loader
    loader.restore(dict(loader.state(), epoch=0, pos=0))
    n = max(1, loader.n_windows // loader.B)
    if batches:
        n = min(batches, n)
    total = 0.0
    for _ in range(n):
        x, y = loader.next_batch()                                          # (B / R, T) each
        loss, _ = gpt.forward(s.params, s.model, x, y, grad=False)
        total += float(loss)
    # R ranks: each summed its slices' means; the slices are alike in size, so the mean of
    # all n * R of them is the mean over the whole batches
    return dist.sum_over_ranks(s.world, total) / (n * s.world.size)


def sample(s, prompt, n=SAMPLE_TOKENS, temperature=0.8):
    """n tokens sampled after <|bos|> prompt, seeded by the step, as text: what the model
    writes at this point of training. No KV cache (a few dozen short forwards)."""
    tok = s.tokenizer
    bos = tok.special_tokens.get("<|bos|>")
    ids = ([] if bos is None else [bos]) + tok.encode_ordinary(prompt)
    start, rng = len(ids), np.random.default_rng([s.config.seed, s.step])
    for _ in range(n):
        x = np.array([ids[-s.model.context_len:]], np.int64)                    # (1, L)
        logits, _ = gpt.forward(s.params, s.model, x, grad=False)              # (1, L, V)
        z = logits[0, -1].astype(np.float64) / temperature
        p = np.exp(z - z.max())
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return tok.decode(ids[start:])


def save(s):
    """Write a training checkpoint (weights, tokenizer, optimizer, loader, config) to s.out
    (rank 0 writes; every rank holds the same weights and loader position).

    Exact resume needs all of it: there is no dropout, so the only randomness is the
    initialisation (seed) and the loader's order, drawn from (seed, epoch)."""
    cfg = s.config
    bad = [name for name, w in s.params.items() if not np.isfinite(w).all()]
    if bad:
        raise dist.everywhere(UserError(f"the weights became non-finite by step {s.step} "
                                        f"({', '.join(bad[:3])}); not saved over {s.out}. Lower --lr"),
                              s.world.rank)
    if not s.world.root:
        return s.out
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
                      "weight_decay": cfg.weight_decay, "clip": cfg.clip, "seed": cfg.seed,
                      "ranks": s.world.size}}
    if s.val_losses:
        meta["val_loss"] = s.val_losses[max(s.val_losses)]
    return save_checkpoint(s.out, s.model, s.params, tokenizer=s.tokenizer, meta=meta,
                           optimizer_state=s.optimizer.state(), trainer_state=trainer)


def finish(s, losses, clock, checkpoint, interrupted):
    """The TrainResult of this process's steps, printed as a summary."""
    wall = time.perf_counter() - s.t_start
    train_time = sum(clock[k] for k in TRAIN_CLOCK)
    clock["other"] = max(0.0, wall - sum(clock.values()))
    r = TrainResult(
        steps=s.step, tokens_seen=s.tokens_seen, losses=losses, val_losses=dict(s.val_losses),
        final_loss=losses[max(losses)] if losses else float("nan"),
        val_loss=s.val_losses[max(s.val_losses)] if s.val_losses else float("nan"),
        wall_time=wall, tokens_per_s=len(losses) * s.tokens_per_step / max(train_time, 1e-9),
        peak_rss_mb=peak_rss_mb(), checkpoint=str(checkpoint), interrupted=interrupted,
        skipped_steps=list(s.skipped), time_split=clock)
    if not s.world.root:
        return r
    if r.interrupted:
        say(f"interrupted at step {r.steps}/{s.total_steps}; checkpoint saved to {r.checkpoint}")
        launch = "mpirun -np R " if s.world.size > 1 else ""    # any R: the ranks share one state
        say(f"resume with: {launch}minillm pretrain --resume {r.checkpoint}")
    split = ", ".join(f"{k} {v:.1f}s" for k, v in r.time_split.items() if v >= 0.05)
    say(f"step {r.steps}: train loss {r.final_loss:.4f}, val loss {r.val_loss:.4f}; "
        f"{r.tokens_per_s:,.0f} tokens/s; wall {r.wall_time:.1f}s ({split}); "
        f"peak RSS {r.peak_rss_mb:.0f} MB")
    if r.skipped_steps:
        say(f"skipped {len(r.skipped_steps)} non-finite steps: {r.skipped_steps[:10]}")
    say(f"checkpoint: {r.checkpoint}")
    say(f"metrics:    {s.metrics}")
    return r


# ---- small helpers ----------------------------------------------------------------------

def say(msg):
    print(msg, file=sys.stderr)


def _quiet(*args, **kw):
    """What a rank other than 0 does with a progress line: nothing."""


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
        import resource  # Unix only: optional
    except ImportError:
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KB on Linux, bytes on macOS
    return peak / (1 << 20 if sys.platform == "darwin" else 1 << 10)


@contextlib.contextmanager
def timed(clock, key):
    t = time.perf_counter()
    try:
        yield
    finally:
        clock[key] += time.perf_counter() - t


@contextlib.contextmanager
def stop_on_sigint(also=(), announce=True):
    """A threading.Event set by the first Ctrl-C; the loop stops at the end of the step.
    The second Ctrl-C raises KeyboardInterrupt as usual. (Main thread only.)
    also: more signals that ask the same; under mpirun, SIGUSR1, which Open MPI's mpirun
    forwards to every rank (Ctrl-C it keeps for itself: it ends the ranks at once).
    announce: print what happens (rank 0 does; the other ranks print only errors)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        if announce:
            what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            print(f"\n{what}: stopping after this step and writing a checkpoint "
                  f"({what} again to abort without one)", file=sys.stderr, flush=True)

    signums = (signal.SIGINT, *also)
    previous = [signal.signal(signum, handler) for signum in signums]
    try:
        yield stop
    finally:
        for signum, handler_before in zip(signums, previous):
            signal.signal(signum, handler_before)


def _rate(s, clock):
    """Training tokens per second in this process (evals and checkpoints not counted)."""
    t = sum(clock[k] for k in TRAIN_CLOCK)
    return (s.step - s.first_step) * s.tokens_per_step / t if t else 0.0


def _shape(m):
    return (f"{m.n_layer} layers, {m.n_head} heads ({m.n_kv_head} kv), {m.n_embd} wide, "
            f"hidden {m.hidden_dim}, vocab {m.vocab_size}, context {m.context_len}")


def _jsonable(d):
    return json.loads(json.dumps(d, default=str))
