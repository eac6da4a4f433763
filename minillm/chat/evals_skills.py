"""The chat evals of skills: arithmetic with the calculator, tokens to think, spelling.

Part of the chat evals (evals.py runs them all). Each builds held-out items the way the
SFT generators do (data_math.py's problems with splits.problem(key) == "eval",
data_spelling.py's questions on splits.word(w) == "eval" words) and recomputes the answer:

    eval_calculator  4-digit products and 3-step word problems, asked with the calculator cue
    eval_think       the same kind of 3-step problems, cued "Think step by step." and cued
                     "Give the answer first, then explain.": two rates, and their gap
    eval_spelling    letter counts (direct / spelled out / the tool) on held-out words with a
                     repeated letter, asking in turn about a letter the word repeats (the
                     "strawberry" case), one it holds once and one it lacks (so no constant
                     guess scores), and reversals (direct / spelled out); the
                     spelling data has no cue, so the reply's first words
                     are forced as the data writes each method ("Let me spell it out:")

A problem's answer is read from the reply by its own final sentence (Problem.final with
the number left open: "Lira Vendel spends (N) crowns in all"), in the text as shown, the
calculator's outputs included; a reply that never states it is wrong.

Read next: cli.py's `eval` action.
"""
import re

from minillm.chat.data_math import CUES, arithmetic, make_problem
from minillm.chat.data_spelling import count_letter, reverse_word, vocabulary
from minillm.chat.evals_ask import ask, rate, scored
from minillm.chat.tools import calculator
from minillm.world.data import Rng

MAX_TRIES = 200                     # draws per wanted problem before giving up (a tiny world)


def eval_problems(world, splits, n, seed, kind):
    """n held-out problems: kind "product4" (4-digit products) or "steps3" (3-step word
    problems, every template but the bare products)."""
    rng = Rng("chat-evals", seed, kind)
    ids = [i for i in world.entities if world.bucket[i] != "never"]
    out = []
    for _ in range(MAX_TRIES * n):
        if len(out) == n:
            break
        p = arithmetic(world, ids, rng) if kind == "product4" else make_problem(world, ids, rng)
        wanted = p is not None and (p.template == "product4" if kind == "product4"
                                    else p.template not in ("product4", "product2") and len(p.steps) == 3)
        if wanted and splits.problem(p.key) == "eval" and p.key not in {q.key for q in out}:
            out.append(p)
    return out


def stated_answer(problem, text):
    """The number the reply gives in the problem's final sentence, or None."""
    pattern = re.escape(problem.final.rstrip(".")).replace(re.escape("{answer}"), r"(-?\d[\d,]*)")
    found = re.findall(pattern, text, flags=re.IGNORECASE)
    return int(found[-1].replace(",", "")) if found else None


def _solve(engine, problems, cue, max_tokens):
    """(flags, replies): each problem asked with the cue, judged by recomputation."""
    replies = ask(engine, [[{"role": "user", "content": f"{p.question} {cue}"}] for p in problems], max_tokens)
    flags = [stated_answer(p, r.shown) == p.answer for p, r in zip(problems, replies) if r is not None]
    return flags, replies


def eval_calculator(engine, world, splits, seed=0, limit=None, max_tokens=160):
    """4-digit products (rate_product4) and 3-step word problems (rate_steps3) with the
    calculator cue; rate over both, and how often the calculator was called."""
    engine.register_tool("python", calculator)
    n = limit or 50
    products, problems = eval_problems(world, splits, n, seed, "product4"), eval_problems(world, splits, n, seed, "steps3")
    f4, r4 = _solve(engine, products, CUES["calculator"], max_tokens)
    f3, r3 = _solve(engine, problems, CUES["calculator"], max_tokens)
    used = [("python" in r.tools) for r in r4 + r3 if r is not None]
    return scored("calculator", f4 + f3, r4 + r3, rate_product4=rate(f4), rate_steps3=rate(f3),
                  calculator_used=rate(used))


def eval_think(engine, world, splits, seed=0, limit=None, max_tokens=160):
    """Held-out 3-step problems, step by step vs answer first: rate is step_by_step's,
    gap = step_by_step - answer_first (the lecture: thinking in tokens pays)."""
    engine.register_tool("python", calculator)
    problems = eval_problems(world, splits, limit or 50, seed, "steps3")
    fs, rs = _solve(engine, problems, CUES["step_by_step"], max_tokens)
    fa, ra = _solve(engine, problems, CUES["answer_first"], max_tokens)
    s, a = rate(fs), rate(fa)
    return scored("think", fs, rs, step_by_step=s, answer_first=a,
                  gap=None if s is None or a is None else s - a, too_long_answer_first=sum(r is None for r in ra))


# How each method's reply starts (data_spelling.py's wordings): forced, so the eval asks for it.
COUNT_STARTS = {"direct": "There", "spelled": "Let me spell it out:", "tool": "Spelled out:"}
_COUNT = re.compile(r"there (?:is|are) (\d+)", re.IGNORECASE)
_REVERSED = re.compile(r"backwards is \"([^\"]*)\"", re.IGNORECASE)


def eval_spelling(engine, world, splits, seed=0, limit=None, max_tokens=96):
    """Letter counts by each method and reversals direct vs spelled out, on held-out words:
    a rate per (task, method); rate = the spelled-out count rate; direct / spelled: both
    tasks pooled."""
    engine.register_tool("python", calculator)
    rng = Rng("chat-evals", seed, "spelling")
    words = [w for w in vocabulary(world) if splits.word(w) == "eval" and len(set(w)) < len(w)]
    words = rng.sample(words, min(len(words), limit or 50))
    letters = [count_letter_for(w, k, rng) for k, w in enumerate(words)]
    out, pooled, all_replies = {}, {"direct": [], "spelled": []}, []
    for method, start in COUNT_STARTS.items():
        asked = [count_letter(w, c, method) for w, c in zip(words, letters)]
        replies = ask(engine, [[{"role": "user", "content": q}] for q, _, _ in asked], max_tokens,
                      prefixes=[start] * len(asked))
        flags = [_last_int(_COUNT, r.shown) == n for (_, _, n), r in zip(asked, replies) if r is not None]
        out[f"count_{method}"] = rate(flags)
        pooled.get(method, []).extend(flags)
        all_replies += replies
    for method in ("direct", "spelled"):
        asked = [reverse_word(w, method) for w in words]
        starts = [f"\"{w}\" backwards is \"" if method == "direct" else "Forwards:" for w in words]
        replies = ask(engine, [[{"role": "user", "content": q}] for q, _, _ in asked], max_tokens, prefixes=starts)
        flags = [_last(_REVERSED, r.text) == backwards for (_, _, backwards), r in zip(asked, replies) if r is not None]
        out[f"reverse_{method}"] = rate(flags)
        pooled[method].extend(flags)
        all_replies += replies
    result = scored("spelling", [], all_replies, direct=rate(pooled["direct"]), spelled=rate(pooled["spelled"]), **out)
    result.update(n=len(words), rate=out["count_spelled"])
    return result


def count_letter_for(word, k, rng):
    """The letter the k-th count question asks about, in turn one the word repeats (the
    "strawberry" case), one it holds once (when it has one) and one it lacks: a reply that
    always says "2" (or "1") is right about a third of the time, not always."""
    counts = {c: word.count(c) for c in sorted(set(word))}
    repeated, once = [c for c, n in counts.items() if n > 1], [c for c, n in counts.items() if n == 1]
    absent = [c for c in "aeiourstnlm" if c not in counts]
    kind = k % 3
    if kind == 1 and once:
        return rng.choice(once)
    if kind == 2 and absent:
        return rng.choice(absent)
    return rng.choice(repeated)


def _last(pattern, text):
    found = pattern.findall(text)
    return found[-1].lower() if found else None


def _last_int(pattern, text):
    found = pattern.findall(text)
    return int(found[-1]) if found else None
