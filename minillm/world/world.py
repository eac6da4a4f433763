"""The mini-world: a seeded, fact-checkable "internet" that every stage trains on.

    minillm world build --seed 0 --size default --out runs/world
    minillm world show "Lira Vendel" --dir runs/world     # a name or an id
    minillm world stats --dir runs/world

A generated world of invented people, cities, countries, companies and contests, written
as encyclopedia entries, biographies, news, children's stories, forum threads, lists,
how-tos and arithmetic worksheets (plus ~4% in French, German and Spanish). Every fact
is known, so every stage can be scored: did the pipeline keep the good pages, did the base
model store a fact, does the assistant admit what it does not know.

API (stable; other stages rely on it)
    World.build(seed=0, size="default") -> World
        size: "smoke" (~100 KB) | "small" (~1.5 MB) | "default" (~10 MB) | "large"
        (~200 MB) | bytes as an int or "20MB". Same (seed, size) -> byte-identical output.
    world.entities      {id: Entity(id, type, name, attrs, links, extra)}; attrs maps each
                        relation to its value string, links maps entity-valued relations
                        to ids, extra holds gender/first/last (people) and kind (events)
    world.facts         [Fact(entity, relation, value)], entity = id, value a string
    world.bucket        {id: "many" | "few" | "one" | "never"}
    world.exposure      {id: number of documents that mention the entity}
    world.fact_mentions {(id, relation): number of documents that state the fact}
    world.iter_documents() -> Iterator[Document], deterministic order, streamed
        Document(id, kind, lang, title, text, facts, entities, topic, bucket, template)
        kind: encyclopedia biography news story forum list howto worksheet; lang: en fr
        de es; text: plain text, paragraphs separated by a blank line; facts: [(entity,
        relation, value)] the text states; entities: ids of every entity it names.
    world.probes(kind="cloze" | "qa", buckets=None) -> [Probe(prompt, answer, entity,
        relation, bucket, kind, name, answer_type)]
    world.qa_pairs(variants=False) -> [{"question", "answer", "sentence", ...}]
    check_answer(probe, text) / world.check_answer(probe, text) (knows wrong entities)
    world.find(name_or_id) -> Entity; world.facts_of(id) -> [Fact]
    world.save(out_dir) / World.load(out_dir) (documents are streamed back from disk)

Sizes (measured with `minillm world build`, seed 0, on a loaded 2-core machine; CPU time):
    smoke      0.10 MB     307 docs    0.3 s
    small      1.5 MB    4,533 docs    1.3 s
    default   10.1 MB   30,227 docs    7.7 s   (peak RSS 43 MB)
    large    206 MB    612,963 docs  149 s     (peak RSS 78 MB; documents are streamed)
The default is 10 MB: at ~4 bytes a token (a 4096-token BPE trained on the world) that is
~2.5M tokens, so a 15-minute CPU pretraining run (20-60M tokens) makes 8-24 passes; a
`many` fact is stated ~100 times a pass (about a thousand exposures, the regime where small
models store facts), a `few` fact 1-5 times and a `one` fact once, which is the gap the
recall probes measure. Bigger worlds add repetition of the popular facts, not more of them.

On disk (save): documents.jsonl.gz, entities.jsonl, facts.jsonl, probes_cloze.jsonl,
probes_qa.jsonl, stats.json (its content_sha256 hashes the uncompressed documents, the
same on any machine even where gzip's bytes might differ).

How it is built (read in this order): world_entities (what is true), world_plan (which
documents exist and which facts each states), world_frames + world_templates (how facts
become sentences, and the parser that reads them back), world_lists, world_worksheets,
world_probes (probes and the answer checker), world_io (files and the command line),
world_data (the version-stable Rng and the data/world/*.txt readers).
"""
import functools
import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from minillm.common import UserError, data_path, read_json, runs_dir
from minillm.world.data import Rng
from minillm.world.entities import (  # noqa: F401  (Entity is part of the API)
    VALUE_TYPE, Entity, census, make_entities, template_words)
from minillm.world.probes import (  # noqa: F401  (check_answer is part of the API)
    Probe, check_answer, make_probes, normalize, qa_pairs)

SIZES = {"smoke": 100_000, "small": 1_500_000, "default": 10_000_000, "large": 200_000_000}


class Fact(NamedTuple):
    entity: str
    relation: str
    value: str


@dataclass
class Document:
    id: str
    kind: str
    lang: str
    title: str
    text: str
    facts: list      # [(entity id, relation, value)]
    entities: list   # ids of the entities the document names
    topic: str = None
    bucket: str = "none"
    template: str = ""

    def to_json(self):
        return {"id": self.id, "kind": self.kind, "lang": self.lang, "title": self.title,
                "text": self.text, "facts": [list(f) for f in self.facts],
                "entities": list(self.entities), "topic": self.topic, "bucket": self.bucket,
                "template": self.template}

    @classmethod
    def from_json(cls, d):
        return cls(**{**d, "facts": [tuple(f) for f in d["facts"]]})


def parse_size(size):
    """"default" | "smoke" | ... | 12345 | "20MB" | "500KB" -> bytes."""
    if isinstance(size, int):
        return size
    if size in SIZES:
        return SIZES[size]
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?\s*", str(size))
    if not m:
        raise UserError(f"unknown world size {size!r}: use one of {', '.join(SIZES)} or bytes like 20MB")
    return int(float(m.group(1)) * {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m.group(2).lower()])


@functools.lru_cache(maxsize=None)
def forbidden_words():
    """Every word of the templates and word lists: no invented name may equal one."""
    folder = data_path("world")
    return frozenset(template_words(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))
                                    if p.name != "names.txt"))


class World:
    def __init__(self, seed, size, entities, bucket):
        self.seed, self.size = seed, size
        self.entities, self.bucket = entities, bucket
        self.exposure, self.fact_mentions, self.n_documents = {}, {}, 0
        self.by_name = {e.name.lower(): e for e in entities.values()}
        self._dir = None        # set by load(): documents and probes come from disk
        self._stats = None

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, seed=0, size="default"):
        size = parse_size(size)
        if size < 10_000:
            raise UserError(f"a world needs at least 10 KB of text, not {size} bytes")
        entities, bucket = make_entities(seed, census(size), forbidden_words())
        world = cls(seed, size, entities, bucket)
        world._count()
        return world

    def _count(self):
        """Exposure and fact mentions from the document plans (no text is written)."""
        from minillm.world.plan import Planner
        exposure, mentions = Counter(), Counter()
        planner = Planner(self)
        for plan in planner:
            exposure.update(plan.mentions(self.entities))
            mentions.update(plan.facts())
        self.exposure = {i: exposure.get(i, 0) for i in self.entities}
        self.fact_mentions = {(e, r): mentions.get((e, r), 0) for e, r, _ in self.facts}
        self.n_documents = planner.n_docs

    @functools.cached_property
    def facts(self):
        return [Fact(e.id, rel, value) for e in self.entities.values() for rel, value in e.attrs.items()]

    # ------------------------------------------------------------------ documents
    def iter_documents(self):
        """Every document, in a fixed order, written (or read from disk) one at a time."""
        if self._dir is not None:
            with gzip.open(self._dir / "documents.jsonl.gz", "rt", encoding="utf-8") as f:
                for line in f:
                    yield Document.from_json(json.loads(line))
            return
        from minillm.world.plan import Planner
        for plan in Planner(self):
            yield self.render(plan)

    def render(self, plan):
        """One DocPlan -> Document."""
        from minillm.world.frames import frames, render_frame
        from minillm.world.lists import render_list
        from minillm.world.worksheets import render_worksheet
        rng = Rng("world", self.seed, "render", plan.index)
        if plan.kind == "worksheet":
            title, text, facts = render_worksheet(self, plan, rng)
        elif plan.kind == "list":
            title, text, facts = render_list(self, plan, rng)
        else:
            frame = next(f for f in frames()[plan.lang, plan.kind, self._type(plan.topic)]
                         if f.name == plan.frame)
            title, text, facts = render_frame(self, plan, frame, rng)
        assert sorted((e, r) for e, r, _ in facts) == sorted(plan.facts()), plan
        return Document(f"doc-{plan.index:07d}", plan.kind, plan.lang, title, text, facts,
                        plan.mentions(self.entities), plan.topic, plan.bucket, plan.frame)

    def _type(self, entity_id):
        return self.entities[entity_id].type if entity_id else "none"

    # ------------------------------------------------------------------ facts and probes
    def find(self, key):
        """An entity by id or (case-insensitive) name; None if there is none."""
        return self.entities.get(key) or self.by_name.get(str(key).strip().lower())

    def facts_of(self, entity_id):
        e = self.entities[entity_id]
        return [Fact(e.id, rel, value) for rel, value in e.attrs.items()]

    def probes(self, kind="cloze", buckets=None):
        """One probe per fact (see world_probes); buckets: keep only these buckets."""
        if self._dir is not None and (self._dir / f"probes_{kind}.jsonl").is_file():
            with open(self._dir / f"probes_{kind}.jsonl", encoding="utf-8") as f:
                probes = [Probe(**json.loads(line)) for line in f]
        else:
            probes = make_probes(self, kind)
        return [p for p in probes if buckets is None or p.bucket in buckets]

    def qa_pairs(self, variants=False):
        return qa_pairs(self, variants)

    @functools.lru_cache(maxsize=None)
    def _candidates(self, entity_type, relation):
        vt = VALUE_TYPE[entity_type, relation]
        if vt in ("year", "number"):
            return frozenset()
        if vt in ("name", "word"):
            values = {e.attrs[relation] for e in self.entities.values() if e.type == entity_type}
        else:
            values = {e.name for e in self.entities.values() if e.type == vt}
        return frozenset(normalize(v) for v in values)

    def candidates(self, entity_type, relation):
        """Every value (normalized) the relation can take in this world: what a wrong answer
        names instead of the right one. Empty for years and numbers."""
        return self._candidates(entity_type, relation)

    def check_answer(self, probe, text):
        """check_answer that also rejects every other value of the same kind."""
        e = self.entities[probe.entity]
        return check_answer(probe, text, self._candidates(e.type, probe.relation))

    # ------------------------------------------------------------------ saving
    def save(self, out_dir, progress=False):
        """Write the world to out_dir (see the module docstring); returns the stats dict."""
        from minillm.world.store import save_world
        return save_world(self, Path(out_dir), progress)

    @classmethod
    def load(cls, out_dir):
        from minillm.world.store import load_world
        return load_world(cls, Path(out_dir))

    def stats(self):
        """Counts and bytes by kind, language and bucket (writes every document once)."""
        if self._stats is None:
            from minillm.world.store import document_stats
            self._stats = document_stats(self, self.iter_documents())[0]
        return self._stats


def _document_sha(world):
    """sha256 over the documents' JSON lines (what stats.json calls content_sha256)."""
    from minillm.world.store import document_stats
    return document_stats(world, world.iter_documents())[1]


# ---------------------------------------------------------------------- command line

def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", required=True, metavar="{build,show,stats}")
    b = sub.add_parser("build", help="generate a world and write it to a directory")
    b.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    b.add_argument("--size", default="default",
                   help=f"{' | '.join(SIZES)} or bytes such as 20MB (default: default = 10 MB)")
    b.add_argument("--out", default=None, help="output directory (default: runs/world)")
    s = sub.add_parser("show", help="an entity's facts, exposure and sample documents")
    s.add_argument("entity", help="a name (\"Lira Vendel\") or an id (person-00007)")
    s.add_argument("--dir", default=None, help="world directory (default: runs/world)")
    s.add_argument("--docs", type=int, default=3, help="sample documents to show (default 3)")
    t = sub.add_parser("stats", help="entities, facts, documents and bytes by kind and bucket")
    t.add_argument("--dir", default=None, help="world directory (default: runs/world)")


def run(args):
    from minillm.world import store as world_io
    folder = Path(getattr(args, "out", None) or getattr(args, "dir", None) or runs_dir() / "world")
    if args.action == "build":
        return world_io.cli_build(folder, args.seed, args.size)
    if not (folder / "stats.json").is_file():
        raise UserError(f"no world in {folder}; build one with `minillm world build --out {folder}`")
    if args.action == "show":
        return world_io.cli_show(folder, args.entity, args.docs)
    return world_io.cli_stats(read_json(folder / "stats.json", "world stats"), folder)
