"""splits.py: the held-out decisions follow their documented rules and depend on the world seed only."""
import pytest

from minillm.chat import splits as S
from minillm.chat.data_phrasings import FRAMES, IDENTITY_QUESTIONS, IDENTITY_WRAPPERS, questions
from minillm.world.world import World


@pytest.fixture(scope="module")
def world():
    return World.build(seed=0, size="smoke")


def test_never_seen_entities_are_eval_and_a_share_of_the_others(world):
    splits = S.Splits(world)
    for i, bucket in world.bucket.items():
        if bucket == "never":
            assert splits.entity(i) == "eval"
    for bucket in ("many", "few", "one"):
        ids = [i for i, b in world.bucket.items() if b == bucket]
        held = [i for i in ids if splits.entity(i) == "eval"]
        assert 0 < len(held) < len(ids)
        assert abs(len(held) / len(ids) - S.EVAL_ENTITY_SHARE) < 0.2
    assert splits.entities(world, "train", ("never",)) == []
    famous = world.assistant().id                   # identity data's subject, never asked about
    assert famous not in splits.entities(world) and len(splits.entities(world)) == len(world.entities) - 1
    assert set(splits.entities(world)) == set(splits.entities(world, "train")) | set(splits.entities(world, "eval"))


def test_a_frame_and_a_direct_wording_of_taught_words_per_relation_are_eval(world):
    splits, two = S.Splits(world), 0
    for (type_, rel), phrasings in questions().items():
        assert len(phrasings) == 9 == len(set(phrasings))
        held, train = splits.questions(type_, rel, "eval"), splits.questions(type_, rel, "train")
        framed = [q for q in held if q in phrasings[-len(FRAMES):]]
        assert len(framed) == 1 and len(held) in (1, 2)
        assert sorted(held + train) == sorted(phrasings)
        assert all(splits.question(type_, rel, q) == "eval" for q in held)
        taught = set().union(*(S._words(q) for q in train))
        assert all(S._words(q) <= taught for q in held if q not in framed)
        two += len(held) == 2
    assert two >= 20                          # most relations hold out a direct wording too


def test_at_least_50_identity_phrasings_are_held_out(world):
    splits = S.Splits(world)
    held = splits.identity_questions("eval")
    train = splits.identity_questions("train")
    assert len({p for _, p in held}) >= S.MIN_IDENTITY_EVAL
    assert {c for c, _ in held} <= set(S.EVAL_IDENTITY_CATEGORIES)
    assert not {p for _, p in held} & {p for _, p in train}
    assert len(held) + len(train) == len(IDENTITY_QUESTIONS) * len(IDENTITY_WRAPPERS)


def test_splits_depend_on_the_seed_only(world):
    a, b = S.Splits(world), S.Splits(World.build(seed=0, size="smoke"))
    assert a.identity_questions("eval") == b.identity_questions("eval")
    assert [a.entity(i) for i in world.entities] == [b.entity(i) for i in world.entities]
    other = S.Splits(World.build(seed=1, size="smoke"))
    assert other.identity_questions("eval") != a.identity_questions("eval")


def test_problem_and_word_shares(world):
    splits = S.Splits(world)
    keys = [("product4", a, 1234) for a in range(1000, 3000)]
    share = sum(splits.problem(k) == "eval" for k in keys) / len(keys)
    assert abs(share - S.EVAL_PROBLEM_SHARE) < 0.03
    assert splits.problem(keys[0]) == S.Splits(world).problem(keys[0])
    words = [f"w{n}" for n in range(2000)]
    assert abs(sum(splits.word(w) == "eval" for w in words) / 2000 - S.EVAL_WORD_SHARE) < 0.03


def test_lower_forms_keep_names_and_i():
    assert S.lower_forms("What is your name?") == {"lq": "what is your name?", "lq_bare": "what is your name"}
    assert S.lower_forms("I know you're ChatGPT.")["lq"] == "I know you're ChatGPT."
    assert S.lower_forms("Lira Vendel's pet?")["lq"] == "Lira Vendel's pet?"
