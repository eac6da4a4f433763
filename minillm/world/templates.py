"""Fact sentences of the mini-world: templates that write a fact, and read it back.

Part of minillm.world.world. Every sentence of the mini-world that states a fact comes
from one line of data/world/facts_<lang>.txt, e.g.

    {S} was born in {birth_city} in {birth_year}

A Template fills such a line for one subject ("Lira Vendel was born in Tarsk in 1962",
or "She was born ..." right after a sentence about her) and knows which facts the sentence
states. The same line, turned into a regular expression with one group per slot, reads the
sentence back: FactParser finds every sentence of a document that matches a template,
resolves the subject (a name, or a pronoun for the previous sentence's subject, or the
document's topic for first-person lines such as "I was born in {birth_city}"), and checks
each value against the fact table. tests/world/test_facts.py runs it over whole worlds.

Value formats: numbers are written "48,200" (en), "48 200" (fr), "48.200" (de, es); fact
values are canonical ("48200"). Event names carry an article in English ("the Orla Boat
Race"); the fact value and the probe answer are the bare name.

Read lists.py and worksheets.py next (documents without a frame).
"""
import functools
import re

from minillm.common import data_path
from minillm.world.data import read_sections
from minillm.world.entities import RELATIONS, VALUE_TYPE

LANGS = ("en", "fr", "de", "es")
NAME_RE = r"[A-Z][a-z]+(?: [A-Z][a-z]+)*"
_VALUE_RE = {
    "year": r"\d{3,4}",
    "number": r"\d{1,3}(?:[,. ]\d{3})+|\d+",
    "word": r"[a-z]+",
    "name": NAME_RE,
}
_ENTITY_RE = r"(?:[Tt]he )?" + NAME_RE
_PRONOUNS = {  # gender -> (he, his, him)
    "m": ("he", "his", "him"), "f": ("she", "her", "her"), "n": ("it", "its", "it")}
_SUBJ_RE = rf"(?P<S>{_ENTITY_RE}|[Hh]e|[Ss]he|[Ii]t)"
_SUBJ_POSS_RE = rf"(?P<S>{_ENTITY_RE}'s|[Hh]is|[Hh]er|[Ii]ts)"
_SLOT = re.compile(r"\{([^{}]*)\}")


def gender(entity):
    return entity.extra.get("gender", "n")


def pronoun(entity, form):
    """form: he | his | him (capitalised forms give capitalised pronouns)."""
    word = _PRONOUNS[gender(entity)][("he", "his", "him").index(form.lower())]
    return word.capitalize() if form[0].isupper() else word


def render_name(entity, lang):
    """How a name appears in running text: English events take 'the'."""
    return f"the {entity.name}" if entity.type == "event" and lang == "en" else entity.name


def format_number(value, lang):
    digits = f"{int(value):,}"
    return digits if lang == "en" else digits.replace(",", {"fr": " "}.get(lang, "."))


def format_value(entities, entity, rel, lang):
    """The text for one fact's value: a linked entity's name, a number, or the word."""
    target = entity.links.get(rel)
    if target is not None:
        return render_name(entities[target], lang)
    if VALUE_TYPE[entity.type, rel] == "number":
        return format_number(entity.attrs[rel], lang)
    return entity.attrs[rel]


def normalize_value(text, value_type):
    """Canonical form of a value as written: digits only for numbers, no article for names."""
    if value_type in ("year", "number"):
        return re.sub(r"\D", "", text)
    return re.sub(r"^[Tt]he ", "", text)


def capitalize(text):
    return text[:1].upper() + text[1:]


class Template:
    """One line of facts_<lang>.txt for subjects of one entity type."""

    def __init__(self, line, type_, lang):
        tags = re.match(r"((?:@[a-z]+)*)\s*(.*)$", line)
        self.styles = frozenset(tags.group(1).split("@")[1:]) or frozenset({"plain", "past", "casual"})
        self.text, self.type, self.lang = tags.group(2), type_, lang
        self.slots = []  # (kind, payload) in order: subj | pron | gender | rel | path
        for tok in _SLOT.findall(self.text):
            self.slots.append(self._slot(tok))
        self.rels = tuple(p for k, p in self.slots if k == "rel")
        self.paths = tuple(p for k, p in self.slots if k == "path")
        subj = [p for k, p in self.slots if k == "subj"]
        self.subject = subj[0] if subj else None  # None: implicit subject (the topic)
        if len(subj) > 1 or (self.rels and len(set(self.rels)) != len(self.rels)):
            raise ValueError(f"template repeats a slot: {self.text!r}")
        for r1, _ in self.paths:
            if r1 not in self.rels:
                raise ValueError(f"{{{r1}.*}} needs {{{r1}}} in the same template: {self.text!r}")
        self.pronoun_ok = self.text.startswith(("{S} ", "{S's} ")) or "{S's}" in self.text
        self.anchor = max(_SLOT.split(self.text)[::2], key=len)  # longest literal piece

    @functools.cached_property
    def regex(self):
        """The parser's pattern, compiled on first use (building a world never reads it)."""
        return re.compile(self._pattern())

    def _slot(self, tok):
        if tok in ("S", "S's"):
            return "subj", tok
        if tok.lower() in ("he", "his", "him"):
            return "pron", tok
        if "/" in tok:
            return "gender", tuple(tok.split("/"))
        if "." in tok:
            r1, r2 = tok.split(".")
            target = VALUE_TYPE.get((self.type, r1))
            if target not in RELATIONS or r2 not in RELATIONS[target]:
                raise ValueError(f"unknown path {{{tok}}} for a {self.type}: {self.text!r}")
            return "path", (r1, r2)
        if tok not in RELATIONS[self.type]:
            raise ValueError(f"a {self.type} has no relation {tok!r}: {self.text!r}")
        return "rel", tok

    def _pattern(self):
        out, pieces = [], _SLOT.split(self.text)
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                out.append(re.escape(piece))
                continue
            j = i // 2
            kind, p = self.slots[j]
            if kind == "subj":
                out.append(_SUBJ_POSS_RE if p == "S's" else _SUBJ_RE)
            elif kind == "pron":  # any pronoun may stand here; _check tests it agrees
                forms = {f[("he", "his", "him").index(p.lower())] for f in _PRONOUNS.values()}
                forms |= {f.capitalize() for f in forms}
                out.append(f"(?P<p{j}>" + "|".join(sorted(forms)) + ")")
            elif kind == "gender":  # né/née: longest first, so "née" is not read as "né"
                options = sorted(set(p), key=len, reverse=True)
                out.append(f"(?P<g{j}>" + "|".join(re.escape(x) for x in options) + ")")
            else:
                out.append(f"(?P<v{j}>" + self._value_pattern(kind, p) + ")")
        return "".join(out)

    def _value_pattern(self, kind, p):
        vt, rel = self.value_type(kind, p), p if kind == "rel" else p[1]
        if vt == "word":  # closed word lists match only their own words
            options = read_sections("words.txt").get(rel)
            if options:
                return "|".join(re.escape(w) for w in sorted(options, key=len, reverse=True))
        return _VALUE_RE.get(vt, _ENTITY_RE)

    def value_type(self, kind, p):
        if kind == "rel":
            return VALUE_TYPE[self.type, p]
        return VALUE_TYPE[VALUE_TYPE[self.type, p[0]], p[1]]

    def covers(self, entities, subject):
        """The (entity id, relation) facts this template states about `subject`."""
        out = [(subject.id, r) for r in self.rels]
        out += [(subject.links[r1], r2) for r1, r2 in self.paths]
        return out

    def named(self, subject):
        """Ids of the entities the sentence names besides its subject (must all differ)."""
        return [subject.links[r] for r in self.rels if r in subject.links]

    def fill(self, entities, subject, use_pronoun=False):
        pieces = _SLOT.split(self.text)
        for i in range(1, len(pieces), 2):
            kind, p = self.slots[i // 2]
            if kind == "subj":
                if use_pronoun:
                    word = pronoun(subject, "he" if p == "S" else "his")
                else:
                    word = render_name(subject, self.lang) + ("'s" if p == "S's" else "")
            elif kind == "pron":
                word = pronoun(subject, p)
            elif kind == "gender":
                word = p[1] if gender(subject) == "f" and len(p) > 1 else p[0]
            elif kind == "rel":
                word = format_value(entities, subject, p, self.lang)
            else:
                word = format_value(entities, entities[subject.links[p[0]]], p[1], self.lang)
            pieces[i] = word
        return "".join(pieces)


@functools.lru_cache(maxsize=None)
def templates(lang):
    """All fact templates of a language (parsed once)."""
    out, type_ = [], None
    for raw in data_path("world", f"facts_{lang}.txt").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("== "):
            type_ = line[3:].strip()
            continue
        out.append(Template(line, type_, lang))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def template_index(lang):
    """(type, relation, style) -> templates that state that relation in that style."""
    index = {}
    for t in templates(lang):
        for rel in t.rels:
            for style in t.styles:
                index.setdefault((t.type, rel, style), []).append(t)
    return index


@functools.lru_cache(maxsize=None)
def probe_templates():
    """(type, relation) -> {"cloze": Template, "questions": [Template], "answer": Template}."""
    out, key = {}, None
    for raw in data_path("world", "probes_en.txt").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("== "):
            key = tuple(line[3:].strip().split("."))
            out[key] = {}
            continue
        field, _, text = line.partition(": ")
        if field == "question":
            out[key]["questions"] = [Template(q, key[0], "en") for q in text.split(" | ")]
        else:
            out[key][field] = Template(text, key[0], "en")
    return out


# ----------------------------------------------------------------------------- parsing

_PREFIX = re.compile(r"^(?:- |[QA]: |Step \d+: |\d+\. |Reply from \S+: )")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def segments(title, text):
    """The title, then every sentence of the text (list bullets, Q/A marks and forum reply heads removed),
    without final punctuation; questions are left out (they state nothing)."""
    out = [title]
    for line in text.split("\n"):
        line = _PREFIX.sub("", line.strip())
        out.extend(s for s in _SENTENCE_END.split(line) if s)
    out = [s.strip() for s in out]
    return [s.rstrip(".!").strip() for s in out if s and not s.endswith("?")]


class FactParser:
    """Reads a world's documents back into facts.

    parse(doc) -> (facts, errors): facts is the set of (entity, relation, value) that the
    document's sentences state (value as in the fact table); errors lists every sentence
    that matches a template but states something false, or whose pronoun cannot be
    resolved."""

    def __init__(self, entities):
        self.entities = entities
        self.by_name = {e.name: e for e in entities.values()}

    def _resolve(self, text, prev):
        name = text[:-2] if text.endswith("'s") else text
        low = name.lower()
        for g, forms in _PRONOUNS.items():
            if low in forms[:2]:
                if prev is None or gender(prev) != g:
                    return None, f"pronoun {text!r} does not refer to the previous subject"
                return prev, None
        return self.by_name.get(re.sub(r"^[Tt]he ", "", name)), None

    def _check(self, t, m, prev, topic):
        """(subject, facts, error) for one template match; subject None = not a claim."""
        if t.subject is None:
            subject = topic
        else:
            subject, err = self._resolve(m.group("S"), prev)
            if err:
                return None, [], err
        if subject is None or subject.type != t.type:
            return None, [], None
        facts, names = [], {}
        for j, (kind, p) in enumerate(t.slots):
            got = m.groupdict().get({"pron": "p", "gender": "g"}.get(kind, "v") + str(j))
            if kind == "pron" and got.lower() != pronoun(subject, p).lower():
                return subject, [], f"pronoun {got!r} for {subject.name}"
            if kind == "gender" and got != (p[1] if gender(subject) == "f" and len(p) > 1 else p[0]):
                return subject, [], f"{got!r} does not agree with {subject.name}"
            if kind == "rel":
                names[p] = got
                facts.append((subject, p, got, t.value_type(kind, p)))
        for j, (kind, p) in enumerate(t.slots):
            if kind == "path":
                base = self.by_name.get(normalize_value(names[p[0]], "name"))
                if base is None:
                    return subject, [], f"unknown name {names[p[0]]!r}"
                facts.append((base, p[1], m.group(f"v{j}"), t.value_type(kind, p)))
        out = []
        for entity, rel, written, vt in facts:
            truth = entity.attrs.get(rel)
            if truth is None or normalize_value(written, vt) != normalize_value(truth, vt):
                return subject, [], f"says {entity.name} {rel} = {written!r}, the fact table says {truth!r}"
            out.append((entity.id, rel, truth))
        return subject, out, None

    def topic(self, doc):
        """The document's topic: the entity whose name comes first in title + text."""
        whole = doc.title + "\n" + doc.text
        found = [(whole.find(self.entities[i].name), i) for i in doc.entities]
        found = [(pos, i) for pos, i in found if pos >= 0]
        return self.entities[min(found)[1]] if found else None

    def parse(self, doc):
        found, errors = set(), []
        topic, prev = self.topic(doc), None
        for seg in segments(doc.title, doc.text):
            matched = None
            for t in templates(doc.lang):
                if t.anchor not in seg:
                    continue
                m = t.regex.fullmatch(seg)
                if m is None:
                    continue
                subject, facts, err = self._check(t, m, prev, topic)
                if err:
                    errors.append(f"{doc.id}: {seg!r}: {err} (template {t.text!r})")
                elif facts and matched is None:
                    matched = (subject, facts)
            if matched:
                prev = matched[0]
                found.update(matched[1])
        return found, errors
