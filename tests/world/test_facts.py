"""The mini-world's ground truth: what documents state is true, exposure is as promised,
probes ask the right thing, and the answer checker is fair.

    python -m pytest tests/world/test_facts.py
"""
import re
from collections import Counter

import pytest

from minillm.world.world import Document, World, check_answer, forbidden_words
from minillm.world.entities import RELATIONS, VALUE_TYPE
from minillm.world.plan import FEW_DOCS, MIN_MANY
from minillm.world.probes import qa_pairs
from minillm.world.templates import FactParser, format_number

NAME_RUN = re.compile(r"[A-Z][a-z]+(?: [A-Z][a-z]+)*")


@pytest.fixture(scope="module")
def world():
    return World.build(seed=7, size=150_000)


@pytest.fixture(scope="module")
def docs(world):
    return list(world.iter_documents())


def _names_in(text, by_name):
    """Entity ids whose full name occurs in text as whole words."""
    found = set()
    for run in NAME_RUN.findall(text):
        words = run.split()
        for i in range(len(words)):
            for j in range(i + 1, min(len(words), i + 4) + 1):
                e = by_name.get(" ".join(words[i:j]))
                if e:
                    found.add(e)
    return found


def test_every_sentence_that_states_a_fact_is_true_and_recorded(world, docs):
    parser = FactParser(world.entities)
    errors, parsed = [], 0
    for d in docs:
        found, errs = parser.parse(d)
        errors += errs
        assert found == set(d.facts), (d.id, set(d.facts) ^ found, d.text)
        parsed += len(found)
    assert not errors, errors[:5]
    assert parsed > 2000


def test_recorded_values_appear_in_the_text(world, docs):
    """A check independent of the template parser: each recorded fact's subject and value
    are written in the document (numbers in the document's number format)."""
    for d in docs:
        whole = d.title + "\n" + d.text
        for e, rel, value in d.facts:
            entity = world.entities[e]
            shown = value
            if VALUE_TYPE[entity.type, rel] == "number":
                shown = format_number(value, d.lang)
            assert shown in whole, (d.id, e, rel, value)
            assert world.fact_mentions[e, rel] > 0
            assert world.entities[e].attrs[rel] == value


def test_named_entities_are_exactly_the_documents_entities(world, docs):
    by_name = {e.name: e.id for e in world.entities.values()}
    for d in docs:
        assert _names_in(d.title + "\n" + d.text, by_name) == set(d.entities), d.id


def test_exposure_and_fact_mentions_count_the_documents(world, docs):
    exposure = Counter(i for d in docs for i in d.entities)
    assert world.exposure == {i: exposure.get(i, 0) for i in world.entities}
    stated = Counter((e, r) for d in docs for e, r, _ in d.facts)
    assert world.fact_mentions == {k: stated.get(k, 0) for k in world.fact_mentions}


def test_exposure_buckets_keep_their_promises(world):
    by_bucket = {b: [i for i in world.entities if world.bucket[i] == b] for b in ("many", "few", "one", "never")}
    assert all(by_bucket.values())
    assert all(world.exposure[i] == 0 for i in by_bucket["never"])
    assert all(world.exposure[i] == 1 for i in by_bucket["one"])
    assert all(FEW_DOCS[0] <= world.exposure[i] <= FEW_DOCS[1] for i in by_bucket["few"])
    assert min(world.exposure[i] for i in by_bucket["many"]) >= max(MIN_MANY, FEW_DOCS[1] + 1)
    for (e, rel), n in world.fact_mentions.items():
        b = world.bucket[e]
        expected = {"never": (0, 0), "one": (1, 1), "few": (1, FEW_DOCS[1])}.get(b, (1, 10 ** 9))
        assert expected[0] <= n <= expected[1], (e, rel, b, n)
    # popular entities' facts are repeated many times, in different documents
    many_people = [i for i in by_bucket["many"] if world.entities[i].type == "person"]
    assert min(world.fact_mentions[i, r] for i in many_people for r in RELATIONS["person"]) >= 3


def test_held_out_entities_appear_in_no_document(world, docs):
    text = "\n".join(d.title + "\n" + d.text for d in docs)
    never = [e for e in world.entities.values() if world.bucket[e.id] == "never"]
    # every type has held-out members but the assistant (there is one, and it is famous)
    assert len(never) >= 10 and {e.type for e in never} == set(RELATIONS) - {"assistant"}
    for e in never:
        assert not re.search(rf"\b{re.escape(e.name)}\b", text), e.name


def test_links_only_point_to_popular_entities(world):
    for e in world.entities.values():
        for target in e.links.values():
            allowed = {"many", "never"} if world.bucket[e.id] == "never" else {"many"}
            assert world.bucket[target] in allowed, (e.id, target)


def test_names_are_unique_and_are_not_template_words(world):
    names = [e.name for e in world.entities.values()]
    assert len(set(names)) == len(names)
    words = forbidden_words()
    for e in world.entities.values():
        if e.type in ("city", "country"):
            assert e.name.lower() not in words
        if e.type == "person":
            assert e.extra["first"].lower() not in words and e.extra["last"].lower() not in words


def _fact_doc(text):
    return Document("probe", "probe", "en", "", text, [], [])


def test_probes_ask_for_the_fact_and_end_right_before_the_answer(world):
    parser = FactParser(world.entities)
    facts = {(f.entity, f.relation): f.value for f in world.facts}
    for kind in ("cloze", "qa"):
        probes = world.probes(kind)
        assert len(probes) == len(world.facts)
        assert {p.bucket for p in probes} == {"many", "few", "one", "never"}
        for p in probes:
            assert p.answer == facts[p.entity, p.relation]
            assert p.bucket == world.bucket[p.entity] and p.name == world.entities[p.entity].name
    for p in world.probes("cloze"):
        # the prompt followed by the answer is a sentence that states exactly this fact
        e = world.entities[p.entity]
        answer = format_number(p.answer, "en") if p.answer_type == "number" else p.answer
        doc = _fact_doc(f"{p.prompt} {answer}.")
        doc.entities = [p.entity]
        found, errors = parser.parse(doc)
        assert not errors and found == {(e.id, p.relation, p.answer)}, (p, found, errors)
        # the assistant's name is the answer of its "name" probe, so not in the prompt
        assert not p.prompt.endswith((" ", ".")) and (e.name in p.prompt) != (p.relation == "name")
    for p in world.probes("qa"):
        named = world.entities[p.entity].name in p.prompt
        assert p.prompt.endswith("?") and named != (p.relation == "name")
    assert len(world.probes("cloze", buckets={"never"})) == sum(
        1 for f in world.facts if world.bucket[f.entity] == "never")


def test_qa_pairs_have_answer_sentences_that_state_the_fact(world):
    parser = FactParser(world.entities)
    pairs = qa_pairs(world, variants=True)
    assert len(pairs) == 3 * len(world.facts)
    for pair in pairs[::3]:
        doc = _fact_doc(pair["sentence"])
        doc.entities = [pair["entity"]]
        found, errors = parser.parse(doc)
        assert not errors
        assert found == {(pair["entity"], pair["relation"], pair["answer"])}, pair


def _probe(world, type_, relation, kind="cloze", bucket="many"):
    return next(p for p in world.probes(kind) if p.relation == relation
                and world.entities[p.entity].type == type_ and p.bucket == bucket)


def test_check_answer_accepts_harmless_variation(world):
    p = _probe(world, "person", "birth_city")
    city = p.answer
    for reply in (city, f" {city}.", city.lower(), city.upper(), f"{city}, a city in the north.",
                  f" the {city}", f'"{city}"', f"{city}\nShe grew up there."):
        assert check_answer(p, reply), reply
    pop = _probe(world, "city", "population")
    n = int(pop.answer)
    for reply in (f" {n:,} people.", f"{n}", f"{n:,}".replace(",", " "), f"{n:,}".replace(",", ".")):
        assert check_answer(pop, reply), reply
    landmark = _probe(world, "city", "landmark")
    assert check_answer(landmark, f" {landmark.answer}.") and check_answer(landmark, f"the {landmark.answer}")
    qa = _probe(world, "person", "birth_city", "qa")
    assert world.check_answer(qa, f"{qa.name} was born in {qa.answer}.")
    assert world.check_answer(qa, f"In {qa.answer.lower()}!")
    friend = _probe(world, "person", "best_friend", "qa")
    assert world.check_answer(friend, f"{friend.name}'s best friend is {friend.answer}.")


def test_check_answer_rejects_wrong_entities(world):
    p = _probe(world, "person", "birth_city")
    others = [e.name for e in world.entities.values() if e.type == "city" and e.name != p.answer]
    for reply in ("", " ", others[0], f"{p.answer}el", f"New {p.answer}", f"not sure, maybe {p.answer}",
                  p.answer[:-1]):
        assert not check_answer(p, reply), reply
    assert all(not check_answer(p, f" {o}") for o in others)
    pop = _probe(world, "city", "population")
    assert not check_answer(pop, str(int(pop.answer) + 100))
    assert not check_answer(pop, str(int(pop.answer)) + "0")
    qa = _probe(world, "person", "birth_city", "qa")
    assert not world.check_answer(qa, f"{qa.name} was born in {others[0]}.")
    assert not world.check_answer(qa, f"Either {qa.answer} or {others[0]}.")
    assert not world.check_answer(qa, "I do not know.")
    year = _probe(world, "person", "birth_year", "qa")
    y = int(year.answer)
    assert world.check_answer(year, f"{year.name} was born in {y}.")
    assert not world.check_answer(year, f"In {y} or {y + 1}.")
    assert not world.check_answer(year, f"In {y + 1}.")
