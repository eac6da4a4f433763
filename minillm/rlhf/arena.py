"""An arena: checkpoints answer the same prompts, pairwise battles, Elo and Bradley-Terry.

    minillm arena --ckpt runs/default/sft --ckpt runs/default/rlhf/policy --ckpt ...
        -> arena.json and arena.md next to the first checkpoint's run (or --out)

How LM Arena keeps track of models, with judges that need no people: every model answers
every prompt of a fixed set greedily; each pair of models then "battles" on each prompt.
Where the prompt has an answer (word problems, countdown: rl/tasks.py's checkers) the
right answer wins and two right or two wrong answers tie; where it has none (prompts.py's
open-ended prompts, held-out entities) the labeller's true score decides, closer than its
TIE being a tie. Ratings on the Elo scale (400 points = 10:1 odds, mean 1000):

    elo            online updates in a given order, R_a += k (S_a - E_a) with
                   E_a = 1 / (1 + 10^((R_b - R_a) / 400)); it depends on the order, so
                   the table shows the median over the bootstrap's shuffled resamples
    bradley_terry  the maximum-likelihood ratings of P(a beats b) = E_a over all battles
                   at once (a tie is half a win each), by Newton's method: order-free, what
                   the LM Arena leaderboard shows
    bootstrap      95% intervals: the ratings of battles resampled with replacement

Read next: cli.py (the commands).
"""
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from minillm.rl.evals import engine_for
from minillm.rl.grpo import greedy_answers
from minillm.rl.tasks import make_task
from minillm.rlhf.labeller import TIE
from minillm.rlhf.prompts import OpenEnded

SCALE, BASE, INIT = 400.0, 10.0, 1000.0


@dataclass
class Battle:
    a: int                          # model indices
    b: int
    score: float                    # a's result: 1 win, 0.5 tie, 0 loss
    kind: str                       # what the prompt was ("open_ended", "word_problems", ...)


# ---- the ratings -----------------------------------------------------------------------------

def expected(ra, rb):
    """P(a beats b) on the Elo scale."""
    # exercise: elo
    return 1.0 / (1.0 + BASE ** ((rb - ra) / SCALE))
    # end exercise


def elo(battles, n, k=4.0):
    """(n,) ratings after the battles in the order given, everyone starting at INIT."""
    # exercise: elo
    r = np.full(n, INIT)
    for bt in battles:
        e = expected(r[bt.a], r[bt.b])
        r[bt.a] += k * (bt.score - e)
        r[bt.b] -= k * (bt.score - e)                # b's result is 1 - score, its expectation 1 - e
    return r
    # end exercise


def bradley_terry(battles, n, prior=1e-3, iters=50):
    """(n,) maximum-likelihood ratings, mean INIT. x = (beta_a - beta_b) in natural units:
    log-likelihood sum y log sigmoid(x) + (1 - y) log sigmoid(-x), y the score; its gradient
    in beta is (y - sigmoid(x)) (e_a - e_b), its Hessian -sigmoid(x)(1 - sigmoid(x)) (e_a - e_b)(e_a - e_b)^T.
    A tiny Gaussian prior keeps a model that won (or lost) everything finite."""
    a = np.array([bt.a for bt in battles])
    b = np.array([bt.b for bt in battles])
    y = np.array([bt.score for bt in battles], np.float64)
    beta = np.zeros(n)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(beta[a] - beta[b])))                   # (N,)
        g = -prior * beta                                                  # (n,)
        np.add.at(g, a, y - p)
        np.add.at(g, b, p - y)
        w = p * (1 - p)                                                    # (N,)
        H = -prior * np.eye(n)                                             # (n, n)
        np.add.at(H, (a, a), -w)
        np.add.at(H, (b, b), -w)
        np.add.at(H, (a, b), w)
        np.add.at(H, (b, a), w)
        step = np.linalg.solve(H, g)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    r = beta * SCALE / np.log(BASE)                                        # natural units -> Elo points
    return r - r.mean() + INIT


def bootstrap(battles, n, rate, rounds=200, seed=0, median=False):
    """(lo (n,), hi (n,)): the 2.5% and 97.5% percentiles of rate(resampled battles, n), a
    resample being len(battles) draws with replacement in draw order (with median: and the
    median (n,) too)."""
    rng = np.random.default_rng(seed)
    samples = np.array([rate([battles[i] for i in rng.integers(0, len(battles), len(battles))], n)
                        for _ in range(rounds)])                           # (rounds, n)
    lo, hi = np.percentile(samples, 2.5, axis=0), np.percentile(samples, 97.5, axis=0)
    return (lo, hi, np.median(samples, axis=0)) if median else (lo, hi)


# ---- the battles ------------------------------------------------------------------------------

def judged(results, kinds, tie=TIE):
    """Battles of every pair of models on every prompt: results (models, prompts) holds each
    answer's check (0/1) or true score; kinds (prompts,) what each prompt is."""
    out = []
    for a, b in combinations(range(len(results)), 2):
        for j, kind in enumerate(kinds):
            d = results[a][j] - results[b][j]
            out.append(Battle(a, b, 0.5 if abs(d) < tie else float(d > 0), kind))
    return out


def prompt_set(world, n_open, n_math, n_countdown, seed=0):
    """[(kind, task, items)]: held-out open-ended prompts, word problems and countdown puzzles."""
    open_ended = OpenEnded(world)
    words, count = make_task("word_problems", world), make_task("countdown", world)
    return [("open_ended", None, open_ended.items("eval", n_open, seed=seed)),
            ("word_problems", words, words.items("eval", n_math, seed=seed)),
            ("countdown", count, count.items("eval", n_countdown, seed=seed))]


def answer_all(ckpt, labeller, prompts, max_tokens):
    """One model's result on every prompt, in prompt_set order: a check or a true score.
    max_tokens: {kind: tokens per answer}."""
    engine = engine_for(ckpt)
    out = []
    for kind, task, items in prompts:
        texts = [t for t, _ in greedy_answers(engine, items, max_tokens[kind])]
        if task is None:
            out += list(labeller.true_scores(items, texts))
        else:
            out += [task.reward(it, t) for it, t in zip(items, texts)]
    return out


MAX_TOKENS = {"open_ended": 64, "word_problems": 160, "countdown": 32}


def arena(names, ckpts, labeller, n_open=60, n_math=60, n_countdown=60, max_tokens=MAX_TOKENS, rounds=200,
          seed=0, progress=None):
    """The arena's dict: per model its ratings with intervals, win rates and per-kind means.
    max_tokens: {kind: tokens per answer}."""
    prompts = prompt_set(labeller.world, n_open, n_math, n_countdown, seed)
    kinds = [kind for kind, _, items in prompts for _ in items]
    results = []
    for name, ckpt in zip(names, ckpts):
        results.append(answer_all(ckpt, labeller, prompts, max_tokens))
        if progress:
            progress(name)
    battles = judged(np.array(results), kinds)
    n = len(names)
    r_bt = bradley_terry(battles, n)
    lo, hi = bootstrap(battles, n, bradley_terry, rounds, seed)
    elo_lo, elo_hi, r_elo = bootstrap(battles, n, elo, rounds, seed, median=True)
    models = []
    for i, name in enumerate(names):
        mine = [bt for bt in battles if i in (bt.a, bt.b)]
        wins = [bt.score if bt.a == i else 1 - bt.score for bt in mine]
        means = {kind: float(np.mean([results[i][j] for j, k in enumerate(kinds) if k == kind]))
                 for kind, _, _ in prompts}
        models.append({"name": name, "ckpt": str(ckpts[i]), "bt": float(r_bt[i]), "bt_ci": [float(lo[i]), float(hi[i])],
                       "elo": float(r_elo[i]), "elo_ci": [float(elo_lo[i]), float(elo_hi[i])],
                       "win_rate": float(np.mean(wins)), "battles": len(mine), **means})
    models.sort(key=lambda m: -m["bt"])
    return {"prompts": {kind: len(items) for kind, _, items in prompts}, "battles": len(battles),
            "rounds": rounds, "models": models}


def format_table(result):
    """The leaderboard as a markdown table."""
    lines = ["| rank | model | Bradley-Terry (95% CI) | Elo, bootstrap median (95% CI) | win rate | open-ended true score "
             "| word problems | countdown |", "|---:|---|---|---|---:|---:|---:|---:|"]
    for rank, m in enumerate(result["models"], 1):
        lines.append(f"| {rank} | {m['name']} | {m['bt']:.0f} ({m['bt_ci'][0]:.0f} to {m['bt_ci'][1]:.0f}) "
                     f"| {m['elo']:.0f} ({m['elo_ci'][0]:.0f} to {m['elo_ci'][1]:.0f}) | {m['win_rate']:.1%} "
                     f"| {m['open_ended']:.3f} | {m['word_problems']:.1%} | {m['countdown']:.1%} |")
    p = result["prompts"]
    lines.append(f"\n{result['battles']} battles on {sum(p.values())} prompts ({', '.join(f'{v} {k}' for k, v in p.items())}); "
                 f"intervals from {result['rounds']} bootstrap rounds.")
    return "\n".join(lines)
