"""`minillm rlhf` and `minillm arena`: the reward model, RL against it, and the leaderboard.

    minillm rlhf reward-model --ckpt runs/default/sft    -> runs/default/rlhf/pairs.jsonl,
                                                            runs/default/rlhf/reward_model/
    minillm rlhf --ckpt runs/default/sft --steps 60      -> runs/default/rlhf/policy/ (the peak)
    minillm rlhf --ckpt runs/default/sft --hack          -> also runs/default/rlhf/policy_last/
    minillm rlhf --ckpt runs/default/sft --beta 0.1 --out runs/default/rlhf/policy_kl
    minillm arena --ckpt runs/default/sft --ckpt runs/default/rlhf/policy --name sft --name rlhf

The world and the base model (the labeller's fluency judge) default to world/ and base/ of
the run that holds --ckpt. Errors are one line.

Read next: reward_model.py, policy.py, arena.py.
"""
import dataclasses
import sys
from pathlib import Path

from minillm import clib
from minillm.common import (UserError, non_negative_float, positive_float, positive_int, thread_count,
                            write_json, atomic_write)
from minillm.nn.checkpoint import checkpoint_dir
from minillm.rl.grpo import check_out
from minillm.rlhf.arena import MAX_TOKENS, arena, format_table
from minillm.rlhf.labeller import Labeller
from minillm.rlhf.policy import RLHFConfig, rlhf
from minillm.rlhf.reward_model import STAGE as RM_STAGE
from minillm.rlhf.reward_model import RMConfig, make_reward_model


def say(msg):
    print(msg, file=sys.stderr)


def run_dir(ckpt):
    """The run directory holding ckpt: the nearest parent with a world/ in it."""
    for parent in Path(ckpt).absolute().parents:
        if (parent / "world" / "stats.json").exists():
            return parent
    raise UserError(f"no world/ found above {ckpt}: give --world and --base")


def judge(args, ckpt):
    """The labeller from --world/--base, or the run of ckpt's."""
    run = None if (args.world and args.base) else run_dir(ckpt)
    world, base = Path(args.world or run / "world"), Path(args.base or run / "base")
    if not (world / "stats.json").exists():
        raise UserError(f"--world {world} is not a mini-world (no stats.json)")
    checkpoint_dir(base)
    return Labeller.load(world, base)


# ---- minillm rlhf ---------------------------------------------------------------------------

def add_arguments(parser):
    """`minillm rlhf` flags; unset ones keep the config's defaults."""
    a = parser.add_argument
    a("action", nargs="?", choices=["reward-model"], help="reward-model: sample, label and train the reward model")
    a("--ckpt", help="the SFT checkpoint (e.g. runs/default/sft)")
    a("--out", help="reward-model: default <ckpt>/../rlhf/reward_model; RL: default <ckpt>/../rlhf/policy")
    a("--reward-model", help="RL: the reward model (default <ckpt>/../rlhf/reward_model)")
    a("--world", help="the mini-world (default: the run's world/)")
    a("--base", help="the base model, the labeller's fluency judge (default: the run's base/)")
    a("--force", action="store_true", default=None, help="replace an earlier output in --out")
    g = parser.add_argument_group("the reward model").add_argument
    g("--prompts", type=positive_int, help="training prompts (reward-model, default 1536) or prompts per RL step (default 8)")
    g("--held-out", type=positive_int, help="held-out prompts for the pair accuracy (default 256)")
    g("--k", type=positive_int, help="answers per prompt the labeller orders (default 4)")
    g("--epochs", type=positive_int, help="passes over the pairs (default 1)")
    g("--logp", action="store_true", default=None,
      help="the score also reads the SFT model's mean log-probability of the answer (more accurate, "
           "harder to game: see README)")
    g = parser.add_argument_group("RL against it").add_argument
    g("--steps", type=positive_int, help="RL steps at most (default 60)")
    g("--hack", action="store_true", default=None, help="run every step, past the true-score peak; keep the last weights too")
    g("--beta", type=non_negative_float, help="KL penalty to the SFT model (default 0)")
    g("--group", type=positive_int, help="answers per prompt (default 4)")
    g("--patience", type=positive_int, help="evals without a better true score before stopping (default 4)")
    g("--eval-every", type=positive_int, help="steps between held-out evals (default 2)")
    g("--eval-prompts", type=positive_int, help="held-out prompts (default 48)")
    g("--lr", type=positive_float, help="learning rate (reward model default 1e-4, RL 1e-4)")
    g("--temperature", type=positive_float, help="of the sampled answers (reward model 0.8, RL 1.0)")
    g("--max-tokens", type=positive_int, help="tokens per answer (default 64)")
    g("--seed", type=int, help="prompts and samples (default 0)")
    g("--threads", type=thread_count, help="kernel threads (default all cores)")
    g("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")


def _given(args, cls, rename=()):
    """The flags given that are fields of dataclass cls (unset flags are None)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {dict(rename).get(k, k): v for k, v in vars(args).items() if v is not None}
    return {k: v for k, v in values.items() if k in fields}


def run(args):
    if not args.ckpt:
        raise UserError("give --ckpt SFT: the SFT checkpoint (e.g. runs/default/sft)")
    checkpoint_dir(args.ckpt)
    if args.threads:
        clib.set_num_threads(args.threads)
    if args.action == "reward-model":
        return run_reward_model(args)
    cfg = RLHFConfig(**_given(args, RLHFConfig))
    if not (cfg.path("reward_model") / "config.json").exists():
        raise UserError(f"no reward model at {cfg.path('reward_model')}: train one with `minillm rlhf "
                        f"reward-model --ckpt {args.ckpt}`, or give --reward-model")
    result = rlhf(cfg)
    peak, first = result["peak"], result["history"][0]
    say(f"held-out true score {first['eval_true']:.3f} (SFT) -> {peak['eval_true']:.3f} at the peak, step {peak['step']}"
        f" (reward model {first['eval_rm']:.2f} -> {peak['eval_rm']:.2f})")
    last = [h for h in result["history"] if "eval_true" in h][-1]
    if last["step"] != peak["step"]:
        say(f"at step {last['step']}: true score {last['eval_true']:.3f}, reward model {last['eval_rm']:.2f}")
    say(f"{result['history'][-1]['step']} steps in {result['seconds']:.0f} s; the peak's checkpoint: {result['checkpoint']}"
        + (f"; the last weights: {result['hacked']}" if result["hacked"] else "")
        + f"; samples: {Path(result['checkpoint']) / 'samples.json'}")
    return 0


def run_reward_model(args):
    out = Path(args.out) if args.out else Path(args.ckpt).parent / "rlhf" / "reward_model"
    check_out(out, args.ckpt, False, args.force, stage=RM_STAGE, what="reward model")
    cfg = RMConfig(**_given(args, RMConfig))
    labeller = judge(args, args.ckpt)
    result = make_reward_model(args.ckpt, out, labeller, cfg,
                               log=lambda r: say(f"epoch {r['epoch']}: held-out pair accuracy {r['accuracy']:.1%}")
                               if "accuracy" in r else None)
    say(f"{result['pairs']} training pairs, {result['held_out_pairs']} held-out; held-out pair accuracy "
        f"{result['accuracy']:.1%} (train {result['train_accuracy']:.1%})")
    if "logp_weight" in result:
        say(f"score = the head on the last state + {result['logp_weight']:.2f} x the SFT model's mean "
            "log-probability of the answer's tokens")
    parts = result["by_part"]
    say("right by what decided the pair: " + ", ".join(f"{k} {v['accuracy']:.0%} of {v['pairs']}"
                                                        for k, v in parts["parts"].items())
        + f"; the noise-free true score orders {parts['ceiling']:.1%} as the labeller did")
    say(f"wrote {out.parent / 'pairs.jsonl'} and the reward model {out}")
    return 0


# ---- minillm arena ---------------------------------------------------------------------------

def add_arena_arguments(parser):
    a = parser.add_argument
    a("--ckpt", action="append", help="a checkpoint to rate (give two or more)")
    a("--name", action="append", help="its name in the table (one per --ckpt; default the directory's name)")
    a("--out", help="the table's path without extension: <out>.json and <out>.md (default <run>/arena)")
    a("--world", help="the mini-world (default: the first checkpoint's run's world/)")
    a("--base", help="the base model, the labeller's fluency judge (default: the run's base/)")
    a("--prompts", type=positive_int, default=60, help="prompts of each kind: open-ended, word problems, countdown (default 60)")
    a("--rounds", type=positive_int, default=200, help="bootstrap rounds (default 200)")
    a("--max-tokens", type=positive_int, default=64, help="tokens per open-ended answer (default 64; word "
      "problems get 160, countdown 32)")
    a("--seed", type=int, default=0, help="the prompts and the battles' order (default 0)")
    a("--threads", type=thread_count, help="kernel threads (default all cores)")


def run_arena(args):
    ckpts = args.ckpt or []
    if len(ckpts) < 2:
        raise UserError("give at least two --ckpt: an arena needs models to battle")
    names = args.name or [Path(c).name for c in ckpts]
    if len(names) != len(ckpts):
        raise UserError(f"{len(names)} --name for {len(ckpts)} --ckpt: give one name per checkpoint, or none")
    if len(set(names)) != len(names):
        raise UserError("two checkpoints have the same name: give --name for each")
    for c in ckpts:
        checkpoint_dir(c)
    if args.threads:
        clib.set_num_threads(args.threads)
    labeller = judge(args, ckpts[0])
    out = Path(args.out) if args.out else run_dir(ckpts[0]) / "arena"
    result = arena(names, ckpts, labeller, args.prompts, args.prompts, args.prompts,
                   dict(MAX_TOKENS, open_ended=args.max_tokens), args.rounds, args.seed,
                   progress=lambda name: say(f"answered: {name}"))
    table = format_table(result)
    print(table)
    write_json(out.with_suffix(".json"), result)
    atomic_write(out.with_suffix(".md"), table + "\n")
    say(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0
