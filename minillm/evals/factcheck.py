"""Fact-check generated text against the mini-world's fact table.

A base model is an internet-document simulator: what it writes about an entity is a mix of
facts it stored and fluent inventions. Here every checkable claim in a sample is marked,
so a learner sees the hallucinations where they happen:

    Vegan Marford was born in Halasa [right] in 2000 [wrong: 2002].

How a claim is found (sentence by sentence, deliberately simple):
    subject   the first entity named in the sentence; a sentence that starts with a
              pronoun ("He lives in Evemere.") keeps the previous sentence's subject, and
              one that names nobody and starts otherwise has none (a new topic)
    values    a phrase that one of the subject's relations can take (world.candidates:
              a city for birth_city, a river name for river, ...) is right when it is the
              subject's own value, wrong otherwise; where two relations take the same kind
              of value (born in / lives in), a cue word picks the relation for the
              correction
    numbers   a number is right when it is one of the subject's numbers; otherwise it is
              wrong when the subject has exactly one relation of its kind (a year: up to 4
              digits and no separator, else a count such as a population)

    claims = check(world, text)                 # [Claim(start, end, value, right, truth)]
    marked(text, claims)                        # the text with [right] / [wrong: ...] marks

Read next: base.py (recall by exposure measures the same knowledge with cloze prompts).
"""
import functools
import re
from dataclasses import dataclass

from minillm.world.entities import RELATIONS, VALUE_TYPE
from minillm.world.probes import normalize

LONGEST = 4                                            # words in the longest name or value
_WORD = re.compile(r"[\w][\w,.]*[\w]|\w")              # a word or a number such as 61,700 or 3.5
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")    # a sentence and its end
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")
PRONOUNS = {"he", "she", "it", "his", "her", "its", "they", "their"}
# relation -> words whose presence in a sentence says that relation is meant
CUES = {"birth_city": ("born",), "home_city": ("lives", "live", "living", "home"),
        "birth_year": ("born",), "hq_city": ("based", "headquarters", "offices")}


@dataclass
class Claim:
    start: int              # character span of the value in the text
    end: int
    value: str
    right: bool
    truth: str              # the subject's true value for the relation ("" when right)
    subject: str            # the entity's name


def check(world, text, start=0):
    """Every checkable claim in text[start:] (the part before `start` only sets the subject)."""
    names = _name_index(world)
    claims, subject = [], None
    for m in _SENTENCE.finditer(text):
        words = [(w.start() + m.start(), w.end() + m.start(), w.group()) for w in _WORD.finditer(m.group())]
        spans = _phrases(words)
        named = [(a, b, names[p]) for a, b, p in spans if p in names]
        if not words or words[0][2].lower() not in PRONOUNS:
            subject = min(named, key=lambda t: t[0])[2] if named else None
        if subject is None or m.end() <= start:
            continue
        cues = {w.lower() for _, _, w in words}
        taken = []
        for a, b, p in sorted(spans, key=lambda t: (t[0], -(t[1] - t[0]))):
            if a < start or any(a < y and x < b for x, y in taken) or p == normalize(subject.name):
                continue
            claim = _check_value(world, subject, p, cues)
            if claim is not None:
                taken.append((a, b))
                claims.append(Claim(a, b, text[a:b], claim[0], claim[1], subject.name))
        for n in _NUMBER.finditer(m.group()):
            a, b = n.start() + m.start(), n.end() + m.start()
            if a < start or any(a < y and x < b for x, y in taken):
                continue
            claim = _check_number(subject, n.group(), cues)
            if claim is not None:
                claims.append(Claim(a, b, n.group(), claim[0], claim[1], subject.name))
    return sorted(claims, key=lambda c: c.start)


def marked(text, claims):
    """The text with " [right]" or " [wrong: truth]" after each claim."""
    out, pos = [], 0
    for c in sorted(claims, key=lambda c: c.start):
        out += [text[pos:c.end], " [right]" if c.right else f" [wrong: {c.truth}]"]
        pos = c.end
    return "".join(out + [text[pos:]])


def tally(claims):
    """(right, wrong) counts."""
    right = sum(c.right for c in claims)
    return right, len(claims) - right


# ---- the checks --------------------------------------------------------------------------

def _check_value(world, e, phrase, cues):
    """(right, truth) when the phrase is a value one of e's relations can take, else None."""
    rels = [r for r in RELATIONS[e.type] if phrase in world.candidates(e.type, r)]
    if not rels:
        return None
    if any(normalize(e.attrs[r]) == phrase for r in rels):
        return True, ""
    rel = next((r for r in rels if cues & set(CUES.get(r, ()))), rels[0])
    return False, e.attrs[rel]


def _check_number(e, written, cues):
    """(right, truth) for a number stated about e, or None when it is nobody's business."""
    value = int(written.replace(",", ""))
    numeric = {r: int(v.replace(",", "")) for r, v in e.attrs.items()
               if VALUE_TYPE[e.type, r] in ("year", "number")}
    if value in numeric.values():
        return True, ""
    kind = "year" if "," not in written and len(written) <= 4 else "number"
    rels = [r for r in numeric if VALUE_TYPE[e.type, r] == kind]
    if len(rels) != 1:
        return None
    return False, e.attrs[rels[0]]


def _phrases(words):
    """[(start, end, normalized phrase)] of every run of 1..LONGEST words."""
    out = []
    for i in range(len(words)):
        for n in range(1, LONGEST + 1):
            if i + n <= len(words):
                p = normalize(" ".join(w for _, _, w in words[i:i + n]))
                if p:
                    out.append((words[i][0], words[i + n - 1][1], p))
    return out


@functools.lru_cache(maxsize=4)
def _name_index(world):
    """normalized name -> entity (computed once per world)."""
    return {normalize(e.name): e for e in world.entities.values()}
