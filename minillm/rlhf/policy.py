"""RL against the reward model, and how it gets gamed (the lecture: "RLHF is not RL").

    minillm rlhf --ckpt runs/default/sft --steps 60          stops past the true-score peak
    minillm rlhf --ckpt runs/default/sft --steps 60 --hack   runs all 60 steps
    minillm rlhf --ckpt runs/default/sft --beta 0.1 --out runs/default/rlhf/policy_kl

The loop is rl/grpo.py's step (practise: rollouts, rewards, group advantages, the policy
gradient, AdamW) on the open-ended prompts (prompts.py), with the reward model as the task's
reward (Judged.score: one forward for every reply). The labeller's true score of the SAME
replies is logged beside the reward model's score at every step, and never trained on:
that is what a person would say of the model's answers. Every eval_every steps the greedy
answers to held-out prompts are scored by both (eval_rm, eval_true); the checkpoint kept
in --out is the one with the best held-out true score (the peak), and without --hack the
run stops once `patience` evals in a row found no better one. --hack runs every step and
also keeps the last weights (<out>_last): the reward model's score keeps climbing while
the true score falls, and samples.json shows the answers before, at and after the peak.
beta > 0 adds the KL penalty to the SFT model (rl/loss.py), the mitigation.

Read next: arena.py (rating the checkpoints against each other).
"""
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from minillm import clib
from minillm.chat.sft import trim_metrics
from minillm.common import UserError, append_jsonl, write_json
from minillm.nn.checkpoint import save_checkpoint
from minillm.rl.grpo import RLConfig, check_out, greedy_answers, policy_engine, practise, start_state
from minillm.rlhf.labeller import Labeller
from minillm.rlhf.prompts import OpenEnded
from minillm.rlhf.reward_model import RewardModel

STAGE = "rlhf"
SHOWN = 6                       # held-out answers kept per eval for samples.json


@dataclass
class Judged:
    """RLHF's task: open-ended prompts whose reward is the reward model's score."""
    prompts: OpenEnded
    rm: RewardModel
    labeller: Labeller
    name: str = "open_ended"

    def items(self, split, n, seed=0):
        return self.prompts.items(split, n, seed)

    def score(self, items, replies):
        """(rewards (n,), stats): the reward model's scores; the stats hold their mean and
        the labeller's true score of the same replies (logged, never a reward)."""
        r = self.rm.scores(items, replies)
        true = self.labeller.true_scores(items, replies)
        return r, {"rm": float(r.mean()), "true": float(true.mean())}


@dataclass
class RLHFConfig:
    ckpt: str = None                # the SFT checkpoint to start from
    reward_model: str = None        # default <ckpt>/../rlhf/reward_model
    out: str = None                 # the peak's checkpoint (default <ckpt>/../rlhf/policy)
    world: str = None               # default <ckpt>/../world
    base: str = None                # the labeller's fluency model (default <ckpt>/../base)
    metrics: str = None             # default <out>/../metrics.jsonl
    steps: int = 60
    prompts: int = 8                # P prompts per step
    group: int = 4                  # G answers per prompt
    max_tokens: int = 64
    temperature: float = 1.0
    lr: float = 1e-4
    beta: float = 0.0               # KL penalty to the SFT model
    eval_every: int = 2
    eval_prompts: int = 48
    patience: int = 4               # evals without a better true score before stopping
    hack: bool = False              # run every step (past the peak); keep the last weights too
    seed: int = 0
    force: bool = False
    threads: int = None
    progress: bool = True

    def path(self, name):
        """A setting's path, or its default beside the SFT checkpoint."""
        given = getattr(self, name)
        default = {"reward_model": "rlhf/reward_model", "out": "rlhf/policy", "world": "world", "base": "base"}
        return Path(given) if given else Path(self.ckpt).parent / default[name]

    def rl_config(self):
        """The settings of rl/grpo.py's step."""
        return RLConfig(ckpt=self.ckpt, task="open_ended", prompts=self.prompts, group=self.group,
                        max_tokens=self.max_tokens, temperature=self.temperature, lr=self.lr,
                        beta=self.beta, seed=self.seed)


def held_out(engine, task, items, max_tokens):
    """Greedy answers to the held-out items, scored by the reward model and the labeller:
    ({"eval_rm", "eval_true"}, [{prompt, answer, rm, true}])."""
    texts = [text for text, _ in greedy_answers(engine, items, max_tokens)]
    rm = task.rm.scores(items, texts)
    true = task.labeller.true_scores(items, texts)
    shown = [{"prompt": it.messages[-1]["content"], "answer": t, "rm": round(float(r), 3),
              "true": round(float(s), 3)} for it, t, r, s in zip(items, texts, rm, true)]
    return {"eval_rm": float(rm.mean()), "eval_true": float(true.mean())}, shown


def rlhf(cfg):
    """Run RLHF from cfg.ckpt; returns a dict: the history, the peak, where things went."""
    if cfg.threads:
        clib.set_num_threads(cfg.threads)
    if not cfg.ckpt:
        raise UserError("give --ckpt SFT: the checkpoint to start from")
    out = cfg.path("out")
    check_out(out, cfg.ckpt, False, cfg.force, stage=STAGE, what="RLHF")
    rl_cfg = cfg.rl_config()
    s = start_state(rl_cfg)
    ref = {k: v.copy() for k, v in s.params.items()}          # the SFT model, for the KL
    labeller = Labeller.load(cfg.path("world"), cfg.path("base"))
    task = Judged(OpenEnded(labeller.world), RewardModel.load(cfg.path("reward_model")), labeller)
    held = task.items("eval", cfg.eval_prompts, seed=cfg.seed)
    metrics = Path(cfg.metrics) if cfg.metrics else out.parent / "metrics.jsonl"
    trim_metrics(metrics, STAGE, out.name, 0)
    history, snapshots, peak = [], {}, None
    bar = tqdm(total=cfg.steps, unit="step", desc="rlhf", disable=not cfg.progress, file=sys.stderr)
    t0 = time.perf_counter()
    for step in range(cfg.steps + 1):
        engine = policy_engine(s.params, s.model, s.tokenizer)
        rec = {"stage": STAGE, "out": out.name, "step": step, "beta": cfg.beta}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            numbers, snapshots[step] = held_out(engine, task, held, cfg.max_tokens)
            rec.update(numbers)
            if peak is None or rec["eval_true"] > peak["eval_true"]:
                peak = dict(rec)
                save(cfg, s, out, step, rec)
            elif not cfg.hack and step - peak["step"] >= cfg.patience * cfg.eval_every:
                append_jsonl(metrics, rec)
                history.append(rec)
                break                                           # past the peak: stop
        if step < cfg.steps:
            rec.update(practise(rl_cfg, s, ref, engine, task, step))
            bar.set_postfix_str(f"rm {rec['rm']:.2f} true {rec['true']:.2f}", refresh=False)
            bar.update(1)
        append_jsonl(metrics, rec)
        history.append(rec)
    bar.close()
    last = out.parent / f"{out.name}_last"
    if cfg.hack:
        save(cfg, s, last, history[-1]["step"], history[-1])
    evals = sorted(snapshots)
    samples = {"before": {"step": 0, "answers": snapshots[0]},
               "peak": {"step": peak["step"], "answers": snapshots[peak["step"]]},
               "after": {"step": evals[-1], "answers": snapshots[evals[-1]]}}
    write_samples(out / "samples.json", samples)
    return {"history": history, "peak": peak, "seconds": time.perf_counter() - t0, "checkpoint": str(out),
            "hacked": str(last) if cfg.hack else None, "samples": samples}


def save(cfg, s, path, step, rec):
    """The weights after `step` updates, with what the run measured there."""
    meta = {"stage": STAGE, "step": step, "base": str(cfg.ckpt), "beta": cfg.beta,
            "eval_true": rec.get("eval_true"), "eval_rm": rec.get("eval_rm"),
            "rlhf": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("force", "progress", "threads")}}
    save_checkpoint(path, s.model, s.params, tokenizer=s.tokenizer, meta=meta)


def write_samples(path, samples):
    """samples.json: the held-out answers (first SHOWN) before RLHF, at the peak and at the end."""
    write_json(path, {k: dict(v, answers=v["answers"][:SHOWN]) for k, v in samples.items()})

