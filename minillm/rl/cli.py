"""`minillm rl`: practise an SFT model on a task with verifiable answers (grpo.py).

    minillm rl --ckpt runs/default/sft --task word_problems --out runs/default/rl
    minillm rl --out runs/default/rl --resume          (after Ctrl-C: bit-identical)
    minillm rl eval --run runs/default                 (the lecture's claims: evals.py)

Tasks: word_problems, countdown, spelling (tasks.py). A progress bar shows the running
reward; metrics.jsonl (next to --out) gets one line per step; the end prints pass@1 and
pass@k before and after. Exit status 130 when Ctrl-C stopped it (after a checkpoint).

Read next: grpo.py.
"""
import dataclasses
import sys
from pathlib import Path

from minillm import clib
from minillm.common import UserError, non_negative_int, positive_int, thread_count, write_json
from minillm.pretrain import dist
from minillm.rl.evals import format_table, rl_evals
from minillm.rl.grpo import RLConfig, rl
from minillm.rl.tasks import TASKS
from minillm.world.world import World


def add_arguments(parser):
    """`minillm rl` flags. Unset flags stay None, so --resume can tell them apart."""
    a = parser.add_argument
    a("action", nargs="?", choices=["eval"], help="eval: the SFT model against the run's RL models (evals.py)")
    a("--run", help="eval: the run directory holding sft/, rl/, rl_countdown/ and world/ (e.g. runs/default)")
    a("--ckpt", help="the SFT checkpoint to practise from (e.g. runs/default/sft)")
    a("--out", help="where the RL checkpoint goes (default <ckpt>/../rl)")
    a("--task", choices=sorted(TASKS), help="what to practise (default word_problems)")
    a("--world", help="the mini-world (default <ckpt>/../world)")
    a("--resume", action="store_true", default=None, help="continue the RL run in --out")
    a("--force", action="store_true", default=None, help="replace the RL run in --out")
    g = parser.add_argument_group("the loop").add_argument
    g("--steps", type=positive_int, help="RL steps (default 40)")
    g("--prompts", type=positive_int, help="prompts per step (default 8)")
    g("--group", type=positive_int, help="answers sampled per prompt (default 8)")
    g("--max-tokens", type=positive_int, help="tokens per answer, tool outputs included (default 160)")
    g("--lr", type=float, help="learning rate (default 1e-4)")
    g("--temperature", type=float, help="of the sampled answers, and of pass@k's (default 0.7)")
    g("--inner-epochs", type=positive_int, help="passes over each step's rollouts, PPO-style when > 1 (default 1)")
    g("--clip", type=float, help="PPO ratio clip, used when --inner-epochs > 1 (default 0.2)")
    g("--beta", type=float, help="KL penalty to the starting model (default 0: none)")
    g("--no-normalize", dest="normalize", action="store_false", default=None,
      help="advantages r - mean(r), not divided by the group's std")
    g("--seed", type=int, help="prompts and samples (default 0)")
    g = parser.add_argument_group("bookkeeping").add_argument
    g("--eval-every", type=positive_int, help="steps between held-out pass@1 / pass@k (default 10)")
    g("--eval-prompts", type=positive_int, help="held-out prompts (default 100)")
    g("--k", type=positive_int, help="samples per held-out prompt for pass@k (default 8)")
    g("--ckpt-every", type=non_negative_int, help="steps between checkpoints, 0 = at the end only (default 10)")
    g("--threads", type=thread_count, help="kernel threads (default all cores)")
    g("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")


def say(msg):
    print(msg, file=sys.stderr)


def run_eval(args):
    """`minillm rl eval --run DIR`: prints the table, writes DIR/rl_evals.json."""
    if not args.run:
        raise UserError("give --run DIR: the run with sft/ (and rl/, rl_countdown/) to compare")
    run = Path(args.run)
    if not (run / "sft" / "config.json").exists():
        raise UserError(f"{run}/sft is not a checkpoint; run `minillm speedrun` or `minillm sft` first")
    found = {sub: run / sub if (run / sub / "config.json").exists() else None for sub in ("rl", "rl_countdown")}
    if args.threads:
        clib.set_num_threads(args.threads)
    results = rl_evals(World.load(run / "world"), run / "sft", found["rl"], found["rl_countdown"],
                       n=args.eval_prompts or 100, k=args.k or 8, max_tokens=args.max_tokens or 160)
    print(format_table(results))
    write_json(run / "rl_evals.json", results)
    say(f"wrote {run / 'rl_evals.json'}")
    return 0


def run(args):
    if args.action == "eval":
        return run_eval(args)
    fields = {f.name for f in dataclasses.fields(RLConfig)}
    config = RLConfig(**{k: v for k, v in vars(args).items() if v is not None and k in fields})
    if not config.resume and not config.ckpt:
        raise UserError("--ckpt is required: the SFT checkpoint to practise from (or --out DIR --resume)")
    result = rl(config)
    if dist.launched_rank() != 0:           # under mpirun rank 0 reports
        return 130 if result["interrupted"] else 0
    first, last = result["history"][0] if result["history"] else {}, result["history"][-1] if result["history"] else {}
    k = [key for key in last if key.startswith("pass") and key != "pass1"]
    if "pass1" in first and "pass1" in last:
        say(f"held-out pass@1 {first['pass1']:.1%} -> {last['pass1']:.1%}"
            + (f"; {k[0].replace('pass', 'pass@')} {first[k[0]]:.1%} -> {last[k[0]]:.1%}" if k and k[0] in first else ""))
    if result["interrupted"]:
        say(f"interrupted; checkpoint at step {result['steps']}: resume with minillm rl --out {result['checkpoint']} --resume")
    say(f"{result['steps']} steps in {result['seconds']:.0f} s; checkpoint: {result['checkpoint']}")
    return 130 if result["interrupted"] else 0
