"""The RL loop: sample, check, reinforce what worked (GRPO on verifiable rewards).

    from minillm.rl.grpo import RLConfig, rl
    rl(RLConfig(ckpt="runs/default/sft", out="runs/default/rl", task="word_problems",
                world="runs/default/world", steps=40))

One step: P training prompts of the task (fresh ones each step, drawn from (seed, step));
G answers to each from the KV-cache engine (one shared prefill per prompt, at the
configured temperature, tools on); a reward per answer from the task's checker (or, for
RLHF, from a reward model: tasks.score_replies); advantages within each prompt's
group (loss.group_advantages); then the policy-gradient loss (loss.policy_gradient) on the
sampled tokens only (the prompt and the tools' outputs are masked), its gradient fed to the
model's own backward, AdamW. With inner_epochs > 1 the same rollouts are reused PPO-style
(ratio to the sampling policy, clipped); with beta > 0 a KL penalty to the SFT model.

Logged per step to metrics.jsonl (stage "rl"): mean reward, answer length in tokens, the
share of answers that check themselves, token entropy, KL to the SFT model; every
eval_every steps the held-out pass@1 (greedy), and at the first and last step pass@k (k
samples at the rollouts' temperature). Rollouts at a temperature below 1 (0.7 by default)
keep the samples near what the model would say, so a group holds right and wrong answers
to compare; the loss is still the plain log-probability of each sampled token.

Under `mpirun -np R` (pretrain/dist.py) each rank samples the groups of P / R of the
step's prompts (each answer with the seed it has in one process), and the one Allreduce of
the gradient weights each rank by its share of the step's answer tokens, so the update is
the single process's; rank 0 evaluates, logs and saves.

Read next: tasks.py (the rewards), loss.py (the gradient).
"""
import dataclasses
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minillm import clib
from minillm.chat.evals_ask import read_reply
from minillm.chat.sft import chat_tokenizer, trim_metrics
from minillm.chat.template import chat_token_ids, render_prompt
from minillm.chat.tools import calculator
from minillm.common import UserError, append_jsonl, read_json
from minillm.generate.engine import Engine
from minillm.nn import gpt
from minillm.nn.checkpoint import load_checkpoint, load_training_state, save_checkpoint
from minillm.nn.optim import AdamW
from minillm.pretrain import dist
from minillm.rl.loss import group_advantages, log_softmax, policy_gradient
from minillm.rl.tasks import make_task, score_replies
from minillm.world.world import World

STAGE = "rl"
MICRO = 8                       # sequences per forward/backward (bounds the (B, T, V) logits)
EVAL_BATCH = 64                 # rows per engine call in the held-out evals
ROLLOUT_ROWS = 512              # sampled answers per engine call in rollouts (bounds the KV cache)
CHECKING = re.compile(r"\b(?:let me check|check:|checking|to check)\b", re.IGNORECASE)


@dataclass
class RLConfig:
    ckpt: str = None                # the SFT checkpoint to start from
    out: str = None                 # where the RL checkpoint goes (default <ckpt>/../rl)
    task: str = "word_problems"
    world: str = None               # the mini-world (default <ckpt>/../world)
    steps: int = 40
    prompts: int = 8                # P prompts per step
    group: int = 8                  # G answers per prompt
    max_tokens: int = 160           # per answer, tool outputs included
    temperature: float = 0.7        # of the rollouts (and of pass@k's samples)
    lr: float = 1e-4
    clip: float = 0.2               # PPO's clip (used when inner_epochs > 1)
    inner_epochs: int = 1           # passes over each step's rollouts (1: REINFORCE/GRPO)
    beta: float = 0.0               # KL penalty to the starting model
    normalize: bool = True          # divide advantages by the group's std (GRPO)
    positive_only: bool = False     # learn only from answers better than their group's mean
    grad_clip: float = 1.0
    eval_every: int = 10
    eval_prompts: int = 100         # held-out prompts for pass@1 / pass@k
    k: int = 8
    seed: int = 0
    ckpt_every: int = 10            # steps between checkpoints (and at the end, and on Ctrl-C)
    resume: bool = False            # continue the RL run in out
    force: bool = False             # replace the RL run in out
    threads: int = None
    progress: bool = True

    def out_dir(self):
        return Path(self.out) if self.out else Path(self.ckpt).parent / "rl"


def rollouts(engine, items, group, max_tokens, seed, temperature=1.0):
    """G sampled answers per item: [(item, completion)] in prompt-major order. Answer c
    draws from default_rng([seed, c]) (or from seed[c], a list), drawn ROLLOUT_ROWS answers
    per engine call: the KV cache holds every row of a call (8 KB per position on the
    speedrun model, so 6,144 rows of 90 positions would take 4.5 GB)."""
    prompts = [render_prompt(it.messages, engine.tokenizer) for it in items]
    seeds = list(seed) if isinstance(seed, (list, tuple)) else [[int(seed), c] for c in range(len(items) * group)]
    per, out = max(1, ROLLOUT_ROWS // group), []
    for s in range(0, len(prompts), per):
        out += engine.generate(prompts[s:s + per], n=group, temperature=temperature, max_tokens=max_tokens,
                               seed=seeds[s * group:(s + per) * group], logprobs=True, stop=_stop(engine.tokenizer))
    return [(items[i // group], c) for i, c in enumerate(out)]


def sequences(pairs, context_len):
    """Rollouts -> (ids (B, L) int64 padded, mask (B, L) 1 on sampled answer tokens, lengths):
    ids[b] = prompt + answer, cut to the context; forced (tool-written) tokens masked."""
    rows = []
    for _, c in pairs:
        ids = list(c.prompt) + list(c.tokens)
        mask = [0] * len(c.prompt) + [0 if f else 1 for f in c.forced]
        rows.append((ids[:context_len + 1], mask[:context_len + 1]))
    L = max(len(ids) for ids, _ in rows)
    x = np.zeros((len(rows), L), np.int64)                             # (B, L)
    m = np.zeros((len(rows), L), np.float32)                           # (B, L)
    for b, (ids, mask) in enumerate(rows):
        x[b, :len(ids)], m[b, :len(mask)] = ids, mask
    return x, m, [len(ids) for ids, _ in rows]


def train_step(params, model, ref, x, m, adv, old_logp, cfg):
    """Accumulate the policy-gradient gradient over micro-batches; (grads, stats). The loss
    is computed on the answer tokens only, gathered into rows (N, 1, V): the prompt's
    logits have zero gradient and cost nothing."""
    B = len(x)
    n_total = max(float(m[:, 1:].sum()), 1.0)
    grads, stats = None, {"loss": 0.0, "entropy": 0.0, "kl": 0.0, "clipped": 0.0}
    for s in range(0, B, MICRO):
        xb, mb = x[s:s + MICRO], m[s:s + MICRO]                          # (b, L)
        z, cache = gpt.forward(params, model, xb[:, :-1])                # (b, L-1, V)
        rows, cols = np.nonzero(mb[:, 1:])                               # (N,) the answer tokens
        share = len(rows) / n_total                                      # this micro-batch's weight
        ref_logp = None
        if cfg.beta > 0 or s == 0:        # the penalty; else the KL logged, from one micro-batch
            zr, _ = gpt.forward(ref, model, xb[:, :-1], grad=False)      # (b, L-1, V)
            ref_logp = log_softmax(zr[rows, cols][:, None])              # (N, 1, V)
        old = old_logp[s:s + MICRO, 1:][rows, cols][:, None] if cfg.inner_epochs > 1 else None  # (N, 1)
        loss, dzn, st = policy_gradient(z[rows, cols][:, None], xb[:, 1:][rows, cols][:, None],
                                        np.ones((len(rows), 1), np.float32), adv[s:s + MICRO][rows],
                                        old_logp=old, clip=cfg.clip, ref_logp=ref_logp, beta=cfg.beta)
        for key, value in (("loss", loss), ("entropy", st["entropy"]), ("kl", st["kl"]),
                           ("clipped", st["clipped"])):
            stats[key] += share * value
        if cfg.beta == 0 and s == 0:
            stats["kl"] = st["kl"]              # measured on the first micro-batch only (0 after)
        dz = np.zeros(z.shape, np.float32)                               # (b, L-1, V)
        dz[rows, cols] = dzn[:, 0] * share
        g = gpt.backward(cache, dz)
        grads = g if grads is None else {k: grads[k] + g[k] for k in grads}
    return grads, stats


def old_logprobs(pairs, x):
    """The sampling policy's log p of each answer token, aligned with x (B, L)."""
    lp = np.zeros(x.shape, np.float64)
    for b, (_, c) in enumerate(pairs):
        start = len(c.prompt)
        for j, v in enumerate(c.logprobs[:x.shape[1] - start]):
            lp[b, start + j] = v if v is not None else 0.0
    return lp


def _stop(tok):
    sp = chat_token_ids(tok)
    return [sp["<|assistant_end|>"], sp["<|user_start|>"]]


def greedy_answers(engine, items, max_tokens):
    """[(shown text, tokens)] of greedy answers to items, EVAL_BATCH prompts per engine call
    (bounded memory: the KV cache is per row)."""
    tok = engine.tokenizer
    prompts = [render_prompt(it.messages, tok) for it in items]
    out = []
    for s in range(0, len(prompts), EVAL_BATCH):
        for c in engine.generate(prompts[s:s + EVAL_BATCH], temperature=0.0, max_tokens=max_tokens, seed=0,
                                 logprobs=False, stop=_stop(tok)):
            out.append((read_reply(c.tokens, tok)[1], len(c.tokens)))
    return out


def pass_at_1(engine, task, items, max_tokens):
    """Held-out pass@1: the share of greedy answers the checker accepts."""
    answers = greedy_answers(engine, items, max_tokens)
    return float(np.mean([task.reward(it, text) for it, (text, _) in zip(items, answers)]))


def pass_at_k(engine, task, items, k, max_tokens, seed, temperature=1.0):
    """Held-out pass@k: the share of items with at least one of k sampled answers right."""
    tok = engine.tokenizer
    prompts = [render_prompt(it.messages, tok) for it in items]
    sampled, step = [], max(1, EVAL_BATCH // k)
    for s in range(0, len(prompts), step):                  # seeded per chunk: the same samples every run
        sampled += engine.generate(prompts[s:s + step], n=k, temperature=temperature, max_tokens=max_tokens,
                                   seed=seed + s, stop=_stop(tok))
    hits = np.array([task.reward(items[i // k], read_reply(c.tokens, tok)[1]) for i, c in enumerate(sampled)])
    return float(hits.reshape(len(items), k).max(axis=1).mean())


def _seed(seed, use, step):
    """One integer seed per (run seed, use, step): the engine gives completion c the stream
    default_rng([that, c]), so a step's samples depend on nothing else."""
    return (seed * 4 + use) * 1_000_003 + step


def policy_engine(params, model, tok):
    """An engine sampling from the weights as they are now, with the calculator."""
    engine = Engine(params, model, tok)
    engine.register_tool("python", calculator)
    return engine


def check_out(out, ckpt, resume, force, stage=STAGE, what="RL"):
    """Refuse an --out that would lose something: a fresh run needs a missing or empty
    directory, a previous RL output is continued with --resume or replaced with --force,
    anything else (a file, the input checkpoint, another stage's checkpoint, files minillm
    did not write) is refused with one line. stage, what: the config.json stage an earlier
    output has, and its name in the messages (RLHF has no --resume)."""
    out = Path(out)
    if resume and force:
        raise UserError("--resume continues the run in --out, --force replaces it: give one of them")
    if ckpt and not resume and (out.resolve() == Path(ckpt).resolve() or Path(ckpt).resolve() in out.resolve().parents):
        raise UserError(f"--out {out} is the input checkpoint --ckpt {ckpt} (or inside it): give another --out")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        if resume:
            raise UserError(f"--resume: no {what} run at {out} to continue; leave out --resume to start one")
        return
    if not out.is_dir():
        raise UserError(f"--out {out} is a file: give a directory path")
    try:
        meta = read_json(out / "config.json", "checkpoint config")
    except UserError:
        meta = {}
    if meta.get("stage") != stage:
        raise UserError(f"--out {out} holds {'a ' + str(meta['stage']) + ' checkpoint' if 'stage' in meta else 'other files'}, "
                        f"not an {what} output: give another --out")
    if not resume and not force:
        raise UserError(f"--out {out} holds an {what} run at step {meta.get('step')}: "
                        + ("--resume continues it, " if stage == STAGE else "") + "--force replaces it")


@dataclass
class State:
    """What a step changes and a checkpoint keeps."""
    model: object                   # GPTConfig
    params: dict
    optimizer: AdamW
    tokenizer: object
    step: int = 0                   # updates done


def save(cfg, s):
    """Weights, optimizer and step: everything a bit-identical resume needs (the rollouts of
    step n depend only on (seed, n) and the weights)."""
    meta = {"stage": STAGE, "step": s.step, "base": str(cfg.ckpt), "task": cfg.task}
    # the prompts' "loader" is the (seed, step) stream: its position is the step
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in VOLATILE}
    trainer = {"step": s.step, "loader": {"seed": cfg.seed, "step": s.step}, "rl": settings}
    return save_checkpoint(cfg.out_dir(), s.model, s.params, tokenizer=s.tokenizer, meta=meta,
                           optimizer_state=s.optimizer.state(), trainer_state=trainer)


VOLATILE = ("resume", "force", "progress", "threads")       # what --resume may change


def resume_config(requested):
    """The saved run's settings, for --resume: a setting given that differs from the saved
    one (and is not one of VOLATILE) is refused, since a resumed run keeps its settings."""
    out = requested.out_dir()
    _, trainer = load_training_state(out)
    if trainer is None or "rl" not in trainer:
        raise UserError(f"{out} has no RL trainer state; it cannot be resumed")
    saved, default = trainer["rl"], dataclasses.asdict(RLConfig())
    for key, value in dataclasses.asdict(requested).items():
        if key not in VOLATILE and key != "out" and value != default[key] and value != saved.get(key):
            raise UserError(f"--resume: {key} {value} differs from the run's {saved.get(key)}; "
                            "a resumed run keeps its settings")
    keep = {k: getattr(requested, k) for k in VOLATILE}
    return RLConfig(**dict(saved, out=str(out), **keep))


def start_state(cfg, extra=0):
    """A fresh State from cfg.ckpt, or with --resume the saved one of cfg.out_dir().
    extra: the optimizer's slots after the gradient (a data-parallel run's loss)."""
    source = cfg.out_dir() if cfg.resume else cfg.ckpt
    model, params, _ = load_checkpoint(source)
    s = State(model, params, AdamW(params, weight_decay=0.0, extra=extra), chat_tokenizer(source, model.vocab_size))
    if cfg.resume:
        opt, trainer = load_training_state(source)
        if opt is None:
            raise UserError(f"{source} has no optimizer state; it cannot be resumed")
        s.optimizer.load_state(*opt)
        s.step = int(trainer["step"])
    return s


def rl(cfg):
    """Run (or with cfg.resume continue) RL from cfg.ckpt; returns a dict of the run's numbers.
    Under `mpirun -np R` every rank calls it and they train one model."""
    world = dist.connect()
    return dist.run_ranks(world, _rl, cfg, world)


def _rl(cfg, world):
    error = None
    try:                                    # every rank meets a bad setting alike: say it once
        threads = cfg.threads or dist.default_threads(world)
        if threads:
            clib.set_num_threads(threads)
        if not cfg.ckpt and not (cfg.resume and cfg.out):
            raise UserError("give --ckpt SFT: the checkpoint to practise from (or --out DIR --resume)")
        if cfg.prompts % world.size:
            raise UserError(f"--prompts {cfg.prompts} does not split evenly over {world.size} ranks "
                            f"(mpirun -np {world.size}): give a multiple of {world.size}")
        if world.root:
            check_out(cfg.out_dir(), cfg.ckpt, cfg.resume, cfg.force)
        if cfg.resume:
            cfg = resume_config(cfg)
    except UserError as e:
        error = e
    dist.agree(world, error)
    out, metrics = cfg.out_dir(), cfg.out_dir().parent / "metrics.jsonl"
    s = start_state(cfg, dist.EXTRA_SLOTS if world.size > 1 else 0)
    # the SFT model, which the KL is measured from: the starting weights, saved before any step
    ref = load_checkpoint(cfg.ckpt)[1] if cfg.resume else {k: v.copy() for k, v in s.params.items()}
    world_facts = World.load(cfg.world or Path(cfg.ckpt).parent / "world")
    task = make_task(cfg.task, world_facts)
    held = task.items("eval", cfg.eval_prompts, seed=cfg.seed)
    if world.root:
        trim_metrics(metrics, STAGE, out.name, s.step)
    dist.check_same_weights(world, s.optimizer.flat_p, s.step)        # the same start everywhere
    history, interrupted, busy, saved = [], False, False, s.step
    bar = tqdm(total=cfg.steps, initial=s.step, unit="step", desc=f"rl {cfg.task}",
               disable=not (cfg.progress and world.root), file=sys.stderr)
    t0 = time.perf_counter()
    try:
        for step in range(s.step, cfg.steps + 1):
            engine = policy_engine(s.params, s.model, s.tokenizer)   # packs the current weights
            rec = {"stage": STAGE, "out": out.name, "task": cfg.task, "step": step}
            if world.root and (step % cfg.eval_every == 0 or step == cfg.steps):   # the curve: pass@1
                rec["pass1"] = pass_at_1(engine, task, held, cfg.max_tokens)
            if world.root and step in (0, cfg.steps):                    # before and after: pass@k
                rec[f"pass{cfg.k}"] = pass_at_k(engine, task, held, cfg.k, cfg.max_tokens,
                                                _seed(cfg.seed, 1, step), cfg.temperature)
            if step < cfg.steps:
                busy = True
                rec.update(practise(cfg, s, ref, engine, task, step, world))
            if world.root:
                append_jsonl(metrics, rec)
            history.append(rec)
            if step < cfg.steps:
                s.step, busy = step + 1, False
                bar.set_postfix_str(f"reward {rec['reward']:.2f}", refresh=False)
                bar.update(1)
                if cfg.ckpt_every and s.step % cfg.ckpt_every == 0 and s.step < cfg.steps:
                    dist.check_same_weights(world, s.optimizer.flat_p, s.step)
                    if world.root:
                        save(cfg, s)
                    saved = s.step
    except KeyboardInterrupt:
        interrupted = True
    bar.close()
    if not busy:                         # weights caught mid-update are not saved
        if not interrupted:
            dist.check_same_weights(world, s.optimizer.flat_p, s.step)
        if world.root:
            save(cfg, s)
        saved = s.step
    return {"steps": saved, "seconds": time.perf_counter() - t0, "history": history,
            "interrupted": interrupted, "checkpoint": str(out)}


def practise(cfg, s, ref, engine, task, step, world=dist.World()):
    """One RL step: rollouts, rewards, advantages, the policy-gradient update; its stats.
    On R ranks this one samples the groups of prompts rank * P/R .. (rank + 1) * P/R - 1."""
    items = task.items("train", cfg.prompts, seed=_seed(cfg.seed, 2, step))
    per = cfg.prompts // world.size
    first = world.rank * per
    seed = _seed(cfg.seed, 0, step)             # answer c of the step draws from default_rng([seed, c])
    seeds = seed if world.size == 1 else [[seed, c] for c in range(first * cfg.group, (first + per) * cfg.group)]
    t = time.perf_counter()
    pairs = rollouts(engine, items[first:first + per], cfg.group, cfg.max_tokens, seeds, cfg.temperature)
    t_sample = time.perf_counter() - t
    shown = [read_reply(c.tokens, s.tokenizer)[1] for _, c in pairs]
    rewards, scored = score_replies(task, [it for it, _ in pairs], shown)
    adv = group_advantages(rewards, cfg.group, cfg.normalize)
    if cfg.positive_only:
        adv = np.maximum(adv, 0.0)
    x, m, _ = sequences(pairs, s.model.context_len)
    old = old_logprobs(pairs, x)
    tokens = float(m[:, 1:].sum())
    share = tokens / max(dist.sum_over_ranks(world, tokens), 1.0)      # this rank's part of the mean
    for _ in range(cfg.inner_epochs):
        grads, st = train_step(s.params, s.model, ref, x, m, adv, old, cfg)
        if world.size > 1:          # ONE Allreduce, each rank weighted by its answer tokens
            s.optimizer.accumulate(grads)
            dist.sum_step(world, s.optimizer, 0.0, False, share)
            s.optimizer.step(cfg.lr, clip=cfg.grad_clip)
        else:
            s.optimizer.step(cfg.lr, grads=grads, clip=cfg.grad_clip)
    out = dict(reward=float(rewards.mean()), length=float(np.mean([len(c.tokens) for _, c in pairs])),
               checking=float(np.mean([bool(CHECKING.search(text)) for text in shown])), **scored, **st)
    if world.size > 1:              # the whole step's numbers: answers' means over equal slices,
        out = _over_ranks(world, out, {k: share for k in st})   # the token-weighted ones by share
    return dict(out, seconds_sampling=t_sample, seconds=time.perf_counter() - t)


def _over_ranks(world, stats, weights):
    """{name: value} of the whole step from each rank's: the sum over ranks of value x its
    weight (weights[name], else 1/R: a mean over equal slices)."""
    names = sorted(stats)
    local = np.array([stats[k] * weights.get(k, 1.0 / world.size) for k in names], np.float64)
    return dict(zip(names, (float(v) for v in dist.sum_over_ranks(world, local))))
