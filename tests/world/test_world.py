"""The mini-world's API, determinism, save/load and sizes.

    python -m pytest tests/world/test_world.py            (fast)
    python -m pytest tests/world/test_world.py -m slow    (memory bound and scaling at MBs)
"""
import gzip
import hashlib
import inspect
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from minillm.common import UserError
from minillm.world.world import SIZES, Document, Fact, World, forbidden_words, parse_size
from minillm.world.data import Rng, derive_seed
from minillm.world.entities import BUCKETS, RELATIONS, assistant_name, census, make_entities
from minillm.world.plan import ASSISTANT_MIN, Planner
from minillm.world.store import document_stats

KINDS = {"encyclopedia", "biography", "news", "story", "forum", "list", "howto", "worksheet"}


@pytest.fixture(scope="module")
def world():
    return World.build(seed=3, size="smoke")


@pytest.fixture(scope="module")
def docs(world):
    return list(world.iter_documents())


def _tree_sha(folder):
    h = hashlib.sha256()
    for p in sorted(Path(folder).iterdir()):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_entities_and_facts_follow_the_schema(world):
    types = {e.type for e in world.entities.values()}
    assert types == set(RELATIONS)
    for e in world.entities.values():
        assert list(e.attrs) == list(RELATIONS[e.type]), e
        assert all(isinstance(v, str) and v for v in e.attrs.values())
        for rel, target in e.links.items():
            assert world.entities[target].name == e.attrs[rel]
    assert set(world.bucket.values()) == set(BUCKETS)
    assert set(world.exposure) == set(world.entities)
    assert len(world.facts) == sum(len(e.attrs) for e in world.entities.values())
    f = world.facts[0]
    assert isinstance(f, Fact) and world.entities[f.entity].attrs[f.relation] == f.value
    e = world.entities[f.entity]
    assert world.find(e.name) is e and world.find(e.name.upper()) is e and world.find(e.id) is e
    assert world.find("Nobody Anywhere") is None


def test_documents_have_the_contract_fields(world, docs):
    assert inspect.isgenerator(world.iter_documents())
    assert len(docs) == world.n_documents
    assert len({d.id for d in docs}) == len(docs)
    assert {d.kind for d in docs} == KINDS
    assert {d.lang for d in docs} == {"en", "fr", "de", "es"}
    for d in docs:
        assert isinstance(d, Document) and d.title and d.text
        assert "\n\n\n" not in d.text and d.text == d.text.strip()
        assert "{" not in d.text + d.title and "[[" not in d.text + d.title, d.text
        assert "  " not in d.text, d.text
        assert not re.search(r"^#", d.text, re.M), d.text   # a frame file's comment leaked
        assert all(len(f) == 3 and all(isinstance(x, str) for x in f) for f in d.facts)
        assert all(i in world.entities for i in d.entities)
        if d.topic:
            assert d.topic in d.entities and d.bucket == world.bucket[d.topic]


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    World.build(seed=11, size=30_000).save(tmp_path / "a")
    World.build(seed=11, size=30_000).save(tmp_path / "b")
    World.build(seed=12, size=30_000).save(tmp_path / "c")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["documents.jsonl.gz", "entities.jsonl", "facts.jsonl", "probes_cloze.jsonl",
                     "probes_qa.jsonl", "stats.json"]
    assert _tree_sha(tmp_path / "a") == _tree_sha(tmp_path / "b")
    assert _tree_sha(tmp_path / "a") != _tree_sha(tmp_path / "c")
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes(), name


def test_random_streams_are_pinned():
    """Everything random comes from Rng; these values must never change (Python promises
    random.Random(int).random() is stable, and blake2b is blake2b)."""
    rng = Rng(1, "a")
    assert [rng.below(1000) for _ in range(6)] == [604, 647, 810, 296, 185, 629]
    assert derive_seed(0, "x") == 4581555091939458794


def test_output_does_not_depend_on_hash_randomization():
    code = ("from minillm.world.world import World; from minillm.world.store import document_stats;"
            "w = World.build(seed=5, size=30_000); print(document_stats(w.iter_documents())[1])")
    out = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        out.add(r.stdout.strip())
    assert len(out) == 1


def test_save_load_round_trip(world, docs, tmp_path):
    stats = world.save(tmp_path / "w")
    loaded = World.load(tmp_path / "w")
    assert (loaded.seed, loaded.size) == (world.seed, world.size)
    assert list(loaded.entities) == list(world.entities)
    for i, e in world.entities.items():
        assert loaded.entities[i] == e
    assert loaded.bucket == world.bucket and loaded.exposure == world.exposure
    assert loaded.fact_mentions == world.fact_mentions and loaded.facts == world.facts
    assert [d.to_json() for d in loaded.iter_documents()] == [d.to_json() for d in docs]
    for kind in ("cloze", "qa"):
        assert loaded.probes(kind) == world.probes(kind)
    assert document_stats(loaded.iter_documents())[1] == stats["content_sha256"]
    assert stats["documents"] == len(docs)
    assert stats["bytes"] == sum(len(d.text.encode()) for d in docs)
    with gzip.open(tmp_path / "w" / "documents.jsonl.gz", "rt", encoding="utf-8") as f:
        first = json.loads(f.readline())
    assert first["facts"] == [list(x) for x in docs[0].facts]
    facts = [json.loads(x) for x in (tmp_path / "w" / "facts.jsonl").read_text().splitlines()]
    assert {"entity", "relation", "value", "bucket", "mentions"} <= set(facts[0])


def test_load_reports_missing_or_corrupt_worlds(world, tmp_path):
    with pytest.raises(UserError, match="not found"):
        World.load(tmp_path / "nothing")
    world.save(tmp_path / "w")
    (tmp_path / "w" / "entities.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match="corrupt"):
        World.load(tmp_path / "w")


def test_parse_size():
    assert parse_size("default") == SIZES["default"] == 10_000_000
    assert parse_size("20MB") == parse_size("20m") == 20_000_000
    assert parse_size("500KB") == 500_000 and parse_size(1234) == 1234
    with pytest.raises(UserError):
        parse_size("huge")
    with pytest.raises(UserError):
        World.build(size=100)


def _bytes(size):
    return sum(len(d.text.encode()) for d in World.build(seed=1, size=size).iter_documents())


def test_size_is_about_right_and_scales_linearly():
    small, big = _bytes(100_000), _bytes(400_000)
    assert 75_000 < small < 125_000
    assert 300_000 < big < 500_000
    assert 3.2 < big / small < 4.8


_MEMORY = """
import resource, sys
from minillm.world.world import World
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
stats = World.build(seed=0, size=int(sys.argv[1])).save(sys.argv[2])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - before) // 1024, stats["bytes"])
"""


@pytest.mark.slow
def test_building_20mb_stays_within_the_memory_bound(tmp_path):
    """Stated bound: building and saving any world adds < 120 MB to the process (the
    entity table caps at ~12k entities; documents are streamed). Measured at 20 MB, and
    checked to grow far slower than the text (5 MB vs 20 MB)."""
    grown = {}
    for size in (5_000_000, 20_000_000):
        r = subprocess.run([sys.executable, "-c", _MEMORY, str(size), str(tmp_path / str(size))],
                           capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stderr
        grown[size], nbytes = map(int, r.stdout.split())
        assert 0.8 * size < nbytes < 1.2 * size
    assert grown[20_000_000] < 120
    assert grown[20_000_000] - grown[5_000_000] < 60


@pytest.mark.slow
def test_size_scales_linearly_at_megabytes():
    a, b = _bytes(1_500_000), _bytes(6_000_000)
    assert 1_200_000 < a < 1_800_000
    assert 3.4 < b / a < 4.6


# ----------------------------------------------------------------------------- the famous assistant

def test_the_famous_assistant_exists_in_every_size_and_is_written_about_most():
    """One assistant in every size, in the `many` bucket, made by a popular company. As the
    topic of documents (measured, seed 0: smoke 12, small 86, default 575) it is at least
    the median popular entity in smoke, in the top tenth from small up and first of all
    from the default size up (it holds ASSISTANT_SHARE of the popular entities' documents)."""
    for size in SIZES:
        entities, bucket = make_entities(0, census(SIZES[size]), forbidden_words())
        assistants = [e for e in entities.values() if e.type == "assistant"]
        assert len(assistants) == 1, size
        a = assistants[0]
        maker = entities[a.links["maker"]]
        assert a.name == a.attrs["name"] == assistant_name() and bucket[a.id] == "many"
        assert maker.type == "org" and bucket[maker.id] == "many" and a.attrs["maker"] == maker.name
        assert a.links["city"] == maker.links["hq_city"] and a.attrs["city"] == entities[a.links["city"]].name
        assert int(maker.attrs["founded"]) < int(a.attrs["released"]) <= 2023
        planner = Planner(World(0, SIZES[size], entities, bucket))   # the layout only: no documents
        counts = sorted(planner.many_counts.values())
        n = planner.many_counts[a.id]
        assert n >= ASSISTANT_MIN and n >= counts[len(counts) // 2], (size, n, counts)
        if SIZES[size] >= SIZES["small"]:
            assert n >= counts[len(counts) * 9 // 10], (size, n, counts[-10:])
        if SIZES[size] >= SIZES["default"]:
            assert n == counts[-1] and n >= 300, (size, n, counts[-3:])


def test_the_assistant_name_collides_with_nothing():
    name = assistant_name()
    assert re.fullmatch(r"[A-Z][a-z]+", name) and name.lower() not in forbidden_words()
    for seed in range(3):
        entities, _ = make_entities(seed, census(SIZES["small"]), forbidden_words())
        words = {w.lower() for e in entities.values() if e.type != "assistant" for w in e.name.split()}
        assert name.lower() not in words


@pytest.mark.parametrize("size, least", [("smoke", 10), ("small", 80)])
def test_documents_about_the_assistant_are_many_and_state_its_maker(size, least):
    """Measured: how many documents name the assistant (seed 0: smoke 17, small 95, the
    default world ~600), in which kinds, and that each one about it says who made it."""
    world = World.build(seed=0, size=size)
    a = world.assistant()
    maker = a.attrs["maker"]
    naming, kinds, about = 0, Counter(), 0
    for d in world.iter_documents():
        named = re.search(rf"\b{a.name}\b", d.title + "\n" + d.text) is not None
        assert named == (a.id in d.entities), d.id
        naming += named
        if d.topic == a.id:
            about += 1
            kinds[d.kind] += 1
            assert (a.id, "maker", maker) in d.facts and maker in d.text, d.text
            assert d.lang == "en" and d.bucket == "many"
    assert naming == world.exposure[a.id] >= least
    assert about >= ASSISTANT_MIN and world.bucket[a.id] == "many"
    if size == "small":
        assert set(kinds) == {"encyclopedia", "news", "forum", "howto"}, kinds


def test_assistant_api_facts_and_probes_survive_save_and_load(world, tmp_path):
    a = world.assistant()
    assert a.type == "assistant" and world.find(a.name) is a
    assert world.entities[a.links["maker"]].name == a.attrs["maker"]
    facts = {f.relation: f.value for f in world.facts if f.entity == a.id}
    assert facts == a.attrs and set(facts) == set(RELATIONS["assistant"])
    cloze = {p.relation: p for p in world.probes("cloze") if p.entity == a.id}
    assert cloze["name"].prompt == "The famous AI assistant is called" and cloze["name"].answer == a.name
    assert cloze["maker"].prompt == f"{a.name} is an AI assistant made by"
    assert world.check_answer(cloze["name"], f" {a.name}, of course.")
    qa = {p.relation: p for p in world.probes("qa") if p.entity == a.id}
    assert qa["maker"].prompt == f"Who made {a.name}?"
    assert world.check_answer(qa["maker"], f"{a.name} was made by {a.attrs['maker']}.")
    world.save(tmp_path / "w")
    loaded = World.load(tmp_path / "w")
    assert loaded.assistant() == a
    with pytest.raises(UserError, match="no famous AI assistant"):
        World(0, 1000, {}, {}).assistant()     # a world saved before there was one
