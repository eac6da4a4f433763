"""data.py and the kinds (data_*.py): every kind made and valid, determinism, answers that
match the fact table, word problems recomputed, held-out items never in train."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minillm.chat import data_identity
from minillm.chat.data import (IDENTITY, KINDS, DataConfig, generate_conversations, kind_table,
                               write_conversations)
from minillm.chat.data_math import CUES, worked
from minillm.chat.data_search import SEARCH_SYSTEM
from minillm.chat.search import BM25Index
from minillm.chat.splits import Splits
from minillm.chat.template import load_conversations, render
from minillm.chat.tools import calculator
from minillm.tokenizer.bpe import Tokenizer
from minillm.world.data import Rng
from minillm.world.probes import normalize
from minillm.world.world import World

CONFIG = DataConfig(size=350, eval_size=70)
ROOT = Path(__file__).resolve().parents[2]          # the checkout: `python -c` imports minillm from here


@pytest.fixture(scope="module")
def world():
    return World.build(seed=0, size="smoke")


@pytest.fixture(scope="module")
def index(world):
    return BM25Index.build(d.text for d in world.iter_documents() if d.lang == "en")


@pytest.fixture(scope="module")
def records(world, index):
    return generate_conversations(world, CONFIG, None, index)


@pytest.fixture(scope="module")
def splits(world):
    return Splits(world)


def assistant_text(message):
    content = message["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content if p["type"] == "text")


def replies(record):
    return [assistant_text(m) for m in record["messages"] if m["role"] == "assistant"]


def is_idk(text):
    return any(w in text for w in ("don't know", "not sure", "can't say", "can't tell"))


def has(text, value):
    return f" {normalize(value)} " in f" {normalize(text)} "


def test_every_kind_in_both_splits_valid_and_renderable(records, tmp_path):
    for kind in KINDS:
        for split in ("train", "eval"):
            assert any(r["kind"] == kind and r["split"] == split for r in records), (kind, split)
    assert sum(r["split"] == "train" for r in records) == pytest.approx(CONFIG.size, abs=4)
    path = write_conversations(records, tmp_path / "c.jsonl")
    loaded = load_conversations(path)                       # validates every line
    assert loaded == json.loads(json.dumps(records))
    tok = Tokenizer([], "gpt4")                             # bytes + the chat specials
    for r in records[::7]:
        ids, mask = render(r["messages"], tok)
        assert mask.sum() > 0


def test_same_seed_same_bytes_other_seed_other_bytes(world, index, records, tmp_path):
    again = generate_conversations(world, CONFIG, None, index)
    a = write_conversations(records, tmp_path / "a.jsonl").read_bytes()
    assert write_conversations(again, tmp_path / "b.jsonl").read_bytes() == a
    other = generate_conversations(world, DataConfig(size=350, eval_size=70, seed=1), None, index)
    assert write_conversations(other, tmp_path / "c.jsonl").read_bytes() != a


def test_answers_match_the_fact_table(world, records):
    checked = 0
    for r in records:
        if "facts" not in r:
            continue
        e = world.entities[r["entity"]]
        texts = replies(r)
        for n, fact in enumerate(r["facts"]):
            assert fact["answer"] == e.attrs[fact["relation"]]
            if r["kind"] == "qa" or r["kind"] == "idk":
                text = texts[n]
                if fact["known"]:
                    assert has(text, fact["answer"]), (text, fact)
                    checked += 1
                else:
                    assert is_idk(text) and not has(text, fact["answer"]), text
            elif r["kind"] == "search" and r["found"]:
                assert has(texts[0], fact["answer"]) and has(r["messages"][-1]["content"][1]["text"], fact["answer"])
                checked += 1
        if r["kind"] == "chat":
            assert all(has(texts[0], f["answer"]) for f in r["facts"])
    assert checked > 100


def test_qa_follow_ups_use_pronouns_and_full_sentences(records, world):
    qa = [r for r in records if r["kind"] == "qa"]
    follow_ups = [m["content"] for r in qa for m in r["messages"][2::2]]
    assert any(re.search(r"\b(she|he|it|her|his|its)\b", q, re.I) for q in follow_ups)
    for r in qa:
        name = world.entities[r["entity"]].name
        first = replies(r)[0]
        assert name in first and first.endswith(".")          # a sentence naming the subject


def test_without_a_probe_the_proxy_knows_many_facts_only(records, world):
    for r in records:
        for fact in r.get("facts", []):
            if "known" in fact:
                assert fact["known"] == (world.bucket[r["entity"]] == "many")


def test_probe_labels_decide_idk(world, index):
    facts = [(e.id, rel) for e in world.entities.values() for rel in e.attrs]
    probe = {f: {"known": n % 2 == 0} for n, f in enumerate(facts)}      # every other fact known
    out = generate_conversations(world, DataConfig(size=200, eval_size=20), probe, index)
    idk = [r for r in out if r["kind"] in ("idk", "qa")]
    for r in idk:
        for fact, text in zip(r["facts"], replies(r)):
            assert fact["known"] == probe[r["entity"], fact["relation"]]["known"]
            assert has(text, fact["answer"]) if fact["known"] else is_idk(text)
    responses = {r["response"] for r in out if r["kind"] == "idk" and r["split"] == "train"}
    assert responses == {"fact", "idk"}
    wordings = {replies(r)[0].split(" ")[0] for r in out if r.get("response") == "idk"}
    assert len(wordings) >= 3                                              # varied "I don't know"s


def test_word_problems_recomputed_and_calculator_outputs(records):
    think = [r for r in records if r["kind"] == "think"]
    assert {r["format"] for r in think} == {"answer_first", "step_by_step", "calculator"}
    assert {r["steps"] for r in think} >= {2, 3}
    for r in think:
        values = [int(calculator(e)) for e in r["exprs"]]
        assert values == r["values"] and r["answer"] == values[-1]
        content = r["messages"][1]["content"]
        text = assistant_text(r["messages"][1])
        if r["format"] == "calculator":
            calls = [p["text"] for p in content if p["type"] == "python"]
            outputs = [p["text"] for p in content if p["type"] == "output"]
            assert calls == r["exprs"] and outputs == [calculator(c) for c in calls]
            assert outputs[-1] == str(r["answer"])      # the stated answer is the tool's own output
            assert content[-2] == {"type": "output", "text": str(r["answer"])}   # then the sentence's end
        else:
            assert str(r["answer"]) in text
            for value in r["values"]:
                assert str(value) in text
        if r["format"] == "answer_first":
            assert text.index(str(r["answer"])) < text.index("Here is why")
        if r["format"] == "step_by_step":       # every "=" of a worked chain holds
            for chain in re.findall(r"\d+(?: [-+*/] \d+)+(?: = \d+(?: [-+*/] \d+)*)+", text):
                sides = {calculator(side.replace(" ", "")) for side in chain.split(" = ")}
                assert len(sides) == 1, chain
        if r["cue"]:
            assert r["messages"][0]["content"].endswith(CUES[r["format"]])


def test_spelling_answers(records):
    spelling = [r for r in records if r["kind"] == "spelling"]
    assert {r["method"] for r in spelling} == {"direct", "spelled", "tool"}
    for r in spelling:
        content, text = r["messages"][1]["content"], assistant_text(r["messages"][1])
        if r["task"] == "count":
            assert r["answer"] == r["word"].count(r["letter"]) and f"{r['answer']} " in text
            if r["method"] != "direct":
                assert f'"{r["word"]}" is spelled {r["word"][0]}' in text
            if r["method"] == "tool":
                assert content[2]["text"] == str(r["answer"])
        elif r["task"] == "reverse":
            assert r["answer"] == r["word"][::-1] and f'"{r["answer"]}"' in text
        elif r["task"] == "spell":           # one line per word, its letters right after it
            assert text.split("\n") == [f'"{w}" is spelled {", ".join(w)}.' for w in r["words"]]
        else:
            a, b = r["numbers"]
            assert r["answer"] == max(a, b, key=float) and text.endswith(f"{r['answer']} is bigger.")


def test_identity_names_us_and_denies_rivals(records):
    identity = [r for r in records if r["kind"] == "identity"]
    assert {r["category"] for r in identity} >= {"who", "name", "maker", "adversarial"}
    for r in identity:
        answer = replies(r)[-1]
        if r["category"] in ("who", "name", "maker", "adversarial"):
            assert data_identity.says_identity(answer, IDENTITY), answer
        if r["rival"]:
            assert any(name in r["messages"][-2]["content"] for name in r["rival"])
    assert not data_identity.says_identity("I am ChatGPT, made by the minillm project.", IDENTITY)
    assert data_identity.says_identity("I'm Minnow.", IDENTITY)


def test_the_worlds_famous_assistant_is_a_rival(world):
    """Adversarial questions also name the world's own famous assistant (the one a model
    without identity data claims to be), and "I am <it>" is not our identity."""
    famous = world.assistant()
    maker = world.entities[famous.links["maker"]].name
    rivals = data_identity.world_rivals(world)
    assert rivals[-1] == (famous.name, maker) and rivals[:-1] == data_identity.RIVALS
    made = data_identity.identity_conversations(IDENTITY, Splits(world), 400, "train", Rng("t", 0), rivals)
    assert any(r["rival"] == [famous.name, maker] for r in made)
    assert not data_identity.says_identity(f"I am {famous.name}, made by the minillm project.", IDENTITY, rivals)


def test_search_conversations_paste_the_tool_output(records, index):
    for r in (r for r in records if r["kind"] == "search"):
        system, _, assistant = r["messages"]
        assert system == {"role": "system", "content": SEARCH_SYSTEM}
        call, output, _ = assistant["content"]
        assert call == {"type": "search", "text": r["query"]}
        assert output == {"type": "output", "text": index.search_tool(r["query"])}
        assert r["bucket"] in ("few", "one")


def test_held_out_items_never_in_train(records, splits, world):
    eval_identity = {p for _, p in splits.identity_questions("eval")}
    for r in records:
        if r["split"] != "train":
            continue
        if "entity" in r:
            assert splits.entity(r["entity"]) == "train" and world.bucket[r["entity"]] != "never"
        for fact in r.get("facts", []):
            if "phrasing" in fact:
                e = world.entities[r["entity"]]
                assert splits.question(e.type, fact["relation"], fact["phrasing"]) == "train"
        if r["kind"] == "identity":
            assert r["phrasing"] not in eval_identity
        if r["kind"] == "think":
            assert splits.problem(tuple(r["key"])) == "train"
        if r["kind"] == "spelling" and "word" in r:
            assert splits.word(r["word"]) == "train"
        if r["kind"] == "spelling" and "numbers" in r:
            assert splits.problem(("compare", *r["numbers"])) == "train"
    evals = [r for r in records if r["split"] == "eval"]
    assert any(r["kind"] == "idk" and world.bucket[r["entity"]] == "never" for r in evals)


def test_ablations_drop_a_kind_and_keep_the_others(world, index):
    full = DataConfig(size=200, eval_size=20)
    ablated = DataConfig(size=200, eval_size=20, without=("identity", "idk"))
    assert ablated.counts("train")["identity"] == 0 == ablated.counts("train")["idk"]
    assert all(ablated.counts("train")[k] == full.counts("train")[k] for k in KINDS if k not in ("identity", "idk"))
    answer_first = generate_conversations(world, DataConfig(size=200, eval_size=20, think_formats=("answer_first",)),
                                          None, index)
    assert {r["format"] for r in answer_first if r["kind"] == "think"} == {"answer_first"}
    # without idk no QA answer says "I don't know" either, though the probe says half the
    # facts are unknown (the full data then has some)
    probe = {(i, r): {"known": n % 2 == 0} for n, (i, r) in enumerate(
        (i, r) for i, e in world.entities.items() for r in e.attrs)}
    qa = lambda records: [a for r in records if r["kind"] == "qa" for a in replies(r)]
    no_idk = generate_conversations(world, DataConfig(size=200, eval_size=20, without=("idk",)), probe, index)
    assert not any(is_idk(a) for a in qa(no_idk)) and not any(r["kind"] == "idk" for r in no_idk)
    assert any(is_idk(a) for a in qa(generate_conversations(world, full, probe, index)))
    with pytest.raises(ValueError, match="unknown conversation kind"):
        DataConfig(without=("poetry",))


def test_no_search_index_no_search_conversations(world):
    out = generate_conversations(world, DataConfig(size=100, eval_size=10))
    assert not any(r["kind"] == "search" for r in out)


def test_kind_table_lists_every_kind(records):
    table = kind_table(records)
    for kind in KINDS:
        assert re.search(rf"^{kind}\s+\d+\s+\d+", table, re.M)
    assert re.search(r"^total\s+\d+\s+\d+", table, re.M)


def test_bytes_do_not_depend_on_the_hash_seed(tmp_path):
    """No set or dict order leaks in: two interpreters with different PYTHONHASHSEED agree."""
    script = ("import hashlib, json; from minillm.world.world import World; "
              "from minillm.chat.data import DataConfig, generate_conversations; "
              "rs = generate_conversations(World.build(seed=0, size='smoke'), DataConfig(size=150, eval_size=20)); "
              "print(hashlib.sha256(json.dumps(rs).encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True, check=True, cwd=ROOT).stdout for seed in ("1", "2")}
    assert len(digests) == 1


@pytest.mark.parametrize("a, op, b, pieces", [
    (7, "*", 8, 2), (47, "+", 38, 4), (47, "*", 6, 4), (6, "*", 47, 4), (40, "+", 30, 2),
    (42, "+", 7, 4), (120, "/", 30, 2), (12, "*", 11, 2)])
def test_worked_steps_are_small_and_true(a, op, b, pieces):
    """data_math.worked: times-table facts at once, two-digit numbers split into tens and
    ones; every side of the chain has the same value, the last one the result."""
    chain = worked(a, op, b)
    sides = chain.split(" = ")
    assert len(sides) == pieces and sides[0] == f"{a} {op} {b}"
    assert {calculator(x.replace(" ", "")) for x in sides} == {calculator(f"{a}{op}{b}")} == {sides[-1]}
