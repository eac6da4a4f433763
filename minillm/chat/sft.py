"""Supervised fine-tuning: the base model goes on training, on conversations, learning only
what the assistant writes.

    from minillm.chat.sft import SFTConfig, sft
    result = sft(SFTConfig(ckpt="runs/default/base", out="runs/default/sft",
                           data="runs/default/chat/conversations.jsonl", steps=300))
    minillm sft --ckpt runs/default/base --out runs/default/sft --data conversations.jsonl

It is pretraining's next-token loss on other data, with a mask. template.render turns each
conversation into ids and mask (cut to the context at a whole exchange); a batch is B whole
conversations of similar length (ConversationBatches) padded on the right to the longest; the model reads ids[:-1] and is scored on
ids[1:] with weights mask[1:], so the user's words and the tools' outputs are context, never
targets. The loss is the mean over the batch's supervised tokens. sft_loop has pretraining's
shape (pretrain/loop.py) and reuses its pieces: AdamW, the schedules, Ctrl-C, checkpoints,
metrics.jsonl. A resumed run repeats the uninterrupted one bit for bit: the checkpoint holds
weights, moments and the loader's (epoch, pos), and the only randomness is the order of the
conversations, drawn from (seed, epoch). check_out says what --out may already hold.
Under `mpirun -np R` (pretrain/dist.py) each rank takes every R-th conversation of each
batch, and the one Allreduce weights each rank's gradient by its share of the batch's
supervised tokens, so the step is the single process's.

Read next: terminal.py (`minillm chat --ckpt DIR` talks to the result).
Run: python -m pytest tests/chat/test_sft.py
"""
import dataclasses
import json
import math
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minillm import clib
from minillm.chat.template import CHAT_SPECIALS, load_conversations, render
from minillm.common import MARKER, UserError, append_jsonl, atomic_write, read_json
from minillm.nn import gpt
from minillm.nn.checkpoint import checkpoint_dir, load_checkpoint, load_training_state, save_checkpoint
from minillm.nn.optim import SCHEDULES, AdamW
from minillm.pretrain import dist
from minillm.pretrain.loop import peak_rss_mb, say, stop_on_sigint, timed
from minillm.pretrain.train import config_from_dict, default_lr
from minillm.tokenizer.bpe import Tokenizer

STAGE = "sft"                   # config.json's "stage" of our output: the marker check_out reads
LR_FRAC = 0.5                   # default peak LR: this fraction of the base run's (measured:
                                # 0.25 for 600 steps left world QA at 54%, 0.5 for 1500 at 77%)
HOLD_OUT_SEED = 0               # the held-out fraction (data without "eval" split) is fixed
CHECKPOINT_FILES = {"config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors",
                    "trainer_state.json", "evals.json", "samples.json", "chat_evals.json", MARKER}
# what --resume may change; every other setting must match the checkpoint's
RESUME_MAY_CHANGE = {"ckpt", "out", "data", "steps", "epochs", "eval_every", "eval_batches",
                     "ckpt_every", "log_every", "threads", "metrics", "resume", "force", "progress"}


@dataclass
class SFTConfig:
    """An SFT run; None means "derive a default" (setup_state)."""
    ckpt: str = None                # the base checkpoint (not needed to resume)
    out: str = None                 # the SFT checkpoint (default <ckpt>/../sft)
    data: str = None                # conversations .jsonl (default <ckpt>/../chat/conversations.jsonl)
    steps: int = None               # optimizer steps (default: `epochs` passes over the train split)
    epochs: float = 2.0
    batch_size: int = 16            # conversations per step
    lr: float = None                # peak LR (default LR_FRAC x the base run's)
    min_lr: float = None            # final LR (default lr / 10)
    warmup: int = None              # warmup steps (default min(20, steps // 10))
    schedule: str = "cosine"        # "cosine" or "wsd"
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.95)
    clip: float = 1.0
    eval_frac: float = 0.1          # held out when no conversation has split "eval"
    eval_every: int = 50            # steps between held-out losses (0: start and end only)
    eval_batches: int = 0           # batches per held-out loss (0: all of them)
    ckpt_every: int = 0             # steps between checkpoints (0: only at the end)
    log_every: int = 1
    seed: int = 0
    threads: int = None
    metrics: str = None             # default <out>/../metrics.jsonl (lines tagged stage "sft")
    resume: bool = False            # continue the SFT run in --out
    force: bool = False             # replace the SFT run in --out
    progress: bool = True

    def out_dir(self):
        if self.out:
            return Path(self.out)
        if not self.ckpt:
            raise UserError("give --out DIR (or --ckpt BASE: the output then goes next to it)")
        return Path(self.ckpt).parent / "sft"

    def data_path(self):
        if self.data:
            return Path(self.data)
        path = Path(self.ckpt or self.out_dir()).parent / "chat" / "conversations.jsonl"
        if not path.exists():
            raise UserError(f"no conversations at {path}: pass --data FILE.jsonl "
                            "(or generate them: minillm chat data --run NAME)")
        return path

    def metrics_path(self):
        return Path(self.metrics) if self.metrics else self.out_dir().parent / "metrics.jsonl"


# ---- data: conversations -> padded batches ----------------------------------------------

def collate(examples, pad_id):
    """[(ids (L,), mask (L,))] -> x, y (B, T) int64 and w (B, T) float32, T = longest L - 1.

    Row b: x = ids[:-1], y = ids[1:], w = mask[1:]; past a conversation's end x is pad_id,
    y is -1 and w is 0, so padding is never a target (causal attention keeps the real
    positions from seeing it)."""
    B, T = len(examples), max(len(ids) for ids, _ in examples) - 1
    x = np.full((B, T), pad_id, np.int64)                                  # (B, T)
    y = np.full((B, T), -1, np.int64)                                      # (B, T)
    w = np.zeros((B, T), np.float32)                                       # (B, T)
    for b, (ids, mask) in enumerate(examples):
        n = len(ids) - 1
        x[b, :n], y[b, :n], w[b, :n] = ids[:-1], ids[1:], mask[1:]
    return x, y, w


class ConversationBatches:
    """Batches of whole conversations (collate), grouped by length: each epoch shuffles the
    conversations (default_rng([seed, epoch])), sorts every run of GROUP batches' worth by
    length, cuts it into batches and shuffles the batches. A batch is padded to its longest
    conversation, so grouping similar lengths cuts the padding: on the default run's data
    (lengths 20 to 252 tokens, median 54) real tokens go from 39% of a random batch's to
    about 90%. The last batch of an epoch may be smaller. (epoch, pos) is saved in checkpoints."""
    GROUP = 32

    def __init__(self, examples, batch_size, seed, pad_id):
        self.examples, self.B, self.seed, self.pad_id = examples, int(batch_size), int(seed), pad_id
        self.epoch, self.pos = 0, 0
        self.batches = self._plan()

    def _plan(self):
        """The epoch's batches: lists of example indices."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order, run = rng.permutation(len(self.examples)), self.B * self.GROUP
        batches = []
        for start in range(0, len(order), run):
            chunk = sorted(order[start:start + run].tolist(), key=lambda i: len(self.examples[i][0]))
            batches += [chunk[i:i + self.B] for i in range(0, len(chunk), self.B)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def next_batch(self):
        return collate(self.next_examples(), self.pad_id)

    def next_examples(self):
        """The next batch's (ids, mask) pairs, before collate."""
        if self.pos == len(self.batches):
            self.epoch, self.pos = self.epoch + 1, 0
            self.batches = self._plan()
        chosen = [self.examples[i] for i in self.batches[self.pos]]
        self.pos += 1
        return chosen

    def state(self):
        return {"epoch": self.epoch, "pos": self.pos, "seed": self.seed, "batch_size": self.B,
                "conversations": len(self.examples), "grouping": self.GROUP}

    def restore(self, state):
        for key in ("seed", "conversations", "batch_size", "grouping"):
            if state.get(key) != self.state()[key]:
                raise UserError(f"cannot resume: the data's {key} was {state.get(key)!r}, now "
                                f"{self.state()[key]!r} (different conversations or settings)")
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self.batches = self._plan()


def load_examples(path, tokenizer, max_len, eval_frac):
    """(train, held_out, info): each a list of (ids, mask) from template.render.

    Held out: the conversations with split "eval" when there are any (the generators
    decided; SFT never trains on them), else a fixed eval_frac of the others. Conversations
    with another split are skipped, and so are those with no supervised token. An exchange
    longer than max_len is a UserError naming file and line (load_conversations)."""
    records = load_conversations(path, tokenizer, max_len)
    train = [r for r in records if r.get("split", "train") == "train"]
    held = [r for r in records if r.get("split") == "eval"]
    if not held and eval_frac > 0 and len(train) > 1:
        n = max(1, round(eval_frac * len(train)))
        chosen = set(np.random.default_rng(HOLD_OUT_SEED).permutation(len(train))[:n].tolist())
        held = [r for i, r in enumerate(train) if i in chosen]
        train = [r for i, r in enumerate(train) if i not in chosen]
    sets = [[render(r["messages"], tokenizer, max_len) for r in part] for part in (train, held)]
    kept = [[(ids, mask) for ids, mask in part if mask[1:].any()] for part in sets]
    if not kept[0]:
        raise UserError(f"{path}: no training conversation with an assistant reply")
    info = {"conversations": len(kept[0]), "held_out": len(kept[1]),
            "tokens": int(sum(len(ids) for ids, _ in kept[0])),
            "supervised": int(sum(int(m.sum()) for _, m in kept[0])),
            "skipped": len(records) - len(kept[0]) - len(kept[1])}
    return kept[0], kept[1], info


def chat_tokenizer(ckpt, vocab_size):
    """The checkpoint's tokenizer, if it has the chat special tokens (else a UserError)."""
    path = checkpoint_dir(ckpt) / "tokenizer.json"
    if not path.exists():
        raise UserError(f"{ckpt} has no tokenizer.json (a byte-level model): it has no chat special "
                        "tokens; SFT needs a model trained with minillm's tokenizer")
    tokenizer = Tokenizer.load(path)
    missing = [s for s in CHAT_SPECIALS if s not in tokenizer.special_tokens]
    if missing:
        raise UserError(f"{ckpt}'s tokenizer has no chat special tokens ({', '.join(missing)} "
                        "missing); SFT needs a model trained with minillm's tokenizer")
    if tokenizer.vocab_size > vocab_size:
        raise UserError(f"{ckpt}: the tokenizer has {tokenizer.vocab_size} tokens, the model {vocab_size}")
    return tokenizer


# ---- --out: what may be there -------------------------------------------------------------

def check_out(out, ckpt, resume, force):
    """Refuse an --out that would lose something, with one line saying what is there.

    Missing (or an empty directory): a fresh run creates it. A previous SFT output (its
    config.json says stage "sft"): --resume continues it, --force replaces it. Anything else
    (a file, the input checkpoint or a path inside it, another kind of checkpoint, a
    directory of other files) is refused: minillm never deletes a file it did not write, and
    a new checkpoint replaces the whole directory, so even an SFT output with a foreign file
    in it is refused. Also removes the temporary directories a killed save left next to it.
    """
    out = Path(out)
    if resume and force:
        raise UserError("--resume continues the run in --out, --force replaces it: give one of them")
    if ckpt is not None and not resume:
        base = Path(ckpt).resolve()
        if out.resolve() == base or base in out.resolve().parents:
            raise UserError(f"--out {out} is the input checkpoint --ckpt {ckpt} (or inside it); "
                            "SFT writes a new checkpoint: give another --out")
    for leftover in out.parent.glob(f".{out.name}.tmp-*"):     # save_checkpoint's temp dirs
        shutil.rmtree(leftover, ignore_errors=True)
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        if resume:
            raise UserError(f"--resume: no SFT run at {out} to continue; leave out --resume to start one")
        return
    if not out.is_dir():
        raise UserError(f"--out {out} is a file; no flag replaces it: give a directory path")
    names = sorted(p.name for p in out.iterdir())
    meta = _read_meta(out)
    if meta.get("stage") != STAGE:
        what = (f"a {meta.get('stage')} checkpoint" if "stage" in meta
                else f"files minillm did not write ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")
        raise UserError(f"--out {out} holds {what}, not an SFT output; --force replaces only an SFT "
                        "output: give another --out")
    foreign = [n for n in names if n not in CHECKPOINT_FILES]
    if foreign:
        raise UserError(f"--out {out} is an SFT output but also holds {', '.join(foreign)}, which "
                        "minillm did not write; move it away first (a new checkpoint replaces the directory)")
    if not resume and not force:
        raise UserError(f"--out {out} holds an SFT run at step {meta.get('step')} of "
                        f"{meta.get('train', {}).get('total_steps')}: --resume continues it, --force replaces it")


def _read_meta(out):
    try:
        meta = json.loads((out / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) and "format" in meta else {}


# ---- the run ------------------------------------------------------------------------------

@dataclass
class SFTState:
    """Everything the loop reads and changes (setup_state builds it)."""
    config: SFTConfig               # with lr, min_lr, warmup and steps resolved
    model: gpt.GPTConfig
    params: dict                    # name -> float32 array, updated in place by the optimizer
    optimizer: AdamW
    loader: ConversationBatches     # the train split
    held_out: list                  # [(ids, mask)] of the held-out conversations
    tokenizer: Tokenizer            # copied into checkpoints
    data_info: dict                 # load_examples' counts
    out: Path
    metrics: Path
    world: dist.World = dist.World()  # the data-parallel ranks; World() for a single process
    step: int = 0                   # completed optimizer steps
    tokens_seen: int = 0            # real (not padding) input tokens
    supervised_seen: int = 0        # tokens the loss counted
    val_losses: dict = field(default_factory=dict)   # step -> held-out loss (step 0: the base)
    skipped: list = field(default_factory=list)      # steps the non-finite guard skipped
    first_tokens: int = 0           # tokens_seen when this process started
    t_start: float = 0.0


@dataclass
class SFTResult:
    steps: int
    losses: dict                    # step -> train loss, for the steps run in this process
    val_losses: dict                # step -> held-out loss
    final_loss: float
    val_loss: float                 # the last held-out loss (nan without held-out data)
    tokens_per_s: float             # real tokens / training time
    wall_time: float
    checkpoint: str
    interrupted: bool = False
    skipped_steps: list = field(default_factory=list)


def sft(config):
    """Run (or, with config.resume, continue) SFT; returns an SFTResult. Under `mpirun -np R`
    every rank calls it and they train one model."""
    world = dist.connect()
    return dist.run_ranks(world, _sft, config, world)


def _sft(config, world):
    state, error = None, None
    try:                                    # every rank meets a bad setting alike: say it once
        check_settings(config)
        if world.root:                      # it removes a killed save's leftovers
            check_out(config.out_dir(), config.ckpt, config.resume, config.force)
        if config.resume:
            config = resume_config(config)
        state = setup_state(config, world)
    except UserError as e:
        error = e
    dist.agree(world, error)
    return sft_loop(state)


def check_settings(c):
    """One-line errors for settings that cannot train (so --steps 0 never means "default")."""
    rules = [("--steps", c.steps, c.steps is None or c.steps >= 1, "at least 1"),
             ("--epochs", c.epochs, c.epochs > 0, "above 0"),
             ("--batch-size", c.batch_size, c.batch_size >= 1, "at least 1"),
             ("--lr", c.lr, c.lr is None or 0 < c.lr < math.inf, "a positive number"),
             ("--min-lr", c.min_lr, c.min_lr is None or 0 <= c.min_lr < math.inf, "a number >= 0"),
             ("--warmup", c.warmup, c.warmup is None or c.warmup >= 0, "at least 0"),
             ("--eval-frac", c.eval_frac, 0 <= c.eval_frac < 1, "in [0, 1)")]
    for flag, value, ok, wanted in rules:
        if not ok:
            raise UserError(f"{flag} {value}: must be {wanted}")


def setup_state(config, world=dist.World()):
    t_start = time.perf_counter()
    threads = config.threads or dist.default_threads(world)
    if threads:
        clib.set_num_threads(threads)
    source = config.out_dir() if config.resume else config.ckpt
    if source is None:
        raise UserError("give --ckpt BASE: the checkpoint to fine-tune")
    model, params, meta = load_checkpoint(source)
    tokenizer = chat_tokenizer(source, model.vocab_size)
    # max_len context_len + 1: inputs ids[:-1] fill the context
    train, held_out, info = load_examples(config.data_path(), tokenizer, model.context_len + 1,
                                          config.eval_frac)
    loader = ConversationBatches(train, config.batch_size, config.seed, tokenizer.bos_id)
    if not config.resume:                   # resolve the defaults once; checkpoints keep them
        steps = config.steps or max(1, math.ceil(config.epochs * len(train) / config.batch_size))
        lr = config.lr or LR_FRAC * meta.get("train", {}).get("lr", default_lr(model.n_embd))
        config = dataclasses.replace(
            config, steps=steps, lr=lr, min_lr=lr / 10 if config.min_lr is None else config.min_lr,
            warmup=min(20, steps // 10) if config.warmup is None else config.warmup,
            data=str(config.data_path()))
    optimizer = AdamW(params, betas=config.betas, weight_decay=config.weight_decay,
                      extra=dist.EXTRA_SLOTS if world.size > 1 else 0)
    trainer = {}
    if config.resume:
        opt_state, trainer = load_training_state(source)
        if opt_state is None or trainer is None:
            raise UserError(f"{source} has no optimizer state; it cannot be resumed")
        optimizer.load_state(*opt_state)
        loader.restore(trainer["loader"])
    step = int(trainer.get("step", 0))
    if world.root:
        trim_metrics(config.metrics_path(), STAGE, config.out_dir().name, step + 1 if step else 0)
    return SFTState(config=config, model=model, params=params, optimizer=optimizer, loader=loader,
                    held_out=held_out, tokenizer=tokenizer, data_info=info, out=config.out_dir(),
                    metrics=config.metrics_path(), world=world, step=step,
                    tokens_seen=int(trainer.get("tokens_seen", 0)),
                    supervised_seen=int(trainer.get("supervised_seen", 0)),
                    val_losses={int(k): v for k, v in trainer.get("val_losses", {}).items()},
                    skipped=list(trainer.get("skipped_steps", [])),
                    first_tokens=int(trainer.get("tokens_seen", 0)), t_start=t_start)


def sft_loop(s):
    """Train from s.step to s.config.steps; returns an SFTResult."""
    cfg, world = s.config, s.world
    schedule = SCHEDULES[cfg.schedule]
    clock = dict.fromkeys(("data", "forward", "backward", "optimizer", "eval", "checkpoint"), 0.0)
    losses, interrupted, checkpoint = {}, False, None
    if s.step >= cfg.steps:
        if world.root:
            say(f"nothing to do: {s.out} is at step {s.step} of {cfg.steps} (pass --steps to train longer)")
        return finish(s, losses, clock, s.out, False)
    info = s.data_info
    if world.root:
        ranks = f" on {world.size} ranks" if world.size > 1 else ""
        say(f"SFT of {gpt.num_params(s.model) / 1e6:.2f}M parameters on {info['conversations']:,} "
            f"conversations ({info['supervised']:,} of {info['tokens']:,} tokens supervised), "
            f"{info['held_out']:,} held out{ranks}; step {s.step} -> {cfg.steps}, "
            f"{cfg.batch_size} conversations/step")
    dist.check_same_weights(world, s.optimizer.flat_p, s.step)    # the same start everywhere
    if s.step == 0 and s.held_out:          # the base model's held-out loss: where SFT starts
        s.val_losses[0] = evaluate(s)
        if world.root:
            append_jsonl(s.metrics, {"stage": STAGE, "out": s.out.name, "step": 0, "val_loss": s.val_losses[0]})
    bar = tqdm(total=cfg.steps, initial=s.step, unit="step", disable=not (cfg.progress and world.root),
               dynamic_ncols=True, desc="sft", file=sys.stderr)
    note = bar.write if world.root else (lambda *a, **k: None)
    also = (signal.SIGUSR1,) if world.size > 1 else ()
    with stop_on_sigint(also, announce=world.root) as stop:
        while s.step < cfg.steps:
            lr = schedule(s.step, lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup, total=cfg.steps)
            with timed(clock, "data"):
                batch = s.loader.next_examples()
                mine = batch[world.rank::world.size]   # every R-th conversation (all: one process)
                # subtle: a rank left without one (an epoch's last, small batch) runs a
                # stand-in with share 0, so that it still takes part in the Allreduce
                x, y, w = collate(mine or batch[:1], s.tokenizer.bos_id)   # (B / R, T) each
            with timed(clock, "forward"):   # the mean over supervised tokens (w = mask[1:])
                loss, cache = gpt.forward(s.params, s.model, x, y, loss_mask=w)
            with timed(clock, "backward"):
                grads = gpt.backward(cache)
            with timed(clock, "optimizer"):
                stopping = stop.is_set()
                if world.size > 1:          # ONE Allreduce, each rank weighted by its tokens
                    s.optimizer.accumulate(grads)
                    share = float(w.sum()) / sum(float(m[1:].sum()) for _, m in batch) if mine else 0.0
                    loss, stopping = dist.sum_step(world, s.optimizer, float(loss), stopping, share)
                    report = s.optimizer.step(lr, clip=cfg.clip, loss=loss)
                else:
                    report = s.optimizer.step(lr, grads=grads, clip=cfg.clip, loss=loss)
            del cache, grads
            s.step += 1
            s.tokens_seen += sum(len(ids) - 1 for ids, _ in batch)
            s.supervised_seen += int(sum(m[1:].sum() for _, m in batch))
            losses[s.step] = loss = float(loss)
            last = s.step == cfg.steps
            rec = {"stage": STAGE, "out": s.out.name, "step": s.step, "loss": loss, "lr": lr,
                   "grad_norm": report.grad_norm, "tokens": s.tokens_seen, "supervised": s.supervised_seen}
            if report.skipped:
                s.skipped.append(s.step)
                rec["skipped"] = report.reason
                note(f"step {s.step}: skipped ({report.reason}); weights unchanged", file=sys.stderr)
            if world.size == 1:             # a Ctrl-C during this step's eval counts too
                stopping = stop.is_set()
            if world.size > 1 and (s.step % dist.CHECK_EVERY == 0 or last or stopping):
                dist.check_same_weights(world, s.optimizer.flat_p, s.step)
            if s.held_out and ((cfg.eval_every and s.step % cfg.eval_every == 0) or last):
                with timed(clock, "eval"):
                    rec["val_loss"] = s.val_losses[s.step] = evaluate(s)
                note(f"step {s.step}: train loss {loss:.4f}, held-out loss {rec['val_loss']:.4f}",
                     file=sys.stderr)
            if world.root and (last or "val_loss" in rec or s.step % max(1, cfg.log_every) == 0):
                append_jsonl(s.metrics, rec)
            bar.set_postfix_str(f"loss {loss:.3f}", refresh=False)
            bar.update(1)
            if world.size == 1:
                stopping = stop.is_set()
            if (cfg.ckpt_every and s.step % cfg.ckpt_every == 0) or last or stopping:
                with timed(clock, "checkpoint"):
                    checkpoint = save(s)
            if stopping and not last:
                interrupted = True
                break
    bar.close()
    return finish(s, losses, clock, checkpoint, interrupted)


def evaluate(s):
    """The loss over the held-out conversations' supervised tokens (the first eval_batches
    batches of them, in file order; 0: all), weighted by token, so batch sizes do not matter."""
    total = count = 0.0
    B, world = s.config.batch_size, s.world
    starts = range(0, len(s.held_out), B)
    for start in starts[:s.config.eval_batches or None][world.rank::world.size]:   # R ranks: 1 in R
        x, y, w = collate(s.held_out[start:start + B], s.tokenizer.bos_id)  # (B, T) each
        loss, _ = gpt.forward(s.params, s.model, x, y, loss_mask=w, grad=False)
        total += float(loss) * float(w.sum())
        count += float(w.sum())
    if world.size > 1:
        total, count = dist.sum_over_ranks(world, np.array([total, count]))   # elementwise
    return float(total / max(count, 1.0))


def save(s):
    """The SFT checkpoint: weights and tokenizer (minillm sample / chat load them), plus the
    optimizer and loader state that --resume needs. Rank 0 writes it."""
    cfg = s.config
    if not s.world.root:
        return s.out
    trainer = {"step": s.step, "tokens_seen": s.tokens_seen, "supervised_seen": s.supervised_seen,
               "loader": s.loader.state(), "val_losses": {str(k): v for k, v in s.val_losses.items()},
               "skipped_steps": s.skipped, "sft": _jsonable(dataclasses.asdict(cfg))}
    meta = {"stage": STAGE, "step": s.step, "tokens_seen": s.tokens_seen, "base": str(cfg.ckpt),
            "data": dict(s.data_info, source=str(cfg.data_path())),
            "train": {"lr": cfg.lr, "min_lr": cfg.min_lr, "warmup": cfg.warmup, "total_steps": cfg.steps,
                      "schedule": cfg.schedule, "batch_size": cfg.batch_size, "seed": cfg.seed,
                      "weight_decay": cfg.weight_decay, "clip": cfg.clip, "ranks": s.world.size}}
    if s.val_losses:
        meta["val_loss"] = s.val_losses[max(s.val_losses)]
    return save_checkpoint(s.out, s.model, s.params, tokenizer=s.tokenizer, meta=meta,
                           optimizer_state=s.optimizer.state(), trainer_state=trainer)


def finish(s, losses, clock, checkpoint, interrupted):
    """The SFTResult of this process's steps, printed as a summary."""
    train_time = sum(clock[k] for k in ("data", "forward", "backward", "optimizer"))
    r = SFTResult(steps=s.step, losses=losses, val_losses=dict(s.val_losses),
                  final_loss=losses[max(losses)] if losses else float("nan"),
                  val_loss=s.val_losses[max(s.val_losses)] if s.val_losses else float("nan"),
                  tokens_per_s=(s.tokens_seen - s.first_tokens) / max(train_time, 1e-9),
                  wall_time=time.perf_counter() - s.t_start, checkpoint=str(checkpoint),
                  interrupted=interrupted, skipped_steps=list(s.skipped))
    if not s.world.root:
        return r
    if r.interrupted:
        say(f"interrupted at step {r.steps}/{s.config.steps}; checkpoint saved to {r.checkpoint}")
        say(f"resume with: minillm sft --out {s.out} --resume")
    before = f" (before SFT: {s.val_losses[0]:.4f})" if 0 in s.val_losses else ""
    say(f"step {r.steps}: train loss {r.final_loss:.4f}, held-out loss {r.val_loss:.4f}{before}; "
        f"{r.tokens_per_s:,.0f} tokens/s; wall {r.wall_time:.1f}s; peak RSS {peak_rss_mb():.0f} MB")
    if r.skipped_steps:
        say(f"skipped {len(r.skipped_steps)} non-finite steps: {r.skipped_steps[:10]}")
    say(f"checkpoint: {r.checkpoint}")
    say(f"metrics:    {s.metrics}")
    return r


def resume_config(requested):
    """The SFTConfig the run in requested.out was started with, updated by requested's fields
    in RESUME_MAY_CHANGE; any other field set to a different value is an error."""
    out = requested.out_dir()
    saved = config_from_dict(SFTConfig, read_json(out / "trainer_state.json", "trainer state").get("sft", {}))
    default, changes = SFTConfig(), {}
    for f in dataclasses.fields(SFTConfig):
        value = getattr(requested, f.name)
        if value == getattr(default, f.name):
            continue
        if f.name in RESUME_MAY_CHANGE:
            changes[f.name] = value
        elif value != getattr(saved, f.name):
            raise UserError(f"--{f.name.replace('_', '-')} {value} differs from the run's "
                            f"{getattr(saved, f.name)}; a resumed run keeps its settings")
    changes.update(out=str(out), resume=True, force=False, ckpt=saved.ckpt)
    return dataclasses.replace(saved, **changes)




def trim_metrics(path, stage, out_name, first_dropped):
    """Drop this output's `stage` lines from step `first_dropped` on (0: all of them), so a
    resumed run's metrics.jsonl reads like an uninterrupted one's."""
    path = Path(path)
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue                        # a line cut by a crash
        if rec.get("stage") != stage or rec.get("out") != out_name or rec.get("step", 0) < first_dropped:
            kept.append(line if line.endswith("\n") else line + "\n")
    atomic_write(path, "".join(kept))


def _jsonable(d):
    return json.loads(json.dumps(d, default=str))
