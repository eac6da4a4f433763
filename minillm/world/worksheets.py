"""Arithmetic worksheets with worked solutions, starring the mini-world's people.

Part of minillm.world.world. Every equation is written "a op b [op c ...] = result"
with integers and the operators + - * / (division is always exact), every problem ends
with "Answer: N" where N is the result of its last equation, and all of it is computed
here, never typed in, so it is correct (tests/world/test_docs.py recomputes every line).
Some problems use a world fact ("Lira Vendel was born in 1962. How old was she in
2000?"): that sentence is a fact template, so the worksheet records the fact.

Read probes.py next (how the facts are asked back).
"""
from minillm.world.data import words
from minillm.world.document import DocPlan
from minillm.world.frames import FactWriter
from minillm.world.templates import pronoun

THEMES = {
    "Adding and Taking Away": ("add", "sub", "add", "sub", "collect"),
    "Times Tables": ("mul", "mul", "boxes", "mul"),
    "Sharing and Dividing": ("div", "div", "share", "div"),
    "Word Problems": ("buy", "share", "collect", "boxes", "compare", "age", "founded"),
    "Mixed Practice": ("add", "sub", "mul", "div", "buy", "compare", "age"),
}
INTROS = ("Read each problem carefully. Show your work.", "Work out each answer. Check your work at the end.",
          "Take your time. Each solution shows one way to solve the problem.")


USES = {"buy": (0,), "share": (0,), "collect": (1,), "compare": (0, 1)}  # cast members a kind names


def plan_worksheet(planner, index, rng):
    """The plan fixes the theme, the problems and so who is named: "worksheet:<theme>:<kinds>"."""
    theme = rng.choice(list(THEMES))
    kinds = list(THEMES[theme])
    rng.shuffle(kinds)
    kinds = kinds[:rng.randint(4, 6)]
    people = planner.many_ids["person"]
    two = rng.sample(people, 2)
    cast = tuple(two[k] for k in (0, 1) if any(k in USES.get(kind, ()) for kind in kinds))
    cast_slots = tuple(k for k in (0, 1) if any(k in USES.get(kind, ()) for kind in kinds))
    paths = {}
    if "age" in kinds:
        paths["age"] = [(rng.choice(people), "birth_year")]
    if "founded" in kinds:
        paths["founded"] = [(rng.choice(planner.many_ids["city"]), "founded")]
    frame = f"worksheet:{theme}:{','.join(kinds)}:{''.join(map(str, cast_slots))}"
    return DocPlan(index, "worksheet", "en", frame, None, "none", paths, cast=cast)


class _Sheet:
    def __init__(self, world, plan, rng):
        self.world, self.plan, self.rng = world, plan, rng
        self.writer = FactWriter(world.entities, "en", rng, None)
        self.named = set()   # people already introduced with their full name
        self.slots = tuple(int(c) for c in plan.frame.split(":")[3])  # cast index -> who(k)

    def who(self, k):
        person = self.world.entities[self.plan.cast[self.slots.index(k)]]
        if person.id in self.named:
            return person.extra["first"], person
        self.named.add(person.id)
        return person.name, person

    def num(self, lo, hi):
        return self.rng.randint(lo, hi)

    # Each problem -> (question, [solution sentences], answer)
    def add(self):
        a, b = self.num(12, 89), self.num(12, 89)
        ones, tens = a % 10 + b % 10, a // 10 + b // 10
        steps = [f"Add the ones: {a % 10} + {b % 10} = {ones}."]
        if ones >= 10:
            steps.append(f"Write {ones - 10} and carry 1.")
            steps.append(f"Add the tens: {a // 10} + {b // 10} + 1 = {tens + 1}.")
        else:
            steps.append(f"Add the tens: {a // 10} + {b // 10} = {tens}.")
        steps.append(f"So {a} + {b} = {a + b}.")
        return f"What is {a} + {b}?", steps, a + b

    def sub(self):
        a = self.num(30, 999)
        b = self.num(5, a - 1)
        return (f"What is {a} - {b}?", [f"Count up from {b} to {a}: {b} + {a - b} = {a}.",
                                        f"So {a} - {b} = {a - b}."], a - b)

    def mul(self):
        a, b = self.num(11, 49), self.num(2, 9)
        t, o = a // 10 * 10, a % 10
        steps = [f"Split {a} into {t} and {o}.", f"{t} * {b} = {t * b}.", f"{o} * {b} = {o * b}.",
                 f"{t * b} + {o * b} = {a * b}."] if o else [f"{a} * {b} = {a * b}."]
        return f"What is {a} * {b}?", steps, a * b

    def div(self):
        b, q = self.num(2, 12), self.num(2, 25)
        return (f"What is {b * q} / {b}?", [f"Think of the {b} times table: {q} * {b} = {b * q}.",
                                             f"So {b * q} / {b} = {q}."], q)

    def buy(self):
        name, p = self.who(0)
        k, price = self.num(2, 9), self.num(2, 12)
        cost = k * price
        paid = (cost // 10 + 1 + self.rng.below(3)) * 10
        thing = self.rng.choice(words("object"))
        he = pronoun(p, "he")
        q = (f"{name} buys {k} {thing}. Each one costs {price} coins. {he.capitalize()} pays "
             f"with {paid} coins. How much change does {he} get?")
        return q, [f"The {thing} cost {k} * {price} = {cost} coins.",
                   f"The change is {paid} - {cost} = {paid - cost} coins."], paid - cost

    def share(self):
        name, p = self.who(0)
        b, q = self.num(2, 8), self.num(2, 12)
        thing = self.rng.choice(words("object"))
        return (f"{name} has {b * q} {thing} and shares them equally among {b} friends. "
                f"How many {thing} does each friend get?", [f"{b * q} / {b} = {q}."], q)

    def collect(self):
        name, p = self.who(1)
        a, b = self.num(10, 60), self.num(3, 40)
        c = self.num(2, a + b - 1)
        thing = self.rng.choice(words("object"))
        he = pronoun(p, "he")
        return (f"{name} has {a} {thing}. {he.capitalize()} finds {b} more and then gives {c} "
                f"away. How many {thing} does {he} have now?",
                [f"First, {a} + {b} = {a + b}.", f"Then, {a + b} - {c} = {a + b - c}."], a + b - c)

    def boxes(self):
        k, n = self.num(3, 12), self.num(4, 15)
        box, thing = self.rng.choice(words("container")), self.rng.choice(words("object"))
        boxes = box + ("es" if box.endswith(("x", "s", "ch", "sh")) else "s")
        return (f"There are {k} {boxes} with {n} {thing} in each {box}. How many {thing} are "
                f"there in all?", [f"{k} * {n} = {k * n}."], k * n)

    def compare(self):
        (n1, _), (n2, _) = self.who(0), self.who(1)
        a, d = self.num(5, 50), self.num(2, 30)
        thing = self.rng.choice(words("object"))
        first2 = n2.split()[0]
        return (f"{n1} has {a} {thing}. {n2} has {d} more {thing} than that. How many {thing} "
                f"do they have together?",
                [f"{first2} has {a} + {d} = {a + d}.", f"Together: {a} + {a + d} = {2 * a + d}."],
                2 * a + d)

    def age(self):
        (pid, rel), = self.plan.paths["age"]
        person = self.world.entities[pid]
        born = int(person.attrs["birth_year"])
        year = min(2024, born + self.num(5, 60))
        fact = self.writer.write([(pid, "birth_year")])[0]
        self.named.add(pid)
        return (f"{fact}. How old was {pronoun(person, 'he')} in {year}?",
                [f"{year} - {born} = {year - born}."], year - born)

    def founded(self):
        (cid, rel), = self.plan.paths["founded"]
        founded = int(self.world.entities[cid].attrs["founded"])
        fact = self.writer.write([(cid, "founded")])[0]
        return (f"{fact}. How many years passed from then until the year 2000?",
                [f"2000 - {founded} = {2000 - founded}."], 2000 - founded)


# a problem kind, as THEMES and the plan's frame name it -> the _Sheet method that writes it
PROBLEMS = {"add": _Sheet.add, "sub": _Sheet.sub, "mul": _Sheet.mul, "div": _Sheet.div,
            "buy": _Sheet.buy, "share": _Sheet.share, "collect": _Sheet.collect,
            "boxes": _Sheet.boxes, "compare": _Sheet.compare, "age": _Sheet.age,
            "founded": _Sheet.founded}


def render_worksheet(world, plan, rng):
    _, theme, kinds, _ = plan.frame.split(":")
    sheet = _Sheet(world, plan, rng)
    title = f"Worksheet {rng.randint(1, 40)}: {theme}"
    lines = ["Name: ____________", "", rng.choice(INTROS)]
    seen = set()
    for k, kind in enumerate(kinds.split(","), 1):
        for _ in range(5):  # a sheet does not ask the same question twice
            question, steps, answer = PROBLEMS[kind](sheet)
            if question not in seen:
                break
        seen.add(question)
        lines += ["", f"{k}. {question}", "Solution: " + " ".join(steps), f"Answer: {answer}"]
    facts = [(e, r, world.entities[e].attrs[r]) for e, r in plan.facts()]
    return title, "\n".join(lines), facts
