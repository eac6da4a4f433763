"""The RL loop: sample, check, reinforce what worked (GRPO on verifiable rewards).

    from minillm.rl.grpo import RLConfig, rl
    rl(RLConfig(ckpt="runs/default/sft", out="runs/default/rl", task="word_problems",
                world="runs/default/world", steps=40))

One step: P training prompts of the task (fresh ones each step, drawn from (seed, step));
G answers to each from the KV-cache engine (one shared prefill per prompt, temperature 1,
tools on); a reward per answer from the task's checker; advantages within each prompt's
group (loss.group_advantages); then the policy-gradient loss (loss.policy_gradient) on the
sampled tokens only (the prompt and the tools' outputs are masked), its gradient fed to the
model's own backward, AdamW. With inner_epochs > 1 the same rollouts are reused PPO-style
(ratio to the sampling policy, clipped); with beta > 0 a KL penalty to the SFT model.

Logged per step to metrics.jsonl (stage "rl"): mean reward, answer length in tokens, the
share of answers that check themselves, token entropy, KL to the SFT model; every
eval_every steps the held-out pass@1 (greedy) and pass@k (k samples at temperature 1).

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
from minillm.chat.sft import chat_tokenizer
from minillm.chat.template import chat_token_ids, render_prompt
from minillm.chat.tools import calculator
from minillm.common import UserError, append_jsonl
from minillm.generate.engine import Engine
from minillm.nn import gpt
from minillm.nn.checkpoint import load_checkpoint, save_checkpoint
from minillm.nn.optim import AdamW
from minillm.rl.loss import group_advantages, log_softmax, policy_gradient
from minillm.rl.tasks import make_task
from minillm.world.world import World

STAGE = "rl"
MICRO = 8                       # sequences per forward/backward (bounds the (B, T, V) logits)
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
    lr: float = 2e-5
    clip: float = 0.2               # PPO's clip (used when inner_epochs > 1)
    inner_epochs: int = 1           # passes over each step's rollouts (1: REINFORCE/GRPO)
    beta: float = 0.0               # KL penalty to the starting model
    normalize: bool = True          # divide advantages by the group's std (GRPO)
    grad_clip: float = 1.0
    eval_every: int = 10
    eval_prompts: int = 100         # held-out prompts for pass@1 / pass@k
    k: int = 8
    seed: int = 0
    threads: int = None
    progress: bool = True

    def out_dir(self):
        return Path(self.out) if self.out else Path(self.ckpt).parent / "rl"


def rollouts(engine, items, group, max_tokens, seed):
    """G sampled answers per item: [(item, completion)] in prompt-major order."""
    tok = engine.tokenizer
    sp = chat_token_ids(tok)
    prompts = [render_prompt(it.messages, tok) for it in items]
    out = engine.generate(prompts, n=group, temperature=1.0, max_tokens=max_tokens, seed=seed,
                          logprobs=True, stop=[sp["<|assistant_end|>"], sp["<|user_start|>"]])
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
    """Accumulate the policy-gradient gradient over micro-batches; (grads, stats)."""
    B = len(x)
    n_total = max(float(m[:, 1:].sum()), 1.0)
    grads, stats = None, {"loss": 0.0, "entropy": 0.0, "kl": 0.0, "clipped": 0.0}
    for s in range(0, B, MICRO):
        xb, mb = x[s:s + MICRO], m[s:s + MICRO]                          # (b, L)
        z, cache = gpt.forward(params, model, xb[:, :-1])                # (b, L-1, V)
        z = z.astype(np.float64)
        share = float(mb[:, 1:].sum()) / n_total                         # this micro-batch's weight
        ref_logp = None
        if cfg.beta > 0:
            zr, _ = gpt.forward(ref, model, xb[:, :-1], grad=False)
            ref_logp = log_softmax(zr.astype(np.float64))                # (b, L-1, V)
        old = old_logp[s:s + MICRO, 1:] if cfg.inner_epochs > 1 else None
        loss, dz, st = policy_gradient(z, xb[:, 1:], mb[:, 1:], adv[s:s + MICRO], old_logp=old,
                                       clip=cfg.clip, ref_logp=ref_logp, beta=cfg.beta)
        for key, value in (("loss", loss), ("entropy", st["entropy"]), ("kl", st["kl"]),
                           ("clipped", st["clipped"])):
            stats[key] += share * value
        g = gpt.backward(cache, (dz * share).astype(np.float32))
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


def passes(engine, task, items, k, max_tokens, seed):
    """(pass@1 greedy, pass@k with k samples at temperature 1) on held-out items."""
    tok = engine.tokenizer
    sp = chat_token_ids(tok)
    prompts = [render_prompt(it.messages, tok) for it in items]
    stop = [sp["<|assistant_end|>"], sp["<|user_start|>"]]
    greedy = engine.generate(prompts, temperature=0.0, max_tokens=max_tokens, seed=seed, stop=stop)
    p1 = np.mean([task.reward(it, read_reply(c.tokens, tok)[1]) for it, c in zip(items, greedy)])
    sampled = engine.generate(prompts, n=k, temperature=1.0, max_tokens=max_tokens, seed=seed, stop=stop)
    hits = np.array([task.reward(items[i // k], read_reply(c.tokens, tok)[1]) for i, c in enumerate(sampled)])
    pk = float(hits.reshape(len(items), k).max(axis=1).mean())
    return float(p1), pk


def _seed(seed, use, step):
    """One integer seed per (run seed, use, step): the engine gives completion c the stream
    default_rng([that, c]), so a step's samples depend on nothing else."""
    return (seed * 4 + use) * 1_000_003 + step


def policy_engine(params, model, tok):
    """An engine sampling from the weights as they are now, with the calculator."""
    engine = Engine(params, model, tok)
    engine.register_tool("python", calculator)
    return engine


def rl(cfg):
    """Run RL from cfg.ckpt; returns a dict of the run's numbers."""
    if cfg.threads:
        clib.set_num_threads(cfg.threads)
    if not cfg.ckpt:
        raise UserError("give --ckpt SFT: the checkpoint to practise from")
    model, params, meta = load_checkpoint(cfg.ckpt)
    ref = {k: v.copy() for k, v in params.items()} if cfg.beta > 0 else None
    tok = chat_tokenizer(cfg.ckpt, model.vocab_size)
    world = World.load(cfg.world or Path(cfg.ckpt).parent / "world")
    task = make_task(cfg.task, world)
    held = task.items("eval", cfg.eval_prompts, seed=cfg.seed)
    optimizer = AdamW(params, weight_decay=0.0)
    out, metrics = cfg.out_dir(), cfg.out_dir().parent / "metrics.jsonl"
    history = []
    bar = tqdm(total=cfg.steps, unit="step", desc="rl", disable=not cfg.progress, file=sys.stderr)
    t0 = time.perf_counter()
    for step in range(cfg.steps + 1):
        engine = policy_engine(params, model, tok)      # packs the current weights for decoding
        rec = {"stage": STAGE, "out": out.name, "step": step}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            rec["pass1"], rec[f"pass{cfg.k}"] = passes(engine, task, held, cfg.k, cfg.max_tokens, _seed(cfg.seed, 1, step))
        if step == cfg.steps:
            append_jsonl(metrics, rec)
            history.append(rec)
            break
        items = task.items("train", cfg.prompts, seed=_seed(cfg.seed, 2, step))
        pairs = rollouts(engine, items, cfg.group, cfg.max_tokens, _seed(cfg.seed, 0, step))
        shown = [read_reply(c.tokens, tok)[1] for _, c in pairs]
        rewards = np.array([task.reward(it, s) for (it, _), s in zip(pairs, shown)])
        adv = group_advantages(rewards, cfg.group, cfg.normalize)
        x, m, _ = sequences(pairs, model.context_len)
        old = old_logprobs(pairs, x)
        for _ in range(cfg.inner_epochs):
            grads, st = train_step(params, model, ref, x, m, adv, old, cfg)
            optimizer.step(cfg.lr, grads=grads, clip=cfg.grad_clip)
        rec.update(reward=float(rewards.mean()), length=float(np.mean([len(c.tokens) for _, c in pairs])),
                   checking=float(np.mean([bool(CHECKING.search(s)) for s in shown])), **st)
        append_jsonl(metrics, rec)
        history.append(rec)
        bar.set_postfix_str(f"reward {rec['reward']:.2f}", refresh=False)
        bar.update(1)
    bar.close()
    save_checkpoint(out, model, params, tokenizer=tok, meta={"stage": STAGE, "step": cfg.steps, "base": str(cfg.ckpt),
                                                           "rl": dataclasses.asdict(cfg)})
    return {"steps": cfg.steps, "seconds": time.perf_counter() - t0, "history": history}
