"""Kind 5 of the SFT conversations: tokens to think, word problems about mini-world entities.

A transformer does a fixed amount of computation per token, so a multi-step problem must be
spread over tokens: each intermediate result written down before the next step uses it.
Every problem (shopping at a person's local prices, a company's boxes, ages, distances
between cities; 2 to 4 steps, integer arithmetic) is written in one of:

    answer_first   "Lira spends 62 crowns. Here is why: 3 loaves at 4 crowns cost 3 * 4 = 12 ..."
                   (the answer must come out of one token's computation: the bad format)
    step_by_step   "Step 1: 3 loaves at 4 crowns each cost 3 * 4 = 12 crowns.
                    Step 3: together that is 12 + 50 = 10 + 50 + 2 = 60 + 2 = 62 crowns. So ..."
    calculator     the same steps, each through the tool:
                   <|python_start|>3 * 4<|python_end|><|output_start|>12<|output_end|>;
                   the last inside the answer's sentence, so the stated answer is the
                   tool's output and not the model's copy of it

CHECK_SHARE of the step-by-step solutions redo their last step the other way round before
answering ("Let me check: 38 + 47 = 85."), a habit RL can keep or drop.

What "one token's worth" is depends on the model. For minillm's tiny ones it is a
times-table or single-digit fact, so the numbers are small (2..9 of a thing at 2..9 each)
and step by step splits two-digit numbers into tens and ones (worked(): the pretraining
worksheets' method, written in one line). Plus bare arithmetic: 4-digit products (the
calculator's job), two-digit sums and two-digit times one-digit products (the pieces).
Half the prompts name their format ("Think step by step."); the others get the default
(step by step; the calculator for big products), so an eval can ask for either. (Un-cued
problems answered half answer first, half step by step, to leave RL a habit to settle,
cost the step-by-step practice: 10.0% instead of 28.5% on the think eval.)

    problem = make_problem(world, rng)   # Problem(key, question, steps, answer, ...)
    exprs and values of every step are in the record, so a test recomputes them.

Read next: data_spelling.py (kind 6).
"""
import operator
from dataclasses import dataclass

from minillm.chat.tools import calculator
from minillm.world.templates import pronoun

FORMATS = ("answer_first", "step_by_step", "calculator")
CUES = {"answer_first": "Give the answer first, then explain.", "step_by_step": "Think step by step.",
        "calculator": "Use the calculator."}
CHECK_SHARE = 0.15       # step-by-step solutions that redo their last step before answering
ITEMS = ("loaves of bread", "apples", "notebooks", "candles", "cups of tea", "pencils", "oranges",
         "tickets", "bowls of soup", "postcards")


OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv}  # "/": exact here


@dataclass
class Step:
    text: str        # "3 loaves at 4 crowns each cost {calc} crowns"; {calc} is where the result goes
    expr: str        # "3 * 4", what the calculator is given: written as the question writes
                     # it, so copying it into the call is token for token
    shown: str       # "3 * 4", how the step writes it
    value: int
    worked: str      # "47 + 38 = 40 + 30 + 7 + 8 = 70 + 15 = 85": small enough for each token


@dataclass
class Problem:
    key: tuple       # template name and the numbers: splits.problem(key) decides its split
    template: str
    question: str
    steps: list      # [Step]
    answer: int
    final: str       # "Lira Vendel spends {answer} crowns in all."


def _step(text, a, op, b):
    value = OPS[op](a, b)
    return Step(text, f"{a} {op} {b}", f"{a} {op} {b}", value, worked(a, op, b))


def worked(a, op, b):
    """The arithmetic of one step, in pieces a tiny model can do one per token: a times-table
    or single-digit fact at once; two-digit numbers split into tens and ones first.

        7 * 8      -> "7 * 8 = 56"
        47 + 38    -> "47 + 38 = 40 + 30 + 7 + 8 = 70 + 15 = 85"
        47 * 6     -> "47 * 6 = 40 * 6 + 7 * 6 = 240 + 42 = 282"
    """
    value = OPS[op](a, b)
    fact = f"{a} {op} {b} = {value}"
    if op == "+" and (a >= 10 or b >= 10) and (a % 10 or b % 10) and max(a, b) < 100:
        ta, oa, tb, ob = a // 10 * 10, a % 10, b // 10 * 10, b % 10
        tens = " + ".join(str(t) for t in (ta, tb) if t)
        ones = " + ".join(str(o) for o in (oa, ob) if o)
        if ("+" in tens) or ("+" in ones):
            return f"{a} {op} {b} = {tens} + {ones} = {ta + tb} + {oa + ob} = {value}"
    if op == "*" and max(a, b) >= 13 and min(a, b) <= 9 and max(a, b) < 100 and max(a, b) % 10:
        big, small = max(a, b), min(a, b)
        t, o = big // 10 * 10, big % 10
        return f"{a} {op} {b} = {t} * {small} + {o} * {small} = {t * small} + {o * small} = {value}"
    return fact


def _people(world, ids, rng, n):
    people = [i for i in ids if world.entities[i].type == "person"]
    return [world.entities[i] for i in rng.sample(people, n)] if len(people) >= n else None


def shopping(world, ids, rng):
    [p] = _people(world, ids, rng, 1) or [None]
    if p is None:
        return None
    country = world.entities[world.entities[p.links["home_city"]].links["country"]]
    cur = country.attrs["currency"]
    i1, i2 = rng.sample(ITEMS, 2)
    a, x, b, y = (rng.randint(2, 9) for _ in range(4))
    steps = [_step(f"{a} {i1} at {x} {cur} each cost {{calc}} {cur}", a, "*", x),
             _step(f"{b} {i2} at {y} {cur} each cost {{calc}} {cur}", b, "*", y)]
    steps.append(_step(f"together that is {{calc}} {cur}", steps[0].value, "+", steps[1].value))
    question = (f"{p.name} lives in {world.entities[p.links['home_city']].name}, where people pay in "
                f"{cur}. {pronoun(p, 'He')} buys {a} {i1} at {x} {cur} each and {b} {i2} at {y} {cur} each.")
    fee = rng.randint(2, 9) if rng.chance(0.3) else 0
    if fee:
        steps.append(_step(f"with the bus fare that is {{calc}} {cur}", steps[-1].value, "+", fee))
        question += f" The bus there costs {pronoun(p, 'him')} {fee} {cur}."
    question += f" How much does {pronoun(p, 'he')} spend in all?"
    return Problem(("shopping", p.id, i1, i2, a, x, b, y, fee), "shopping", question, steps,
                   steps[-1].value, f"{p.name} spends {{answer}} {cur} in all.")


def factory(world, ids, rng):
    orgs = [world.entities[i] for i in ids if world.entities[i].type == "org"]
    if not orgs:
        return None
    o = rng.choice(orgs)
    a, b, d = rng.randint(2, 6), rng.randint(2, 6), rng.randint(2, 4)
    steps = [_step("each day it packs {calc} items", a, "*", b),
             _step(f"in {d} days that is {{calc}} items", a * b, "*", d)]
    question = (f"{o.name} makes {o.attrs['industry']}. Each day it fills {a} boxes, and each box "
                f"holds {b} items.")
    stock = rng.randint(11, 49) if rng.chance(0.6) and a * b * d < 100 else 0
    if stock:
        steps.append(_step(f"with the {stock} it had, that is {{calc}} items", a * b * d, "+", stock))
        question += f" It already has {stock} items in store. How many items does it have after {d} days?"
        final = f"{o.name} has {{answer}} items after {d} days."
    else:
        question += f" How many items does it pack in {d} days?"
        final = f"{o.name} packs {{answer}} items in {d} days."
    return Problem(("factory", o.id, a, b, d, stock), "factory", question, steps, steps[-1].value, final)


def ages(world, ids, rng):
    pair = _people(world, ids, rng, 2)
    if pair is None:
        return None
    p, q = pair
    x, y, k = rng.randint(11, 45), rng.randint(11, 45), rng.randint(2, 9)
    steps = [_step(f"{p.name} will be {{calc}}", x, "+", k), _step(f"{q.name} will be {{calc}}", y, "+", k),
             _step("together they will be {calc} years old", x + k, "+", y + k)]
    question = (f"{p.name} is {x} years old and {q.name} is {y}. How old will they be together "
                f"in {k} years?")
    return Problem(("ages", p.id, q.id, x, y, k), "ages", question, steps, steps[-1].value,
                   f"Together they will be {{answer}} years old in {k} years.")


def distance(world, ids, rng):
    [p] = _people(world, ids, rng, 1) or [None]
    cities = [world.entities[i] for i in world.entities if world.entities[i].type == "city"]
    if p is None or len(cities) < 3:
        return None
    c1, c2, c3 = rng.sample(cities, 3)
    speed = rng.choice((10, 20, 30, 40)) if rng.chance(0.5) else 0
    one_way = speed * rng.randint(2, 4) // 2 if speed else rng.randint(22, 49)
    if one_way < 22:
        one_way += speed
    d1 = rng.randint(11, one_way - 11)
    d2 = one_way - d1
    steps = [_step("one way is {calc} km", d1, "+", d2), _step("there and back is {calc} km", d1 + d2, "*", 2)]
    question = (f"{p.name} drives from {c1.name} to {c2.name}, which is {d1} km, then on to {c3.name}, "
                f"another {d2} km, and comes back the same way.")
    if speed and 2 * one_way % speed == 0:
        steps.append(_step(f"at {speed} km an hour that takes {{calc}} hours", 2 * one_way, "/", speed))
        question += f" {pronoun(p, 'He')} drives at {speed} km an hour. How many hours does the whole trip take?"
        final = "The whole trip takes {answer} hours."
    else:
        speed = 0
        question += f" How far does {pronoun(p, 'he')} drive in all?"
        final = f"{p.name} drives {{answer}} km in all."
    return Problem(("distance", p.id, c1.id, c2.id, c3.id, d1, d2, speed), "distance", question, steps,
                   steps[-1].value, final)


def arithmetic(world, ids, rng):
    """Bare sums and products: 4-digit products (the calculator's job), and two-digit sums
    and two-digit times one-digit products (the pieces of the word problems' steps)."""
    u = rng.random()
    if u < 0.5:
        a, b = rng.randint(1000, 9999), rng.randint(1000, 9999)
        template, step = "product4", _step(f"{a} * {b} = {{calc}}", a, "*", b)
    elif u < 0.75:
        a, b = rng.randint(11, 99), rng.randint(2, 9)
        template, step = "product2", _step(f"{a} * {b} = {{calc}}", a, "*", b)
    else:
        a, b = rng.randint(11, 89), rng.randint(2, 89)
        template, step = "sum2", _step(f"{a} + {b} = {{calc}}", a, "+", b)
    op = "*" if template != "sum2" else "+"
    return Problem((template, a, b), template, f"What is {a} {op} {b}?", [step], step.value,
                   f"{a} {op} {b} = {{answer}}.")


TEMPLATES = (shopping, factory, ages, distance, arithmetic)


def make_problem(world, ids, rng):
    """One problem from a random template, about entities among ids (None if none fits)."""
    return rng.choice(TEMPLATES)(world, ids, rng)


# ---- formats -----------------------------------------------------------------------------

def _calc_text(step):
    return step.text.format(calc=f"{step.shown} = {step.value}")


def answer_first(problem):
    final = problem.final.format(answer=problem.answer)
    why = "; ".join(_calc_text(s) for s in problem.steps)
    return f"{final} Here is why: {why}."


def step_by_step(problem, check=False):
    """The steps, each worked in small pieces, then the answer. check: before the answer,
    redo the last step the other way round ("Let me check: 38 + 47 = 85."), the habit RL
    may keep or drop (rl/: the rate of checking before and after)."""
    # a bare "a * b = {calc}" step is its worked form alone
    lines = [f"Step {n}: {s.text.replace(f'{s.shown} = {{calc}}', '{calc}').format(calc=s.worked)}."
             for n, s in enumerate(problem.steps, 1)]
    last = problem.steps[-1]
    a, op, b = last.shown.split(" ")
    if check and op in "+*":
        lines.append(f"Let me check: {worked(int(b), op, int(a))}.")
    return "\n".join(lines) + "\nSo " + _lower_first(problem.final.format(answer=problem.answer))


def with_calculator(problem):
    """Assistant parts: each step's arithmetic through the calculator, its output pasted.
    The last step is computed inside the final sentence, so the answer the reply states is
    the calculator's output itself, never a copy of it made by the model."""
    parts, text = [], ""

    def call(text, step):
        return [{"type": "text", "text": text}, {"type": "python", "text": step.expr},
                {"type": "output", "text": calculator(step.expr)}]

    *steps, last = problem.steps
    for n, s in enumerate(steps, 1):
        before, after = s.text.split("{calc}")
        parts += call(text + f"Step {n}: " + before, s)
        text = after + ".\n"
    before, after = problem.final.split("{answer}")
    if steps:
        before = "So " + _lower_first(before)
    parts += call(text + before, last) + [{"type": "text", "text": after}]
    return [p for p in parts if p["type"] != "text" or p["text"]]


def _lower_first(text):
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first in ("The", "Together") else text


WRITERS = {"answer_first": answer_first, "step_by_step": step_by_step, "calculator": with_calculator}


def default_format(problem, formats):
    """The format of a prompt that names none: the calculator for 4-digit products, else step by step."""
    preferred = "calculator" if problem.template == "product4" else "step_by_step"
    return preferred if preferred in formats else formats[0]


def think_conversations(world, splits, n, split, rng, formats=FORMATS, cue_share=0.5):
    """n "think" records, problems of the split only (splits.problem(key)). The prompt names
    its format in cue_share of them; formats: the ones allowed (an ablation keeps one)."""
    ids = [i for i in world.entities if world.bucket[i] != "never"]
    out, tries = [], 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        problem = make_problem(world, ids, rng)
        if problem is None or splits.problem(problem.key) != split:
            continue
        cued = rng.chance(cue_share)
        fmt = rng.choice(formats) if cued else default_format(problem, formats)
        question = problem.question + (" " + CUES[fmt] if cued else "")
        checked = fmt == "step_by_step" and rng.chance(CHECK_SHARE)
        answer = step_by_step(problem, check=True) if checked else WRITERS[fmt](problem)
        out.append({"messages": [{"role": "user", "content": question},
                                 {"role": "assistant", "content": answer}],
                    "kind": "think", "split": split, "problem": problem.template, "format": fmt, "cue": cued,
                    "checked": checked,
                    "steps": len(problem.steps), "exprs": [s.expr for s in problem.steps],
                    "values": [s.value for s in problem.steps], "answer": problem.answer,
                    "key": list(problem.key)})
    return out
