"""Document frames of the mini-world, and the writer that turns a plan into text.

Part of minillm.world.world. A frame (data/world/frames_<lang>.txt) is the shape of one
kind of document: a biography told as a timeline, a forum thread, a children's story.
Its body mixes filler text with [[...]] directives; a directive writes a group of planned
facts as sentences through FactWriter, which picks templates (templates.py) so that
the same fact comes out in many wordings and orders, sometimes several facts in one
sentence, with a pronoun when the previous sentence had the same subject.

    frames()                          -> {(lang, kind, type): [Frame]}
    render_frame(world, plan, frame)  -> (title, text, facts written in order)

A frame only names entities whose facts it states (placeholders like {home_city} must be
listed in its `need:`), so a plan's list of facts decides exactly which entities a document
mentions; that is what lets the planner count exposure without writing any text.

Read templates.py next (the sentences themselves).
"""
import functools
import re
from dataclasses import dataclass

from minillm.common import data_path
from minillm.world.data import read_sections
from minillm.world.entities import RELATIONS, VALUE_TYPE
from minillm.world.templates import (
    LANGS, capitalize, format_value, probe_templates, pronoun, render_name, template_index)

_TOKEN = re.compile(r"\[\[(.*?)\]\]|\{([^{}]*)\}")
_TOPIC_WORDS = ("name", "title", "first", "he", "his", "him")
_NO_PERIOD = ("card", "headline")


@dataclass
class Frame:
    kind: str
    name: str
    lang: str
    type: str          # topic entity type, or "none"
    need: tuple        # paths every document states
    optional: tuple    # paths a document may state
    p: float           # probability of each optional path
    style: str
    full: bool
    focus: bool
    titles: tuple
    body: tuple


def _parse_frames(lang):
    frames, current, in_body = [], None, False
    for raw in data_path("world", f"frames_{lang}.txt").read_text(encoding="utf-8").splitlines():
        line = raw.rstrip()
        if line.startswith("### "):
            kind, name = line[4:].split()
            current = dict(kind=kind, name=name, lang=lang, type="none", need=(), optional=(),
                           p=0.5, style="plain", full=False, focus=False, titles=(), body=[])
            frames.append(current)
            in_body = False
        elif current is None or (not in_body and (not line or line.startswith("#"))):
            continue
        elif line == "---":
            in_body = True
        elif in_body:
            current["body"].append(line.strip())
        else:
            key, _, value = line.partition(": ")
            if key in ("need", "optional"):
                current[key] = tuple(value.split())
            elif key == "p":
                current[key] = float(value)
            elif key in ("full", "focus"):
                current[key] = value == "yes"
            elif key == "title":
                current["titles"] = tuple(value.split(" | "))
            else:
                current[key] = value
    out = []
    for f in frames:
        while f["body"] and not f["body"][-1]:
            f["body"].pop()
        f["body"] = tuple(f["body"])
        out.append(Frame(**f))
    return out


def path_type(type_, path):
    """The (entity type, relation) a path's facts are about, e.g. ("city", "country")."""
    if path.startswith("~"):
        t, rel = path[1:].split(".")
        return t, rel
    parts = path.split(".")
    if len(parts) == 1:
        return type_, parts[0]
    return VALUE_TYPE[type_, parts[0]], parts[1]


def _check_frame(f):
    known = set(f.need) | set(f.optional)
    where = f"frames_{f.lang}.txt {f.kind} {f.name}"
    for path in known:
        t, rel = path_type(f.type, path)
        if t not in RELATIONS or rel not in RELATIONS[t]:
            raise ValueError(f"{where}: unknown path {path}")
        if not any((t, rel, s) in template_index(f.lang) for s in ("plain", f.style)):
            raise ValueError(f"{where}: no {f.lang} template states {t}.{rel}")
    for line in f.titles + f.body:
        allowed = set(f.need)
        if line.startswith("?"):  # a conditional line may also use the paths it tests
            allowed |= set(line[1:].split(" ")[0].split(","))
        for directive, slot in _TOKEN.findall(line):
            items = directive.lstrip("-=").split(":")[-1].split() if directive else []
            for item in items:
                if item.rstrip("?") not in known | {"*", "@"}:
                    raise ValueError(f"{where}: [[{directive}]] names {item}, not in need/optional")
            if slot and not _slot_ok(slot, f, allowed):
                raise ValueError(f"{where}: placeholder {{{slot}}} needs its path in need:")


def _slot_ok(slot, f, allowed):
    if slot[0] in "@#" or slot in ("user1", "user2", "user3", "Q"):
        return True
    key = slot[0].lower() + slot[1:]
    if key in _TOPIC_WORDS:
        return f.type != "none" and (f.type == "person" or key in ("name", "title"))
    base, _, attr = key.partition(".")
    if attr in ("first", "name", "he", "his", "him"):
        return base in allowed
    return key in allowed


@functools.lru_cache(maxsize=None)
def frames():
    """{(lang, kind, type): [Frame, ...]} for every language, checked once."""
    out = {}
    for lang in LANGS:
        for f in _parse_frames(lang):
            _check_frame(f)
            out.setdefault((lang, f.kind, f.type), []).append(f)
    return out


@functools.lru_cache(maxsize=None)
def fillers(lang):
    path = data_path("world", f"fillers_{lang}.txt")
    own = read_sections(path.name) if path.is_file() else {}
    return {**read_sections("words.txt"), **own}


# ----------------------------------------------------------------------------- writing facts

class FactWriter:
    """Writes facts as sentences, choosing templates at random among those that fit."""

    def __init__(self, entities, lang, rng, topic):
        self.entities, self.lang, self.rng, self.topic = entities, lang, rng, topic
        self.index = template_index(lang)
        self.last_subject = None  # subject of the last sentence written

    def _fits(self, t, subject, remaining):
        if t.subject is None and (self.topic is None or subject.id != self.topic.id):
            return False
        sid, links = subject.id, subject.links
        if not all((sid, r) in remaining for r in t.rels):
            return False
        if not all((links[r1], r2) in remaining for r1, r2 in t.paths):
            return False
        named = t.named(subject) + [self.entities[subject.links[r1]].links.get(r2)
                                    for r1, r2 in t.paths]
        named = [n for n in named if n is not None] + [subject.id]
        return len(set(named)) == len(named)

    def _pick(self, subject, rel, style, remaining):
        for s in (style, "plain"):
            fits = [t for t in self.index.get((subject.type, rel, s), ())
                    if self._fits(t, subject, remaining)]
            if fits:
                return self.rng.weighted(fits, [len(t.rels) + len(t.paths) for t in fits])
        raise ValueError(f"no {self.lang} template states {subject.type}.{rel} ({style})")

    def write(self, facts, style="plain", prev=None):
        """facts: [(entity id, relation)] -> sentences (capitalised, no final stop).
        prev: the subject of the sentence just before, if it was a fact sentence (a
        pronoun may then refer to it)."""
        remaining, out = list(facts), []
        while remaining:
            subject = self.entities[remaining[0][0]]
            t = self._pick(subject, remaining[0][1], style, set(remaining))
            pron = (self.lang == "en" and prev == subject.id and t.pronoun_ok
                    and t.subject is not None and self.rng.chance(0.6))
            out.append(capitalize(t.fill(self.entities, subject, pron)))
            for f in t.covers(self.entities, subject):
                remaining.remove(f)
            prev = subject.id
        self.last_subject = prev
        return out


# ----------------------------------------------------------------------------- frames

class _Render:
    """One document being written from a plan (a document.DocPlan)."""

    def __init__(self, world, plan, frame, rng):
        self.world, self.plan, self.frame, self.rng = world, plan, frame, rng
        self.entities = world.entities
        self.topic = self.entities[plan.topic] if plan.topic else None
        self.writer = FactWriter(self.entities, frame.lang, rng, self.topic)
        self.remaining = [f for facts in plan.paths.values() for f in facts]
        self.written = []
        self.users = plan.users
        self.prev = None  # subject of the last fact sentence, while nothing else followed it

    def facts_for(self, items):
        out = []
        for item in items:
            if item == "*":
                out += self.remaining
            else:
                out += self.plan.paths.get(item.rstrip("?"), [])
        seen, todo = set(), []
        for f in out:
            if f in self.remaining and f not in seen:
                seen.add(f)
                todo.append(f)
        return todo

    def directive(self, spec):
        """[[mode style: items]] -> the planned facts of those items, as sentences."""
        mode = spec[0] if spec[:1] in ("-", "=") else ""
        spec = spec[len(mode):]
        style, _, items = spec.rpartition(":")
        style = style.strip() or self.frame.style
        facts = self.facts_for(items.split())
        if style == "card":  # a fact card lists its lines in any order
            self.rng.shuffle(facts)
        for f in facts:
            self.remaining.remove(f)
        self.written += facts
        end = "" if style in _NO_PERIOD else "."
        sentences = [s + end for s in self.writer.write(facts, style, self.prev if mode == "" else None)]
        if facts:
            self.prev = self.writer.last_subject if mode == "" else None
        if mode == "-":
            return "\n".join("- " + s for s in sentences)
        return ("\n" if mode == "=" else " ").join(sentences)

    def slot(self, tok):
        """{placeholder} -> its text (see the header of frames_en.txt)."""
        if tok[0] == "@":
            return self.expand(self.rng.choice(fillers(self.frame.lang)[tok[1:]]))
        if tok[0] == "#":
            lo, hi = tok[1:].split("-")
            return str(self.rng.randint(int(lo), int(hi)))
        if tok.startswith("user"):
            return self.users[int(tok[4:]) - 1]
        if tok == "Q":
            (subject, rel), = self.plan.paths["@"]
            q = self.rng.choice(probe_templates()[self.topic.type, rel]["questions"])
            return capitalize(q.fill(self.entities, self.topic))
        key = tok[0].lower() + tok[1:]
        entity, attr = self.topic, key
        if "." in key:
            base, attr = key.split(".")
            entity = self.entities[self.topic.links[base]]
        if attr in ("he", "his", "him"):
            return pronoun(entity, tok.split(".")[-1])
        if attr == "first":
            value = entity.extra["first"]
        elif attr == "title":
            value = entity.name
        elif attr == "name":
            value = render_name(entity, self.frame.lang)
        elif "." in key or key in RELATIONS[entity.type]:
            value = format_value(self.entities, entity, attr, self.frame.lang)
        else:
            raise ValueError(f"unknown placeholder {{{tok}}} in frame {self.frame.name}")
        return capitalize(value) if tok[0].isupper() else value

    def expand(self, line):
        """Fill a line's directives and placeholders. Two directives with only spaces
        between continue one run of sentences (so the second may start with a pronoun)."""
        out, pos = [], 0
        for m in _TOKEN.finditer(line):
            gap = line[pos:m.start()]
            if gap.strip():
                self.prev = None
            out.append(gap)
            if m.group(1) is not None:
                out.append(self.directive(m.group(1)))
            else:
                self.prev = None
                out.append(self.slot(m.group(2)))
            pos = m.end()
        if line[pos:].strip():
            self.prev = None
        out.append(line[pos:])
        return "".join(out)

    def keep(self, cond):
        """"?a,b line": keep the line if a fact of path a or b is planned and not yet
        written ("*": if any fact is not yet written)."""
        for item in cond.split(","):
            facts = self.remaining if item == "*" else self.plan.paths.get(item, ())
            if any(f in self.remaining for f in facts):
                return True
        return False

    def line(self, raw):
        if raw.startswith("?"):
            cond, _, raw = raw[1:].partition(" ")
            if not self.keep(cond):
                return None
        self.prev = None
        text = self.expand(self.rng.choice(raw.split(" | ")))
        return re.sub(r" {2,}", " ", text).strip()  # an empty directive leaves two spaces


def render_frame(world, plan, frame, rng):
    """Write one document from its plan: (title, text, [(entity, relation, value)])."""
    r = _Render(world, plan, frame, rng)
    title = r.line(rng.choice(frame.titles))
    lines = []
    for raw in frame.body:
        if not raw:
            lines.append("")
            continue
        out = r.line(raw)
        if out:
            lines.append(out)
    if r.remaining:  # a frame without [[*]] at the end: state what is left
        lines += ["", r.directive("*")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    steps = iter(range(1, 100))  # number the steps that were kept: Step 1, Step 2, ...
    text = re.sub(r"^Step \d+:", lambda m: f"Step {next(steps)}:", text, flags=re.M)
    facts = [(e, rel, world.entities[e].attrs[rel]) for e, rel in r.written]
    return title, text, facts
