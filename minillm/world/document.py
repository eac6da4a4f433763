"""What the mini-world is made of: a Fact, a Document, and a DocPlan (a document before
its text is written).

The planner (plan.py) decides every document as a DocPlan: its kind, language, frame,
topic and the facts it states. From the plan alone we know which entities a document
names, so World.build counts exposure without writing text; World.render then turns a
plan into a Document (frames.py, lists.py, worksheets.py write the text).

    Fact(entity, relation, value)            entity = id, value a string
    Document(id, kind, lang, title, text, facts, entities, topic, bucket, template)
    DocPlan(index, kind, lang, frame, topic, bucket, paths, cast, users)

Read plan.py next (which documents exist), then frames.py (how a plan becomes text).
"""
from dataclasses import dataclass, field
from typing import NamedTuple


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


@dataclass
class DocPlan:
    index: int
    kind: str
    lang: str
    frame: str                     # frame name, or "list:<what>", "worksheet:..."
    topic: str = None              # entity id, or None for generic documents
    bucket: str = "none"           # the topic's bucket
    paths: dict = field(default_factory=dict)  # path -> [(entity id, relation)]
    cast: tuple = ()               # entities named without stating a fact (worksheets)
    users: tuple = ()              # forum user names

    def facts(self):
        return [f for facts in self.paths.values() for f in facts]

    def mentions(self, entities):
        """Entity ids the document names: topic, fact subjects, linked values, cast."""
        out = [self.topic] if self.topic else []
        for e, rel in self.facts():
            out.append(e)
            target = entities[e].links.get(rel)
            if target:
                out.append(target)
        out += self.cast
        return list(dict.fromkeys(out))
