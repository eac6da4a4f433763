"""What the mini-world's documents look like: correct worksheets, varied phrasing, a
small share of French, German and Spanish, and frames and templates that hold together.

    python -m pytest tests/world/test_docs.py
"""
import re
from collections import Counter

import pytest

from minillm.world.world import World
from minillm.world.entities import RELATIONS
from minillm.world.frames import frames
from minillm.world.templates import LANGS, probe_templates, templates

EQUATION = re.compile(r"(\d+(?: [-+*/] \d+)+) = (\d+)")


@pytest.fixture(scope="module")
def world():
    return World.build(seed=21, size=400_000)


@pytest.fixture(scope="module")
def docs(world):
    return list(world.iter_documents())


def evaluate(expr):
    """Integer arithmetic with the usual precedence; division must be exact."""
    tokens = expr.split()
    terms, ops = [int(tokens[0])], []
    for op, num in zip(tokens[1::2], map(int, tokens[2::2])):
        if op == "*":
            terms[-1] *= num
        elif op == "/":
            assert terms[-1] % num == 0, f"inexact division in {expr}"
            terms[-1] //= num
        else:
            ops.append(op)
            terms.append(num)
    total = terms[0]
    for op, t in zip(ops, terms[1:]):
        total = total + t if op == "+" else total - t
    return total


def test_evaluate_helper():
    assert evaluate("2 + 3 * 4") == 14 and evaluate("20 - 6 / 3") == 18 and evaluate("4 + 3 + 1") == 8


def test_worksheet_arithmetic_is_correct(docs):
    sheets = [d for d in docs if d.kind == "worksheet"]
    assert len(sheets) >= 20
    n_eq = n_problems = 0
    for d in sheets:
        problems = re.findall(r"^\d+\. (.*)\nSolution: (.*)\nAnswer: (-?\d+)$", d.text, re.M)
        assert len(problems) >= 4, d.text
        for question, solution, answer in problems:
            equations = EQUATION.findall(solution)
            assert equations, solution
            for expr, result in equations:
                assert evaluate(expr) == int(result), (expr, result, d.id)
            assert int(equations[-1][1]) == int(answer)
            asked = re.fullmatch(r"What is (\d+ [-+*/] \d+)\?", question)
            if asked:
                assert evaluate(asked.group(1)) == int(answer)
            n_eq += len(equations)
            n_problems += 1
        assert len(EQUATION.findall(d.text)) == sum(len(EQUATION.findall(s)) for _, s, _ in problems)
    assert n_problems >= 100 and n_eq >= n_problems


def test_foreign_documents_are_a_small_share_in_their_own_language(docs):
    langs = Counter(d.lang for d in docs)
    assert set(langs) == {"en", "fr", "de", "es"}
    share = 1 - langs["en"] / len(docs)
    assert 0.03 <= share <= 0.05, langs
    markers = {"fr": r"\b(le|la|les|de|du|est|et|une?|à|dans|a été|habite|travaille|ville)\b",
               "de": r"\b(der|die|das|und|ist|von|wurde|eine?|mit|am|lebt|arbeitet|Stadt)\b",
               "es": r"\b(el|la|los|las|de|del|en|es|se|y|fue|está|una?|vive|trabaja|ciudad)\b"}
    english = r"\b(the|was born|is a|lives in|and|of)\b"
    for d in docs:
        if d.lang == "en":
            continue
        assert len(re.findall(markers[d.lang], d.text, re.I)) >= 3, (d.lang, d.text)
        assert not re.search(english, d.text), d.text


def test_popular_facts_come_in_many_wordings(world, docs):
    """The same fact about a popular person is written in several different sentences."""
    person = max((e for e in world.entities.values() if e.type == "person"),
                 key=lambda e: world.exposure[e.id])
    city = person.attrs["birth_city"]
    forms = set()
    for d in docs:
        if d.lang == "en" and (person.id, "birth_city", city) in set(d.facts):
            for sentence in re.split(r"(?<=[.!?])\s+|\n", d.text):
                if city in sentence and (person.name in sentence or re.match(r"(She|He|I|Born)\b", sentence)):
                    forms.add(sentence.replace(person.name, "X").replace(city, "Y"))
    assert len(forms) >= 8, forms


def test_biographies_use_at_least_eight_frames(docs):
    bio_frames = {f.name for f in frames()["en", "biography", "person"]}
    assert len(bio_frames) >= 8
    used = {d.template for d in docs if d.kind == "biography" and d.lang == "en"}
    assert len(used) >= 8


def test_templates_cover_every_relation_in_every_language():
    for lang in LANGS:
        stated = {(t.type, r) for t in templates(lang) for r in t.rels}
        if lang == "en":
            assert stated == {(t, r) for t in RELATIONS for r in RELATIONS[t]}
            for t, rels in RELATIONS.items():
                for r in rels:
                    plain = [x for x in templates(lang) if x.type == t and r in x.rels and "plain" in x.styles]
                    assert len(plain) >= 4, (t, r)
                    assert set(probe_templates()[t, r]) == {"cloze", "questions", "answer"}
        else:
            assert len(stated) >= 15, lang


def test_kinds_and_sizes_are_reasonable(docs):
    kinds = Counter(d.kind for d in docs)
    assert set(kinds) == {"encyclopedia", "biography", "news", "story", "forum", "list", "howto", "worksheet"}
    assert all(n >= 10 for n in kinds.values()), kinds
    stories = [len(d.text) for d in docs if d.kind == "story"]
    assert sum(stories) / len(stories) > 500
    for d in docs:
        if d.kind == "forum":
            assert "Reply from" in d.text and d.title
        if d.kind == "story":
            assert len(d.text.split("\n")) >= 5
