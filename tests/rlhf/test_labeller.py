"""The simulated labeller (rlhf/labeller.py): its documented preferences on hand-made answers
(true facts beat false ones, on topic beats off topic, the asked length beats a long one,
repetition loses, fluency as documented), and the same pairs under the same seed.

    python -m pytest tests/rlhf/test_labeller.py
"""
import numpy as np
import pytest

from minillm.rl.tasks import Item
from minillm.rlhf.labeller import FLUENCY, WEIGHTS, Labeller, phrases
from minillm.rlhf.prompts import KINDS, OpenEnded


@pytest.fixture(scope="module")
def labeller(run):
    return Labeller.load(run / "world", run / "base")


def city(labeller):
    world = labeller.world
    ids = OpenEnded(world).entities("train") + OpenEnded(world).entities("eval")
    cities = [world.entities[i] for i in ids if world.entities[i].type == "city"]
    return cities[0], [e for e in world.entities.values() if e.type == "city" and e.id != cities[0].id][0]


def item(e, kind="story"):
    return Item([{"role": "user", "content": f"Write a short {kind} about {e.name}."}], None,
                {"entity": e.id, "kind": kind, "words": KINDS[kind][0]})


def prefers(labeller, it, better, worse):
    """The labeller's pair between the two answers, with its noise: (0, 1) when it prefers `better`."""
    return labeller.rank(it, [better, worse], seed=0) == [(0, 1)]


def story(e, river, founded):
    return (f"Long ago people came to {e.name}, a quiet town on the {river} river. They built "
            f"houses and a market, and in {founded} the town was founded. Children still play by "
            "the water and the old bridge on summer evenings.")


def test_true_facts_beat_false_ones(labeller):
    e, other = city(labeller)
    it = item(e)
    true, false = story(e, e.attrs["river"], e.attrs["founded"]), story(e, other.attrs["river"], int(e.attrs["founded"]) + 7)
    assert other.attrs["river"] != e.attrs["river"]
    p_true, p_false = labeller.parts(it, true, -2.0), labeller.parts(it, false, -2.0)
    assert p_true["facts"] == pytest.approx(2 / 3) and p_false["facts"] == pytest.approx(-1.0)
    assert prefers(labeller, it, true, false)


def test_on_topic_beats_off_topic(labeller):
    e, other = city(labeller)
    it = item(e)
    on, off = story(e, e.attrs["river"], e.attrs["founded"]), story(other, other.attrs["river"], other.attrs["founded"])
    p = labeller.parts(it, off, -2.0)
    assert p["topic"] == 0.0 and labeller.parts(it, on, -2.0)["topic"] == 1.0
    assert prefers(labeller, it, on, off)


def test_repetition_loses(labeller):
    e, _ = city(labeller)
    it = item(e)
    good = story(e, e.attrs["river"], e.attrs["founded"])
    repeated = " ".join([f"{e.name} is on the {e.attrs['river']} river."] * 6)
    assert labeller.parts(it, repeated, -2.0)["fresh"] == 0.0
    assert labeller.parts(it, good, -2.0)["fresh"] == 1.0
    assert prefers(labeller, it, good, repeated)


def test_the_asked_length_wins(labeller):
    e, _ = city(labeller)
    it = item(e, "tagline")
    tagline = f"{e.name}: life on the {e.attrs['river']}, every day."          # 8 words asked
    long = story(e, e.attrs["river"], e.attrs["founded"]) + " " + story(e, e.attrs["river"], e.attrs["founded"])
    assert labeller.parts(it, tagline, -2.0)["length"] > 0.9 > 0.1 > labeller.parts(it, long, -2.0)["length"]
    assert prefers(labeller, it, tagline, long)


def test_fluency_and_empty_answers(labeller):
    e, _ = city(labeller)
    it, text = item(e), story(e, e.attrs["river"], e.attrs["founded"])
    lo, hi = FLUENCY
    assert labeller.parts(it, text, hi)["fluency"] == 1.0 and labeller.parts(it, text, lo)["fluency"] == 0.0
    assert labeller.parts(it, text, (lo + hi) / 2)["fluency"] == pytest.approx(0.5)
    empty = labeller.parts(it, "", -np.inf)
    assert empty["length"] == 0 and empty["fluency"] == 0 and empty["topic"] == 0
    score = labeller.score_parts([it], [text])[0]
    assert score["true"] == pytest.approx(sum(WEIGHTS[k] * score[k] for k in WEIGHTS))


def test_the_same_seed_gives_the_same_pairs(labeller):
    e, other = city(labeller)
    it = item(e)
    texts = [story(e, e.attrs["river"], e.attrs["founded"]), story(e, e.attrs["river"], 5),
             story(other, other.attrs["river"], other.attrs["founded"]), f"{e.name} {e.name} {e.name} {e.name}"]
    pairs = labeller.rank(it, texts, seed=3)
    assert pairs == labeller.rank(it, texts, seed=3)
    assert np.array_equal(labeller.true_scores([it] * 4, texts), labeller.true_scores([it] * 4, texts))
    assert all(a != b for a, b in pairs) and pairs[0][0] == 0
    # the noise is real: with a huge std some seed reverses even a clear preference
    labeller.noise = 10.0
    try:
        assert any(labeller.rank(it, texts[:2], seed=s) == [(1, 0)] for s in range(20))
    finally:
        labeller.noise = 0.05


def test_phrases_are_whole_words():
    assert "tam" not in phrases("Tamith is old.") and "tamith is" in phrases("Tamith is old.")
    assert "61700" in phrases("It has 61,700 people.")


def test_prompts_are_seeded_and_the_splits_disjoint(labeller):
    task = OpenEnded(labeller.world)
    assert not set(task.entities("train")) & set(task.entities("eval")) and task.entities("eval")
    a, b = task.items("train", 10, seed=1), task.items("train", 10, seed=1)
    assert [x.messages for x in a] == [x.messages for x in b]
    assert {x.meta["entity"] for x in task.items("eval", 20, seed=0)} <= set(task.entities("eval"))
