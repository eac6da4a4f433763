"""The lecture's RL claims as numbers: the SFT model against the RL models, on held-out items.

    minillm rl eval --run runs/default        -> runs/default/rl_evals.json and a table

    practice      word problems (DeepSeek-R1): pass@1 (greedy) and pass@k (k samples at
                  the rollouts' temperature), SFT -> RL (pass@k not for the countdown model)
    thinking      the same answers' length in tokens and the share that check a step
                  ("Let me check: ..."), SFT -> RL: did RL keep the habit?
    imitation     countdown (AlphaGo): the demonstrator's accuracy (by construction,
                  chat/data_countdown.py), the SFT model that imitated it, the RL model
    which model   SFT vs RL on knowledge questions (world QA, held-out phrasings) and on
                  multi-step math: accuracy and tokens per answer, side by side

Every number is greedy decoding with a fixed seed on held-out items, so the same
checkpoints give the same table.

Read next: grpo.py (the loop), tasks.py (the checkers).
"""
import numpy as np

from minillm.chat.data_countdown import demonstrator_accuracy
from minillm.chat.evals import fact_items
from minillm.chat.sft import chat_tokenizer
from minillm.chat.splits import Splits
from minillm.nn.checkpoint import load_checkpoint
from minillm.rl.grpo import CHECKING, greedy_answers, pass_at_k, policy_engine
from minillm.rl.tasks import Item, make_task
from minillm.world.data import Rng


def engine_for(ckpt):
    model, params, _ = load_checkpoint(ckpt)
    return policy_engine(params, model, chat_tokenizer(ckpt, model.vocab_size))


def task_scores(engine, task, items, max_tokens):
    """accuracy, tokens per answer, checking share: greedy, on items."""
    answers = greedy_answers(engine, items, max_tokens)
    return {"accuracy": float(np.mean([task.reward(it, text) for it, (text, _) in zip(items, answers)])),
            "tokens": float(np.mean([n for _, n in answers])),
            "checking": float(np.mean([bool(CHECKING.search(text)) for text, _ in answers]))}


def qa_scores(engine, world, n, max_tokens=48):
    """World QA on `many` entities in held-out phrasings: accuracy and tokens per answer."""
    splits = Splits(world)
    facts = fact_items(world, splits, splits.entities(world, buckets=("many",)), Rng("chat-evals", 0, "qa"), n)
    items = [Item([{"role": "user", "content": q}], p.answer) for p, q in facts]
    answers = greedy_answers(engine, items, max_tokens)
    return {"accuracy": float(np.mean([world.check_answer(p, text) for (p, _), (text, _) in zip(facts, answers)])),
            "tokens": float(np.mean([k for _, k in answers]))}


def rl_evals(world, sft, math_rl=None, countdown_rl=None, n=200, k=8, max_tokens=160, temperature=0.7):
    """The four tables as a dict; a missing RL checkpoint leaves its rows out."""
    word, count = make_task("word_problems", world), make_task("countdown", world)
    problems = word.items("eval", n, seed=1)
    puzzles = count.items("eval", n, seed=1)
    out = {"n": n, "k": k, "models": {}}
    for name, ckpt in (("sft", sft), ("rl_math", math_rl), ("rl_countdown", countdown_rl)):
        if ckpt is None:
            continue
        engine = engine_for(ckpt)
        row = {"word_problems": task_scores(engine, word, problems, max_tokens),
               "countdown": task_scores(engine, count, puzzles, 32),
               "world_qa": qa_scores(engine, world, n)}
        if name != "rl_countdown":    # it practised the puzzle: its pass@1 is the word-problem row
            row["word_problems"][f"pass{k}"] = pass_at_k(engine, word, problems, k, max_tokens, seed=1,
                                                         temperature=temperature)
        out["models"][name] = row
    out["demonstrator"] = demonstrator_accuracy("eval")
    return out


def format_table(r):
    """The evals as the text table `minillm rl eval` prints."""
    m, k = r["models"], r["k"]
    cols = list(m)
    lines = [f"{'':<34}" + "".join(f"{c:>14}" for c in cols)]

    def row(label, get, fmt="{:>13.1%} "):
        lines.append(f"{label:<34}" + "".join(f"{'-':>13} " if get(m[c]) is None else fmt.format(get(m[c]))
                                              for c in cols))

    row("word problems: pass@1 (greedy)", lambda x: x["word_problems"]["accuracy"])
    row(f"word problems: pass@{k}", lambda x: x["word_problems"].get(f"pass{k}"))
    row("word problems: tokens per answer", lambda x: x["word_problems"]["tokens"], "{:>13.1f} ")
    row("word problems: answers that check", lambda x: x["word_problems"]["checking"])
    row("countdown: right", lambda x: x["countdown"]["accuracy"])
    row("world QA: right", lambda x: x["world_qa"]["accuracy"])
    row("world QA: tokens per answer", lambda x: x["world_qa"]["tokens"], "{:>13.1f} ")
    lines.append(f"countdown's demonstrator (by construction): {r['demonstrator']:.1%}")
    return "\n".join(lines)
