"""Kind 8 of the SFT conversations: a number puzzle, taught by an imperfect demonstrator.

    user: Use 6 and 7 to make 42. You can use +, - or *.
    assistant: 6 * 7 = 42. Answer: 6 * 7

Two numbers (2..15) and a target that one of a + b, a - b (the first number is the larger)
or a * b reaches, exactly one of them. The demonstrator plays AlphaGo's human games: it
always sees an answer that + or - reaches, but thinks of multiplying only MULTIPLY_RATE of
the times the target needs it; otherwise it writes its sum (wrong). Its accuracy is
1 - (1/3) * (1 - MULTIPLY_RATE), about 73%, on every split. A model that imitates it is
capped near that; rl/ practises on the checked answer (rl/tasks.py Countdown) and can do
better than its teacher, the lecture's move 37.

    puzzles(split, n, rng) -> [Puzzle(a, b, op, target)]
    demonstrate(puzzle, rng) -> the demonstrator's reply (right or wrong)

Read next: data.py (how the kinds are mixed).
"""
from dataclasses import dataclass

from minillm.world.data import derive_seed

MULTIPLY_RATE = 0.2        # how often the demonstrator multiplies when it should
EVAL_SHARE = 0.15          # puzzles held out (a hash of the numbers and the target)
LOW, HIGH = 2, 15
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@dataclass
class Puzzle:
    a: int
    b: int
    op: str          # the operation that reaches the target (the only one)
    target: int

    @property
    def question(self):
        return f"Use {self.a} and {self.b} to make {self.target}. You can use +, - or *."


def split_of(a, b, target):
    return "eval" if derive_seed("countdown", a, b, target) / 2 ** 64 < EVAL_SHARE else "train"


def all_puzzles(split):
    """Every puzzle of the split, in a fixed order: (a, b) with a > b when subtracting, the
    target reached by exactly one operation and equal to neither number."""
    out = []
    for a in range(LOW, HIGH + 1):
        for b in range(LOW, HIGH + 1):
            for op in "+-*":
                if op == "-" and a <= b:
                    continue
                target = OPS[op](a, b)
                reach = [o for o in "+-*" if OPS[o](a, b) == target and (o != "-" or a > b)]
                if reach == [op] and target not in (a, b) and split_of(a, b, target) == split:
                    out.append(Puzzle(a, b, op, target))
    return out


def puzzles(split, n, rng):
    """n puzzles of the split: the pool in an order shuffled by rng (world.data.Rng), again
    and again if n is larger (so every puzzle comes once before any comes twice)."""
    out = []
    while len(out) < n:
        pool = all_puzzles(split)
        rng.shuffle(pool)
        out += pool[:n - len(out)]
    return out


def demonstrate(puzzle, rng):
    """The demonstrator's reply: right unless the puzzle needs * and it does not think of it."""
    op = puzzle.op if puzzle.op != "*" or rng.chance(MULTIPLY_RATE) else "+"
    value = OPS[op](puzzle.a, puzzle.b)
    return f"{puzzle.a} {op} {puzzle.b} = {value}. Answer: {puzzle.a} {op} {puzzle.b}"


def demonstrator_accuracy(split="eval"):
    """The demonstrator's expected accuracy over the split's puzzles."""
    pool = all_puzzles(split)
    return sum(1.0 if p.op != "*" else MULTIPLY_RATE for p in pool) / len(pool)


def countdown_conversations(n, split, rng):
    """n "countdown" records: the puzzle and the demonstrator's reply (right or wrong)."""
    out = []
    for p in puzzles(split, n, rng):
        reply = demonstrate(p, rng)
        out.append({"messages": [{"role": "user", "content": p.question},
                                 {"role": "assistant", "content": reply}],
                    "kind": "countdown", "split": split, "op": p.op, "target": p.target,
                    "right": reply.endswith(f"{p.a} {p.op} {p.b}")})
    return out
