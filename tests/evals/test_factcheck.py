"""The fact checker marks claims right and wrong against the world's fact table."""
import pytest

from minillm.evals import factcheck as F
from minillm.world.world import World


@pytest.fixture(scope="module")
def world():
    return World.build(seed=0, size="smoke")


def _first(world, kind):
    return next(e for e in world.entities.values() if e.type == kind)


def _other_city(world, not_this):
    return next(e.name for e in world.entities.values() if e.type == "city" and e.name != not_this)


def test_a_true_birth_city_and_year_are_right(world):
    p = _first(world, "person")
    text = f"{p.name} was born in {p.attrs['birth_city']} in {p.attrs['birth_year']}."
    claims = F.check(world, text)
    assert [(c.value, c.right) for c in claims] == [(p.attrs["birth_city"], True), (p.attrs["birth_year"], True)]
    assert F.marked(text, claims) == (f"{p.name} was born in {p.attrs['birth_city']} [right] "
                                      f"in {p.attrs['birth_year']} [right].")


def test_a_wrong_city_and_year_get_the_truth(world):
    p = _first(world, "person")
    wrong_city = _other_city(world, p.attrs["birth_city"])
    wrong_year = str(int(p.attrs["birth_year"]) + 2)
    text = f"{p.name} was born in {wrong_city} in {wrong_year}."
    claims = F.check(world, text)
    assert F.tally(claims) == (0, 2)
    assert F.marked(text, claims).endswith(f"{wrong_city} [wrong: {p.attrs['birth_city']}] "
                                           f"in {wrong_year} [wrong: {p.attrs['birth_year']}].")


def test_a_cue_word_picks_the_relation_for_the_correction(world):
    p = _first(world, "person")
    wrong_city = _other_city(world, p.attrs["home_city"])
    [claim] = F.check(world, f"{p.name} lives in {wrong_city}.")
    assert not claim.right and claim.truth == p.attrs["home_city"]


def test_a_pronoun_keeps_the_subject_and_a_new_topic_drops_it(world):
    p = _first(world, "person")
    wrong_city = _other_city(world, p.attrs["home_city"])
    text = f"{p.name} is a {p.attrs['occupation']}. He lives in {wrong_city}.\nA guide to 1900 cakes."
    claims = F.check(world, text)
    assert [c.right for c in claims] == [True, False]       # the year in the new topic is nobody's
    assert all(c.subject == p.name for c in claims)


def test_only_the_continuation_is_checked(world):
    p = _first(world, "person")
    prompt = f"{p.name} was born in {_other_city(world, p.attrs['birth_city'])}"
    text = prompt + f" in {p.attrs['birth_year']}."
    claims = F.check(world, text, start=len(prompt))
    assert [(c.value, c.right) for c in claims] == [(p.attrs["birth_year"], True)]


def test_a_population_is_a_count_not_a_year(world):
    c = _first(world, "city")
    wrong = f"{int(c.attrs['population'].replace(',', '')) + 1000:,}"
    [claim] = F.check(world, f"The population of {c.name} is {wrong}.")
    assert not claim.right and claim.truth == c.attrs["population"]


def test_text_without_entities_has_no_claims(world):
    assert F.check(world, "Once upon a time, 3 cats sat on 12 mats in 1999.") == []
    assert F.check(world, "") == []
