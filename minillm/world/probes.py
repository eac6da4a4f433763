"""Probes of the mini-world's facts, and the answer checker.

Part of minillm.world.world. One probe per fact, in two forms:

    cloze  "Lira Vendel was born in the city of"   -> "Tarsk"    (for a base model)
    qa     "Where was Lira Vendel born?"            -> "Tarsk"    (for an assistant)

Each probe carries the subject's exposure bucket (many / few / one / never), so a stage
can report recall by how often a fact was seen, and hallucination on facts never seen.

check_answer(probe, text) accepts harmless variation and rejects wrong entities:
  - case, a leading article ("the Glass Tower"), punctuation and thousands separators
    ("48,200", "48 200") do not matter;
  - cloze: the continuation must *start* with the answer at a word boundary, so
    "Tarsk, a city in Velmar" passes and "Tarskel" or "Velm" fail;
  - qa: the answer must appear as a whole phrase, and no other value of the same kind
    may appear (with World.check_answer, which knows every city name, "Tarsk or Velm"
    fails; for numbers, any second number fails).

Read store.py next (the files a saved world holds).
"""
import re
import unicodedata
from dataclasses import dataclass

from minillm.world.entities import VALUE_TYPE
from minillm.world.templates import capitalize, probe_templates


@dataclass(frozen=True)
class Probe:
    prompt: str
    answer: str
    entity: str          # entity id
    relation: str
    bucket: str          # many | few | one | never
    kind: str = "cloze"  # cloze | qa
    name: str = ""       # the subject's name (never counted as a wrong answer)
    answer_type: str = ""  # city person org ... | year | number | word | name

    def to_json(self):
        return {"prompt": self.prompt, "answer": self.answer, "entity": self.entity,
                "relation": self.relation, "bucket": self.bucket, "kind": self.kind,
                "name": self.name, "answer_type": self.answer_type}


def make_probes(world, kind="cloze"):
    """One probe per fact of the world, in fact-table order."""
    if kind not in ("cloze", "qa"):
        raise ValueError(f"probe kind must be 'cloze' or 'qa', not {kind!r}")
    out = []
    for e in world.entities.values():
        for rel, value in e.attrs.items():
            pt = probe_templates()[e.type, rel]
            t = pt["cloze"] if kind == "cloze" else pt["questions"][0]
            out.append(Probe(capitalize(t.fill(world.entities, e)), value, e.id, rel,
                             world.bucket[e.id], kind, e.name, VALUE_TYPE[e.type, rel]))
    return out


def qa_pairs(world, variants=False):
    """Question/answer pairs for an assistant, one per fact (every question wording with
    variants=True): {"question", "answer", "sentence", "entity", "relation", "bucket"}."""
    out = []
    for e in world.entities.values():
        for rel, value in e.attrs.items():
            pt = probe_templates()[e.type, rel]
            sentence = capitalize(pt["answer"].fill(world.entities, e)) + "."
            for q in pt["questions"][:None if variants else 1]:
                out.append({"question": capitalize(q.fill(world.entities, e)), "answer": value,
                            "sentence": sentence, "entity": e.id, "relation": rel,
                            "bucket": world.bucket[e.id]})
    return out


_SEPARATOR = re.compile(r"(?<=\d)[,.\u00a0\u202f ](?=\d{3}(?!\d))")
_ARTICLE = re.compile(r"^(?:the|a|an) ")


def normalize(text):
    """Lower case, no punctuation, no thousands separators, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _SEPARATOR.sub("", text)
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def _strip_articles(text):
    while _ARTICLE.match(text):
        text = _ARTICLE.sub("", text, count=1)
    return text


def check_answer(probe, text, candidates=None):
    """Is `text` a right answer to `probe`? See the module docstring for the rules.

    candidates: normalized values of the same kind (all city names, ...); any of them
    other than the answer in a qa reply makes it wrong."""
    answer = _strip_articles(normalize(probe.answer))
    reply = normalize(text)
    if not answer:
        return False
    if probe.kind == "cloze":
        reply = _strip_articles(reply)
        return reply == answer or reply.startswith(answer + " ")
    padded = f" {reply} "
    if f" {answer} " not in padded:
        return False
    rest = padded.replace(f" {answer} ", "  ")
    if probe.name:
        rest = rest.replace(f" {normalize(probe.name)} ", "  ")
    if probe.answer_type in ("year", "number"):
        return not re.search(r"\d", rest)
    if candidates:
        words = rest.split()
        for n in range(1, 5):
            for i in range(len(words) - n + 1):
                if " ".join(words[i:i + n]) in candidates:
                    return False
    return True
