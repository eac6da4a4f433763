"""The countdown puzzle and its imperfect demonstrator (chat/data_countdown.py), and the
self-checking step-by-step solutions (data_math.py): what RL's lessons are built on."""
import re

from minillm.chat.data_countdown import (MULTIPLY_RATE, OPS, all_puzzles, countdown_conversations,
                                         demonstrate, demonstrator_accuracy)
from minillm.chat.data_math import step_by_step, arithmetic, make_problem
from minillm.rl.tasks import Countdown, Item
from minillm.world.data import Rng
from minillm.world.world import World


def test_every_puzzle_has_exactly_one_operation_and_the_splits_are_disjoint():
    train, held = all_puzzles("train"), all_puzzles("eval")
    assert len(held) >= 50 and len(train) > 5 * len(held)
    assert not {(p.a, p.b, p.target) for p in train} & {(p.a, p.b, p.target) for p in held}
    for p in train + held:
        reach = [o for o in "+-*" if OPS[o](p.a, p.b) == p.target and (o != "-" or p.a > p.b)]
        assert reach == [p.op] and p.target not in (p.a, p.b)
    assert {p.op for p in held} == {"+", "-", "*"}


def test_the_demonstrator_is_right_unless_it_should_multiply():
    rng, task = Rng("test", 0), Countdown()
    records = countdown_conversations(3000, "train", rng)
    for r in records[:300]:
        item = Item(r["messages"][:1], r["target"], {"numbers": [int(x) for x in re.findall(r"\d+", r["messages"][0]["content"])[:2]]})
        assert task.reward(item, r["messages"][1]["content"]) == float(r["right"])
        assert r["right"] or r["op"] == "*"
    times = [r for r in records if r["op"] == "*"]
    rate = sum(r["right"] for r in times) / len(times)
    assert abs(rate - MULTIPLY_RATE) < 0.05                   # its documented error rate
    assert all(r["right"] for r in records if r["op"] != "*")
    assert 0.6 < demonstrator_accuracy() < 0.8


def test_a_demonstration_states_its_own_arithmetic():
    rng = Rng("test", 1)
    for p in all_puzzles("eval")[:40]:
        reply = demonstrate(p, rng)
        a, op, b, value = re.match(r"(\d+) ([-+*]) (\d+) = (-?\d+)\. Answer: \1 \2 \3$", reply).groups()
        assert OPS[op](int(a), int(b)) == int(value)


def test_a_checked_solution_redoes_its_last_step_correctly():
    world, rng = World.build(seed=0, size="smoke"), Rng("test", 2)
    ids = list(world.entities)
    seen = 0
    for _ in range(200):
        p = make_problem(world, ids, rng) or arithmetic(world, ids, rng)
        text = step_by_step(p, check=True)
        m = re.search(r"Let me check: (.*)\.\n", text)
        if p.steps[-1].shown.split(" ")[1] not in "+*":
            assert m is None
            continue
        seen += 1
        pieces = m.group(1).split(" = ")
        values = {eval_small(piece) for piece in pieces}         # every "=" in the chain holds
        assert values == {p.steps[-1].value}
        assert text.index("Let me check") < text.index("\nSo ")
    assert seen > 100


def eval_small(expr):
    """a + b + ... or a * b + c * d: the worked chains' pieces (only + and *), computed by hand."""
    return sum(eval_product(term) for term in expr.split(" + "))


def eval_product(term):
    out = 1
    for x in term.split(" * "):
        out *= int(x)
    return out
