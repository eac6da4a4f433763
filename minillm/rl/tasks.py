"""Tasks with verifiable rewards: prompts the model practises on, and a checker for each.

A task hands out Items (a chat prompt, the right answer, what it is about) for a split and
scores a reply with reward(item, reply) in [0, 1]. Nothing a model writes can make a
checker raise: an empty reply, ten numbers, a 5,000-digit number or digits of another
script all just score 0 unless the answer is there.

    word_problems   the SFT generator's word problems (chat/data_math.py), its splits
    calculator_problems  the same, asked with "Use the calculator."
    spelling        "How many 'r's are in ...?", on the spelling words of the split
    countdown       reach a target from two numbers with + - or * (each at most once):
                    "Answer: 6 * 7"; checked by parsing, never eval; SFT saw it only from
                    an imperfect demonstrator (chat/data_countdown.py)
    gsm8k, svamp    real grade-school problems, read from files (the report's "and on real
                    problems?": a 5M-parameter model scores about 0 there, and says so)

    task = make_task("word_problems", world)
    items = task.items("train", 64, seed=0)
    task.reward(items[0], "... So Lira spends 62 crowns in all.")   # 1.0
    score_replies(task, items, replies)          # (rewards (n,), stats): what the RL loop calls

Read next: grpo.py (the loop that practises on them).
"""
import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minillm.chat.data_countdown import all_puzzles
from minillm.chat.data_countdown import puzzles as countdown_puzzles
from minillm.chat.data_math import CUES, make_problem
from minillm.chat.data_spelling import count_letter, pick_letter, vocabulary
from minillm.chat.splits import Splits
from minillm.world.data import Rng

MAX_DIGITS = 18                 # a longer run of digits is not an answer (and int() stays cheap)
_NUMBER = re.compile(r"(?<![\d.])-?\d{1,3}(?:,\d{3})+(?![\d,])|(?<![\d.])-?\d+(?:\.\d+)?", re.ASCII)


@dataclass
class Item:
    messages: list              # the prompt: [{"role": "user", "content": ...}]
    answer: object              # what the checker compares with
    meta: dict = field(default_factory=dict)


def numbers_in(text):
    """Every number written in ASCII digits, in order ("1,234" -> 1234.0); runs longer than
    MAX_DIGITS digits are skipped, never parsed."""
    out = []
    for m in _NUMBER.finditer(text or ""):
        digits = m.group().replace(",", "").lstrip("-")
        if len(digits.replace(".", "")) <= MAX_DIGITS:
            out.append(float(m.group().replace(",", "")))
    return out


def final_number(text, marker=None):
    """The reply's answer: the number after the last `marker` ("So", "Answer:") if there is
    one, else the last number in the text; None when there is none."""
    text = text or ""
    if marker and marker in text:
        after = numbers_in(text[text.rindex(marker):])
        if after:
            return after[0]
    found = numbers_in(text)
    return found[-1] if found else None


# ---- the tasks -----------------------------------------------------------------------------

@dataclass
class WordProblems:
    """data_math's problems of the split (2 to 4 steps, no bare products), asked as SFT asks
    them without a cue (so the model answers in its default format: step by step)."""
    world: object
    name: str = "word_problems"
    cue: str = ""                   # appended to the question ("Use the calculator.")

    def items(self, split, n, seed=0):
        splits, rng = Splits(self.world), Rng("rl-task", seed, self.name, split)
        ids = [i for i in self.world.entities if self.world.bucket[i] != "never"]
        out, seen = [], set()
        for _ in range(200 * n):
            if len(out) == n:
                break
            p = make_problem(self.world, ids, rng)
            if (p is None or p.template in ("product4", "product2", "sum2") or p.key in seen
                    or splits.problem(p.key) != split):
                continue
            seen.add(p.key)
            out.append(Item([{"role": "user", "content": f"{p.question} {self.cue}".strip()}], p.answer,
                            {"template": p.template, "steps": len(p.steps)}))
        return out

    def reward(self, item, reply):
        return float(final_number(reply, marker="So ") == item.answer)


@dataclass
class Spelling:
    """Letter counts on the split's spelling words."""
    world: object
    name: str = "spelling"

    def items(self, split, n, seed=0):
        splits, rng = Splits(self.world), Rng("rl-task", seed, self.name, split)
        words = [w for w in vocabulary(self.world) if splits.word(w) == split]
        out = []
        for _ in range(n):
            word = rng.choice(words)
            question, _, answer = count_letter(word, pick_letter(word, rng), "direct")
            out.append(Item([{"role": "user", "content": question}], answer, {"word": word}))
        return out

    def reward(self, item, reply):
        found = re.findall(r"there (?:is|are) (\d{1,3})\b", reply or "", flags=re.IGNORECASE | re.ASCII)
        return float(bool(found) and int(found[-1]) == item.answer)


@dataclass
class Countdown:
    """Reach the target from two numbers with +, - or * (chat/data_countdown.py's puzzles,
    the ones its imperfect demonstrator taught in SFT): the reply's last "Answer: <expr>" is
    parsed (ast, a whitelist) and evaluated with exact integer steps, each number at most once."""
    world: object = None
    name: str = "countdown"

    def items(self, split, n, seed=0):
        """n puzzles of the split; held out, each puzzle at most once (n capped at the pool)."""
        rng = Rng("rl-task", seed, self.name, split)
        n = min(n, len(all_puzzles(split))) if split == "eval" else n
        return [Item([{"role": "user", "content": p.question}], p.target, {"numbers": [p.a, p.b], "op": p.op})
                for p in countdown_puzzles(split, n, rng)]

    def reward(self, item, reply):
        if "Answer:" not in (reply or ""):
            return 0.0
        expr = reply[reply.rindex("Answer:") + len("Answer:"):].split("\n")[0].strip().rstrip(".")
        value, used = evaluate(expr)
        if value is None or value != item.answer:
            return 0.0
        pool = list(item.meta["numbers"])
        for x in used:
            if x not in pool:
                return 0.0
            pool.remove(x)
        return 1.0


def evaluate(expr, max_len=100):
    """(value, numbers used) of an arithmetic expression over integers, or (None, []): +, -,
    *, exact / and parentheses only, at most max_len characters, never eval."""
    if len(expr) > max_len:
        return None, []
    try:
        tree = ast.parse(expr, mode="eval").body
    except (SyntaxError, ValueError):
        return None, []
    used = []

    def walk(node):
        if isinstance(node, ast.Constant) and type(node.value) is int and 0 <= node.value < 10 ** 6:
            used.append(node.value)
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in (ast.Add, ast.Sub, ast.Mult, ast.Div):
            a, b = walk(node.left), walk(node.right)
            if a is None or b is None:
                return None
            if isinstance(node.op, ast.Div):
                return a // b if b and a % b == 0 else None
            return a + b if isinstance(node.op, ast.Add) else a - b if isinstance(node.op, ast.Sub) else a * b
        return None

    value = walk(tree)
    return value, (used if value is not None else [])


@dataclass
class GSM8K:
    """Real grade-school problems from a JSONL file ({"question", "answer": "... #### 18"})."""
    path: str
    name: str = "gsm8k"

    def items(self, split, n, seed=0):
        out = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                answer = final_number(d["answer"].split("####")[-1])
                out.append(Item([{"role": "user", "content": d["question"]}], answer, {}))
                if len(out) == n:
                    break
        return out

    def reward(self, item, reply):
        return float(final_number(reply) == item.answer)


@dataclass
class SVAMP(GSM8K):
    """Real one- and two-step problems from SVAMP.json ([{"Body", "Question", "Answer"}])."""
    name: str = "svamp"

    def items(self, split, n, seed=0):
        data = json.loads(Path(self.path).read_text(encoding="utf-8"))[:n]
        return [Item([{"role": "user", "content": f"{d['Body'].strip()} {d['Question'].strip()}"}],
                     float(d["Answer"]), {}) for d in data]


def score_replies(task, items, replies):
    """(rewards (n,), stats dict) of a batch of replies. A task that judges a whole batch
    at once has score(items, replies) (RLHF's reward model: one forward for every reply,
    and the labeller's true score logged beside it, rlhf/policy.py); a task with a checker
    is scored reply by reply, with no stats."""
    if hasattr(task, "score"):
        return task.score(items, replies)
    return np.array([task.reward(it, r) for it, r in zip(items, replies)], np.float64), {}


def _with_calculator(world):
    return WordProblems(world, name="calculator_problems", cue=CUES["calculator"])


TASKS = {"word_problems": WordProblems, "calculator_problems": _with_calculator, "spelling": Spelling,
         "countdown": Countdown}


def make_task(name, world=None, path=None):
    """A task by name: the mini-world ones need world, gsm8k/svamp a path."""
    if name in ("gsm8k", "svamp"):
        return (GSM8K if name == "gsm8k" else SVAMP)(path)
    return TASKS[name](world)
