"""The document planner: which documents the mini-world has, before any text is written.

Planner(world) yields one DocPlan (document.py) per document: kind, language, frame,
topic and the facts it states. World.build counts exposure from the plans in one cheap
pass; World.iter_documents writes the text in a second pass, both streaming.

How the size in bytes becomes documents: every `one` entity gets exactly one document,
every `few` entity 2..5 (the first of them, and the first of every `many` entity, states
all its facts); generic documents (worksheets, lists, how-tos without a topic) and ~4%
foreign-language documents take fixed shares of the bytes; the rest goes to `many`
entities, each at least MIN_MANY documents, split by type with a mild random popularity
weight; the famous AI assistant takes ASSISTANT_SHARE of them (at least ASSISTANT_MIN).
Documents are laid out in blocks of BLOCK, each block shuffled, so memory stays bounded
and every plan is a pure function of (seed, size, index).

Read frames.py next (how a plan becomes text); lists.py and worksheets.py plan and write
the two kinds that have no frame.
"""
import functools

from minillm.world.data import Rng, words
from minillm.world.document import DocPlan
from minillm.world.entities import RELATIONS
from minillm.world.frames import frames
from minillm.world.lists import list_groups, plan_list
from minillm.world.worksheets import plan_worksheet

BLOCK = 512
MIN_MANY = 6
FEW_DOCS = (2, 5)
FOREIGN_SHARE = 0.04          # of documents
SHARES = {"worksheet": 0.10, "list": 0.035, "generic_howto": 0.01}  # of bytes
# Average bytes of a document by kind (measured with `minillm world stats` on the default
# world; only used to turn a byte size into document counts).
AVG_BYTES = {"many": 313, "few": 325, "one": 357, "worksheet": 640, "list": 230,
             "generic_howto": 408, "foreign": 282}
KIND_WEIGHTS = {
    "person": {"biography": 0.34, "encyclopedia": 0.10, "story": 0.22, "news": 0.10,
               "forum": 0.14, "howto": 0.10},
    "city": {"encyclopedia": 0.40, "howto": 0.20, "forum": 0.28, "news": 0.12},
    "country": {"encyclopedia": 0.50, "forum": 0.30, "howto": 0.20},
    "org": {"encyclopedia": 0.40, "news": 0.35, "forum": 0.25},
    "event": {"news": 0.55, "encyclopedia": 0.25, "forum": 0.20},
    "assistant": {"encyclopedia": 0.20, "news": 0.20, "forum": 0.40, "howto": 0.20},
}
MANY_TYPE_SHARE = {"person": 0.55, "city": 0.17, "org": 0.12, "event": 0.09, "country": 0.07}
# The one famous AI assistant (entities.py): its share of the `many` documents, taken
# before MANY_TYPE_SHARE splits the rest. Not in MANY_TYPE_SHARE, so no foreign document is
# about it (its frames are English only).
ASSISTANT_SHARE = 0.03
ASSISTANT_MIN = 2 * MIN_MANY
FOREIGN_LANGS = ("fr", "de", "es")


class Planner:
    def __init__(self, world):
        self.entities, self.bucket = world.entities, world.bucket
        self.seed, self.size = world.seed, world.size
        self.inverse = {}  # ("org", "founder") -> {person id: [org ids]} (many orgs only)
        for e in self.entities.values():
            if self.bucket[e.id] == "many":
                for rel, target in e.links.items():
                    self.inverse.setdefault((e.type, rel), {}).setdefault(target, []).append(e.id)
        self._layout()
        self.list_groups = list_groups(self.many_ids, self.entities)  # what -> {key: [ids]}

    # ------------------------------------------------------------------ layout
    def _layout(self):
        """Decide how many documents of each category there are (no text yet)."""
        rng = Rng("world", self.seed, "layout")
        ids = list(self.entities)
        self.many_ids = {t: [i for i in ids if self.bucket[i] == "many" and self.entities[i].type == t]
                         for t in RELATIONS}
        # (entity, j): the j-th document about a few/one entity; j == 0 states every fact
        self.special = [(i, j) for i in ids if self.bucket[i] == "few"
                        for j in range(rng.randint(*FEW_DOCS))]
        self.special += [(i, 0) for i in ids if self.bucket[i] == "one"]
        rng.shuffle(self.special)
        n_few_one = {b: sum(1 for i, _ in self.special if self.bucket[i] == b) for b in ("few", "one")}
        self.generic = {k: max(1, round(SHARES[k] * self.size / AVG_BYTES[k])) for k in SHARES}
        left = self.size * (1 - FOREIGN_SHARE * AVG_BYTES["foreign"] / AVG_BYTES["many"])
        left -= sum(n * AVG_BYTES[k] for k, n in self.generic.items())
        left -= sum(n * AVG_BYTES[b] for b, n in n_few_one.items())
        self.many_counts = self._many_counts(rng, max(0, left) / AVG_BYTES["many"])
        total = sum(self.generic.values()) + len(self.special) + sum(self.many_counts.values())
        self.generic["foreign"] = max(3, round(total * FOREIGN_SHARE / (1 - FOREIGN_SHARE)))
        self.n_docs = total + self.generic["foreign"]
        self.n_blocks = max(1, -(-self.n_docs // BLOCK))

    def _many_counts(self, rng, n_docs):
        """{many entity: documents about it}: the type's share, times a popularity weight."""
        counts = {i: max(ASSISTANT_MIN, round(n_docs * ASSISTANT_SHARE)) for i in self.many_ids["assistant"]}
        n_docs = max(0, n_docs - sum(counts.values()))
        for t, share in MANY_TYPE_SHARE.items():
            members = self.many_ids[t]
            weights = [0.6 + 0.8 * rng.random() for _ in members]
            for i, w in zip(members, weights):
                counts[i] = max(MIN_MANY, round(n_docs * share * w / sum(weights)))
        return counts

    @staticmethod
    def _part(total, block, n_blocks):
        return (block + 1) * total // n_blocks - block * total // n_blocks

    def _block_specs(self, b):
        """[(category, topic, full)] of block b, shuffled."""
        nb = self.n_blocks
        specs = []
        for i, c in self.many_counts.items():
            k = self._part(c, b, nb)
            first = b * c // nb == 0  # no document of this entity in an earlier block
            specs += [("many", i, first and j == 0) for j in range(k)]
        lo, hi = b * len(self.special) // nb, (b + 1) * len(self.special) // nb
        specs += [(self.bucket[i], i, j == 0) for i, j in self.special[lo:hi]]
        for k, total in self.generic.items():
            specs += [(k, None, False)] * self._part(total, b, nb)
        Rng("world", self.seed, "block", b).shuffle(specs)
        return specs

    def __iter__(self):
        index = 0
        for b in range(self.n_blocks):
            for category, topic, full in self._block_specs(b):
                yield self.plan(index, category, topic, full)
                index += 1

    # ------------------------------------------------------------------ one document
    def plan(self, index, category, topic, full):
        rng = Rng("world", self.seed, "plan", index)
        if category == "worksheet":
            return plan_worksheet(self, index, rng)
        if category == "list":
            return plan_list(self, index, rng)
        if category == "generic_howto":
            frame = rng.choice(frames()["en", "howto", "none"])
            return DocPlan(index, "howto", "en", frame.name)
        if category == "foreign":
            lang = FOREIGN_LANGS[index % 3]
            t = rng.weighted(list(MANY_TYPE_SHARE), list(MANY_TYPE_SHARE.values()))
            topic = rng.choice(self.many_ids[t])
            return self._frame_plan(index, rng, topic, lang, full=False)
        return self._frame_plan(index, rng, topic, "en", full)

    def _frame_plan(self, index, rng, topic_id, lang, full):
        topic = self.entities[topic_id]
        options, weights = [], []
        for f, w in self._frame_options(lang, topic.type, full):
            if all(self.expand(topic, p) for p in f.need if p.startswith("~")):
                options.append(f)
                weights.append(w)
        frame = rng.weighted(options, weights)
        paths = {}
        focus = None
        if frame.focus:
            # not "name": a thread about Ottilo asking what the assistant is called reads oddly
            focus = rng.choice([r for r in RELATIONS[topic.type] if r != "name"])
            paths["@"] = [(topic.id, focus)]
        listed = set(frame.need + frame.optional)
        for p in frame.need + frame.optional:
            if p in frame.need or full or rng.chance(frame.p):
                base = p.split(".")[0]
                if ("." in p and not p.startswith("~") and base in listed and base not in paths
                        and base != focus):
                    continue  # "winner.birth_city" reads oddly without "winner"
                facts = [f for f in self.expand(topic, p) if not any(f in v for v in paths.values())]
                if facts:
                    paths[p] = facts
        users = ()
        if frame.kind == "forum":
            users = []
            while len(users) < 3:
                name = self._user(rng)
                if name not in users:
                    users.append(name)
            users = tuple(users)
        return DocPlan(index, frame.kind, lang, frame.name, topic.id, self.bucket[topic.id],
                       paths, users=users)

    @functools.lru_cache(maxsize=None)
    def _frame_options(self, lang, type_, full):
        """[(frame, weight)] a document about a `type_` may use: a kind's weight is split
        evenly among its frames."""
        table = frames()
        if full:
            kinds = ("biography", "encyclopedia")
        elif lang != "en":
            kinds = tuple(k for (l, k, t) in table if l == lang and t == type_)
        else:
            kinds = tuple(KIND_WEIGHTS[type_])
        out = []
        for kind in kinds:
            group = [f for f in table.get((lang, kind, type_), ()) if f.full or not full]
            out += [(f, KIND_WEIGHTS[type_].get(kind, 0.2) / len(group)) for f in group]
        return tuple(out)

    @staticmethod
    def _user(rng):
        digits = str(rng.randint(1, 99)) if rng.chance(0.6) else ""
        return f"{rng.choice(words('user_a'))}_{rng.choice(words('user_b'))}{digits}"

    def expand(self, topic, path):
        """A frame path -> the facts it stands for, [(entity id, relation)]."""
        if path.startswith("~"):
            t, rel = path[1:].split(".")
            extra = {"founder": "founded", "winner": "year", "maker": "released"}[rel]
            return [(o, r) for o in self.inverse.get((t, rel), {}).get(topic.id, ())
                    for r in (rel, extra)]
        parts = path.split(".")
        if len(parts) == 1:
            return [(topic.id, parts[0])]
        return [(topic.links[parts[0]], parts[1])]
