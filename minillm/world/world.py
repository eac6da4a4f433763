"""The mini-world: a seeded, fact-checkable "internet" that every later stage trains on.

    minillm world build --seed 0 --size smoke --out runs/default/world     (the command: cli.py)

Invented people, cities, countries, companies, contests and one famous AI assistant
(World.assistant(): the mini-world's "ChatGPT by OpenAI"), written as encyclopedia
entries, biographies, news, children's stories, forum threads, lists, how-tos and
arithmetic worksheets (a few percent in French, German and Spanish). Every fact is known,
so every stage can be scored: did the pipeline keep the good pages, did the base model
store a fact, does the assistant admit what it does not know. World (below) is the API
the other stages use; same (seed, size) -> byte-identical documents on any machine.

Read in this order: entities.py (what is true), document.py and plan.py (which documents
exist and which facts each states), frames.py and templates.py (how facts become
sentences, and the parser that reads them back), lists.py, worksheets.py, probes.py
(probes and the answer checker), store.py (the files), data.py (the stable Rng).
"""
import functools
import gzip
import json
import re
from collections import Counter
from pathlib import Path

from minillm.common import UserError, data_path
from minillm.world.data import Rng
from minillm.world.document import Document, Fact
from minillm.world.entities import (  # noqa: F401  (Entity is part of the API)
    VALUE_TYPE, Entity, census, make_entities, template_words)
from minillm.world.frames import frames, render_frame
from minillm.world.lists import render_list
from minillm.world.plan import Planner
from minillm.world.probes import (  # noqa: F401  (check_answer is part of the API)
    Probe, check_answer, make_probes, normalize)
from minillm.world.store import read_world, save_world
from minillm.world.worksheets import render_worksheet

# Bytes of text. The default, at ~4 bytes a token, is ~2.5M tokens, which a CPU pretraining
# run reads several times; in one pass a `many` fact is stated ~100 times, a `few` fact 1-5
# times and a `one` fact once: the gap the recall probes measure. Bigger worlds add
# repetition of the popular facts, not more of them.
SIZES = {"smoke": 100_000, "small": 1_500_000, "default": 10_000_000, "large": 200_000_000}


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
    """The world's tables, and its documents written on demand.

    entities      {id: Entity(id, type, name, attrs, links, extra)}; attrs maps each
                  relation to its value string, links maps entity-valued relations to
                  ids, extra holds gender/first/last (people) and kind (events)
    facts         [Fact(entity, relation, value)]
    bucket        {id: "many" | "few" | "one" | "never"}
    exposure      {id: number of documents that mention the entity}
    fact_mentions {(id, relation): number of documents that state the fact}
    iter_documents() -> Document(id, kind, lang, title, text, facts, entities, topic,
                  bucket, template) one at a time, in a fixed order; text is plain text,
                  paragraphs separated by a blank line
    probes(kind="cloze" | "qa"), check_answer(probe, text), find(name_or_id); question/
                  answer pairs for an assistant: probes.qa_pairs(world)
    assistant()   the world's famous AI assistant, an Entity of type "assistant": .name
                  ("Ottilo"), .attrs["maker"] (a popular company's name), .attrs["city"],
                  ["released"], ["skill"], ["trait"]; its facts are in facts and probes
    save(dir) / World.load(dir): a loaded world streams its documents back from disk
    """

    def __init__(self, seed, size, entities, bucket):
        self.seed, self.size = seed, size
        self.entities, self.bucket = entities, bucket
        self.exposure, self.fact_mentions, self.n_documents = {}, {}, 0
        self.by_name = {e.name.lower(): e for e in entities.values()}
        self._dir = None        # set by load(): documents and probes come from disk

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
        for plan in Planner(self):
            yield self.render(plan)

    def render(self, plan):
        """One DocPlan -> Document."""
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

    def assistant(self):
        """The famous AI assistant (the mini-world's "ChatGPT by OpenAI"): the one entity
        of type "assistant". Its maker's Entity is self.entities[a.links["maker"]]."""
        found = [e for e in self.entities.values() if e.type == "assistant"]
        if len(found) != 1:
            raise UserError("this world has no famous AI assistant (it was built by an older "
                            "minillm); rebuild it with `minillm world build`")
        return found[0]

    def probes(self, kind="cloze", buckets=None):
        """One probe per fact (see probes.py); buckets: keep only these buckets."""
        if self._dir is not None and (self._dir / f"probes_{kind}.jsonl").is_file():
            with open(self._dir / f"probes_{kind}.jsonl", encoding="utf-8") as f:
                probes = [Probe(**json.loads(line)) for line in f]
        else:
            probes = make_probes(self, kind)
        return [p for p in probes if buckets is None or p.bucket in buckets]

    @functools.lru_cache(maxsize=None)
    def candidates(self, entity_type, relation):
        """Every value (normalized) the relation can take in this world: what a wrong answer
        names instead of the right one. Empty for years and numbers."""
        vt = VALUE_TYPE[entity_type, relation]
        if vt in ("year", "number"):
            return frozenset()
        if vt in ("name", "word"):
            values = {e.attrs[relation] for e in self.entities.values() if e.type == entity_type}
        else:
            values = {e.name for e in self.entities.values() if e.type == vt}
        return frozenset(normalize(v) for v in values)

    def check_answer(self, probe, text):
        """check_answer that also rejects every other value of the same kind."""
        e = self.entities[probe.entity]
        return check_answer(probe, text, self.candidates(e.type, probe.relation))

    # ------------------------------------------------------------------ saving
    def save(self, out_dir, progress=False):
        """Write the world to out_dir (the files: store.py); returns the stats dict."""
        return save_world(self, Path(out_dir), progress)

    @classmethod
    def load(cls, out_dir):
        folder = Path(out_dir)
        meta, entities, bucket, exposure, mentions = read_world(folder)
        world = cls(meta["seed"], meta["size"], entities, bucket)
        world.exposure, world.fact_mentions = exposure, mentions
        world.n_documents, world._dir = meta["documents"], folder
        return world
