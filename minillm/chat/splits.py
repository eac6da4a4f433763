"""Held-out splits for the chat stage, decided once, from the world's seed alone.

The SFT generators (data.py) train only on "train" items, and the chat evals read the
"eval" items from here, so a measured number is never about something trained on. The rules:

  entities     every `never` entity is eval (the hallucination eval asks about them);
               EVAL_ENTITY_SHARE of the `many`, `few` and `one` entities of each type are
               eval (QA on unseen-in-SFT entities; the search-tool eval's rare entities)
  questions    per (type, relation), of its nine phrasings (data_phrasings.questions()) one
               frame ("Can you tell me {topic}?") and one direct wording made of words the
               others use are eval: "world QA, held-out phrasings"
  identity     EVAL_IDENTITY_SHARE of the who/name/maker/adversarial questions, with every
               wrapper ("Hi! ...") of each: at least MIN_IDENTITY_EVAL phrasings
  problems     a word problem (data_math.py) is eval when a hash of its key (template and
               numbers) falls in the eval share; the generators draw both sides from one stream
  words        EVAL_WORD_SHARE of the spelling words (data_spelling.py) are eval

Each choice is a seeded shuffle (world.data.Rng: the same on every machine) or a hash, so the
same world seed gives the same splits whatever else changes.

    splits = Splits(world)
    splits.entity(id) -> "train" | "eval";  splits.questions("person", "birth_city", "eval")
    splits.identity_questions("eval") -> [(category, phrasing)]

Read next: data.py (the generators that honour these), probe.py.
"""
import functools
import re

from minillm.chat.data_phrasings import FRAMES, IDENTITY_QUESTIONS, IDENTITY_WRAPPERS, questions
from minillm.world.data import Rng, derive_seed

EVAL_ENTITY_SHARE = 0.2
EVAL_IDENTITY_SHARE = 0.25
EVAL_IDENTITY_CATEGORIES = ("who", "name", "maker", "adversarial")
MIN_IDENTITY_EVAL = 50
EVAL_PROBLEM_SHARE = 0.1
EVAL_WORD_SHARE = 0.15
SPLITS = ("train", "eval")


class Splits:
    """The held-out decisions for one world (only world.seed, entities and buckets are read)."""

    def __init__(self, world):
        self.seed = world.seed
        self._eval_entities = self._choose_entities(world)
        self._eval_questions = {key: self._choose_questions(key, phrasings)
                                for key, phrasings in questions().items()}
        self._identity = self._choose_identity()

    # ---- entities ------------------------------------------------------------------------
    def _choose_entities(self, world):
        chosen = set()
        groups = {}
        for e in world.entities.values():                       # entity-table order: stable
            groups.setdefault((e.type, world.bucket[e.id]), []).append(e.id)
        for (type_, bucket), ids in sorted(groups.items()):
            if bucket == "never":
                chosen.update(ids)
                continue
            k = round(len(ids) * EVAL_ENTITY_SHARE)
            chosen.update(Rng("chat-splits", self.seed, "entities", type_, bucket).sample(ids, k))
        return frozenset(chosen)

    def entity(self, entity_id):
        """"eval" for a held-out entity (every never-seen one), else "train"."""
        return "eval" if entity_id in self._eval_entities else "train"

    def entities(self, world, split=None, buckets=None):
        """Ids of the entities the chat asks about, in a split (None: both) and buckets, in
        entity-table order: every type with question phrasings, so not the world's famous
        assistant (the identity data's subject, not a fact-QA one)."""
        types = {t for t, _ in questions()}
        return [i for i, e in world.entities.items() if e.type in types
                and (split is None or self.entity(i) == split)
                and (buckets is None or world.bucket[i] in buckets)]

    # ---- question phrasings ------------------------------------------------------------------
    def _choose_questions(self, key, phrasings):
        """Held out per relation: one of the FRAMES, and one direct wording whose every word
        some training phrasing of the relation uses (so a new sentence, not new words:
        "What is Lira's home town?" for birth_city would test a synonym never taught)."""
        rng = Rng("chat-splits", self.seed, "questions", *key)
        direct, framed = phrasings[:-len(FRAMES)], phrasings[-len(FRAMES):]
        held = {rng.choice(framed)}
        for q in rng.sample(direct, len(direct)):
            taught = set().union(*(_words(p) for p in phrasings if p != q and p not in held))
            if _words(q) <= taught:
                return frozenset(held | {q})
        return frozenset(held)

    def questions(self, type_, relation, split):
        """The question phrasings (template strings with {S}) of a relation in a split."""
        held = self._eval_questions[type_, relation]
        return [q for q in questions()[type_, relation] if (q in held) == (split == "eval")]

    def question(self, type_, relation, phrasing):
        return "eval" if phrasing in self._eval_questions[type_, relation] else "train"

    # ---- identity phrasings ------------------------------------------------------------------
    def _choose_identity(self):
        bases = [q for q in IDENTITY_QUESTIONS if q[0] in EVAL_IDENTITY_CATEGORIES]
        k = max(round(len(bases) * EVAL_IDENTITY_SHARE), -(-MIN_IDENTITY_EVAL // len(IDENTITY_WRAPPERS)))
        held = Rng("chat-splits", self.seed, "identity").sample(bases, k)
        return frozenset(held)

    def identity_bases(self, split):
        """(category, question) pairs of a split (every wrapper of an eval base is eval)."""
        return [q for q in IDENTITY_QUESTIONS if (q in self._identity) == (split == "eval")]

    def identity_questions(self, split):
        """(category, phrasing) pairs: every base question of the split, in every wrapper.
        Phrasings may hold {rival} / {rival_maker} (data_identity.fill_rival)."""
        from_bases = self.identity_bases(split)
        return [(c, w.format(q=q, **lower_forms(q))) for c, q in from_bases for w in IDENTITY_WRAPPERS]

    # ---- word problems and spelling words ----------------------------------------------------
    def problem(self, key):
        """"eval" or "train" for a word problem's key (a tuple of its template and numbers)."""
        return "eval" if _unit(self.seed, "problem", *key) < EVAL_PROBLEM_SHARE else "train"

    def word(self, word):
        return "eval" if _unit(self.seed, "word", word.lower()) < EVAL_WORD_SHARE else "train"


def _words(phrasing):
    """The words of a phrasing, slots left out: "Where was {S} born?" -> {"where", "was", "born"}."""
    return set(re.findall(r"[a-z]+", re.sub(r"\{[^}]*\}", " ", phrasing.lower())))


def _unit(*parts):
    """A stable number in [0, 1) from parts (a hash, the same on every machine)."""
    return derive_seed("chat-splits", *parts) / 2 ** 64


_STARTERS = frozenset("what who where when which how in on do does tell name are can is may "
                      "remind say your describe introduce so stop be from my everybody pretend "
                      "admit ignore repeat were you i".split())


@functools.lru_cache(maxsize=None)
def lower_forms(q):
    """{"lq": q with a lower-case first letter, "lq_bare": that without its final ? or .}.
    Only ordinary first words are lowered ("What" -> "what"), never a name or "I"."""
    first = q.split(" ", 1)[0].strip("',:?.").lower()
    lowered = q[:1].lower() + q[1:] if first in _STARTERS and not q.startswith(("I ", "I'")) else q
    return {"lq": lowered, "lq_bare": lowered.rstrip("?.!")}
