"""Tasks with verifiable rewards (rl/tasks.py): held-out splits, and checkers that cannot be
fooled or crashed by what a model writes.

    python -m pytest tests/rl/test_tasks.py
"""
import pytest

from minillm.rl.tasks import Countdown, evaluate, final_number, make_task, numbers_in
from minillm.world.world import World


@pytest.fixture(scope="module")
def world():
    return World.build(seed=0, size="smoke")


@pytest.mark.parametrize("reply, want", [
    ("", None), ("no number here", None), ("So Lira spends 62 crowns in all.", 62),
    ("3 * 4 = 12, 12 + 50 = 62. So she spends 62 crowns.", 62), ("It is 1,234 coins.", 1234),
    ("7" * 5000, None), ("٤٢", None), ("٤٢ or 7", 7), ("-5 degrees", -5), ("2.5 hours", 2.5)])
def test_final_number_survives_anything(reply, want):
    assert final_number(reply) == want


def test_the_marker_wins_over_later_numbers():
    assert final_number("So the answer is 40. (I checked 3 times.)", marker="So ") == 40
    assert numbers_in("1, 2 and 3,000") == [1, 2, 3000]


@pytest.mark.parametrize("expr, value, used", [
    ("4 * 7 - 3", 25, [4, 7, 3]), ("(8 + 4) / 3", 4, [8, 4, 3]), ("7 / 2", None, []),
    ("1 / 0", None, []), ("__import__('os').system('x')", None, []), ("2 ** 99", None, []),
    ("9" * 200, None, []), ("", None, []), ("3 +", None, []), ("True + 1", None, [])])
def test_countdown_expressions_are_parsed_never_evaluated(expr, value, used):
    assert evaluate(expr) == (value, used)


def test_countdown_reward_checks_the_numbers_and_the_target():
    task = Countdown()
    item, = task.items("train", 1, seed=3)
    nums, target = item.meta["numbers"], item.answer
    assert task.reward(item, "no idea") == 0
    assert task.reward(item, f"Answer: {target}") == (1.0 if target in nums else 0.0)
    a, b = nums[0], nums[1]
    item.answer = a + b
    assert task.reward(item, f"Let me try. Answer: {a} + {b}") == 1
    assert task.reward(item, f"Answer: {a} + {a} + {b} - {a}") == (1.0 if nums.count(a) >= 2 else 0.0)


@pytest.mark.parametrize("name", ["word_problems", "spelling", "countdown"])
def test_splits_are_disjoint_and_seeded(world, name):
    task = make_task(name, world)
    train, held = task.items("train", 30, seed=0), task.items("eval", 10, seed=0)
    assert len(train) == 30 and len(held) == 10
    assert not {i.messages[0]["content"] for i in train} & {i.messages[0]["content"] for i in held}
    assert [i.messages for i in task.items("train", 30, seed=0)] == [i.messages for i in train]


def test_word_problem_reward_reads_the_final_sentence(world):
    task = make_task("word_problems", world)
    item = task.items("train", 1)[0]
    assert task.reward(item, f"Step 1: ... So the answer is {item.answer}.") == 1
    assert task.reward(item, f"So the answer is {item.answer + 1}. Not {item.answer}.") == 0
    assert task.reward(item, "") == 0


def test_real_problems_load_through_the_same_interface(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text('{"question": "2 + 2?", "answer": "2 + 2 = <<2+2=4>>4\\n#### 4"}\n')
    task = make_task("gsm8k", path=str(path))
    item, = task.items("eval", 5)
    assert item.answer == 4 and task.reward(item, "It is 4.") == 1 and task.reward(item, "5") == 0
