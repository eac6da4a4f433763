"""The mini-world's knowledge base: invented entities, their typed facts, and popularity.

The first file of the world (world.py says what a world is): this one decides *what is
true*; the others decide how it is written down. Read document.py and plan.py next.

    census(size_bytes)          -> how many entities of each type land in each bucket
    make_entities(seed, census) -> {id: Entity}, {id: bucket}

Six entity types, each with a fixed list of relations (RELATIONS); a value is another
entity (its name is the value, its id is in Entity.links) or a literal: a year, a number,
a lower-case word ("baker") or a capitalised name ("Mirra"). The sixth type has one
member, the world's famous AI assistant (a fixed name from data/world/names.txt, made by a
popular company): the mini-world's "ChatGPT by OpenAI", so that a base model learns from
its internet what an assistant is called. Popularity buckets: `many`
(topic of tens to thousands of documents), `few` (2..5), `one` (exactly one), `never`
(held out: in the fact table, in no document). So that a bucket's promise holds, links
only point "up": an entity in many/few/one links only to `many` entities, a held-out one
to `many` or `never` entities (one held-out country has held-out cities). Names are glued
from syllables (data/world/names.txt), unique, never a template word, and a place word is
never part of a person's name. All randomness comes from data.Rng.
"""
import math
import re
from dataclasses import dataclass, field

from minillm.world.data import Rng, read_sections, words

TYPES = ("country", "city", "person", "org", "event", "assistant")
BUCKETS = ("many", "few", "one", "never")

RELATIONS = {
    "person": ("birth_year", "birth_city", "home_city", "occupation", "employer", "hobby",
               "pet", "pet_name", "best_friend"),
    "city": ("country", "population", "river", "landmark", "founded"),
    "country": ("capital", "language", "currency", "continent"),
    "org": ("industry", "hq_city", "founder", "founded"),
    "event": ("city", "year", "organizer", "winner"),
    # the one famous AI assistant: "name" is a fact too, so "The AI assistant made by
    # Velmar Labs is called" is a probe; city is where it was made (its maker's hq_city)
    "assistant": ("name", "maker", "city", "released", "skill", "trait"),
}

# (type, relation) -> an entity type, or "year" | "number" | "word" | "name"
VALUE_TYPE = {
    ("person", "birth_year"): "year", ("person", "birth_city"): "city",
    ("person", "home_city"): "city", ("person", "occupation"): "word",
    ("person", "employer"): "org", ("person", "hobby"): "word", ("person", "pet"): "word",
    ("person", "pet_name"): "name", ("person", "best_friend"): "person",
    ("city", "country"): "country", ("city", "population"): "number",
    ("city", "river"): "name", ("city", "landmark"): "name", ("city", "founded"): "year",
    ("country", "capital"): "city", ("country", "language"): "name",
    ("country", "currency"): "word", ("country", "continent"): "name",
    ("org", "industry"): "word", ("org", "hq_city"): "city", ("org", "founder"): "person",
    ("org", "founded"): "year",
    ("event", "city"): "city", ("event", "year"): "year", ("event", "organizer"): "org",
    ("event", "winner"): "person",
    ("assistant", "name"): "name", ("assistant", "maker"): "org", ("assistant", "city"): "city",
    ("assistant", "released"): "year", ("assistant", "skill"): "word",
    ("assistant", "trait"): "word",
}

_ID_PREFIX = {"country": "country", "city": "city", "person": "person", "org": "org", "event": "event",
              "assistant": "assistant"}


@dataclass
class Entity:
    """One thing in the world. attrs: relation -> value string (exactly the entity's facts);
    links: relation -> entity id for entity-valued relations; extra: facts that are not
    probed (persons: gender "f"/"m", first, last; events: kind)."""
    id: str
    type: str
    name: str
    attrs: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- sizes

def _clamp(x, lo, hi):
    return max(lo, min(hi, x))


def _split(total, shares, min_first=1):
    """Split an integer total by shares (largest remainder), the first share at least min_first."""
    raw = [total * s for s in shares]
    out = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[:total - sum(out)]:
        out[i] += 1
    if out[0] < min_first and total >= min_first:
        j = max(range(len(out)), key=lambda i: out[i])
        out[j] -= min_first - out[0]
        out[0] = min_first
    return out


# Bytes a few/one entity's documents take on average (measured, like plan.AVG_BYTES).
FEW_ENTITY_BYTES = 1140
ONE_ENTITY_BYTES = 357
FEW_ONE_CAP = 3.0  # few/one counts stop growing past 3x the default size


def census(size_bytes):
    """{(type, bucket): count} for a world of about size_bytes of text.

    The `many` set grows like sqrt(size) (more text mostly means more repetition of the same
    popular facts); few/one grow linearly up to 3x the default size, then stop, so the entity
    table stays small (a few thousand entities) however large the text."""
    s = size_bytes / 1e7
    # subtle: math.sqrt is correctly rounded everywhere (IEEE 754), s ** 0.25 need not be
    n_country = _clamp(round(8 * math.sqrt(math.sqrt(s))), 3, 12)
    many_person = _clamp(round(60 * math.sqrt(s)), 5, 240)
    many = {"country": n_country, "person": many_person,
            "city": max(n_country, round(many_person * 0.5)),
            "org": max(2, round(many_person * 0.3)), "event": max(2, round(many_person * 0.25)),
            "assistant": 1}  # exactly one famous assistant, in every size
    sc = min(s, FEW_ONE_CAP)
    few = max(4, round(0.14 * sc * 1e7 / FEW_ENTITY_BYTES))
    one = max(6, round(0.08 * sc * 1e7 / ONE_ENTITY_BYTES))
    shares = (0.6, 0.15, 0.15, 0.1)  # person, city, org, event
    counts = {}
    for t in TYPES:
        counts[t, "many"] = many[t]
    for bucket, total in (("few", few), ("one", one)):
        for t, n in zip(("person", "city", "org", "event"), _split(total, shares)):
            counts[t, bucket] = n
        counts["country", bucket] = 0
    counts["country", "never"] = 1
    counts["person", "never"] = max(4, many_person)
    counts["city", "never"] = max(3, many["city"] // 2)
    counts["org", "never"] = max(2, many["org"] // 2)
    counts["event", "never"] = max(2, many["event"] // 2)
    counts.update({("assistant", b): 0 for b in ("few", "one", "never")})
    return counts


# ----------------------------------------------------------------------------- names

def assistant_name():
    """The famous assistant's name: fixed (data/world/names.txt), the same in every world."""
    name, = read_sections("names.txt")["assistant"]
    return name


class _Names:
    """Unique invented names. Place-like words (cities, countries, rivers, ...) are unique
    and never equal a person's name part; person name parts may repeat across people but
    full names are unique."""

    def __init__(self, rng, forbidden):
        self.rng, self.parts = rng, read_sections("names.txt")
        self.forbidden = {w.lower() for w in forbidden}
        self.assistant = assistant_name()
        # reserved: no place or person is ever called like the assistant
        self.place_words, self.person_words, self.full_names = {self.assistant.lower()}, set(), set()

    def _fresh(self, make):
        for _ in range(10000):
            word = make()
            low = word.lower()
            if low not in self.place_words and low not in self.person_words and low not in self.forbidden:
                self.place_words.add(low)
                return word
        raise RuntimeError("ran out of invented names; add syllables to data/world/names.txt")

    def word(self, kind):
        """kind: place | river | language | continent | currency"""
        p, r = self.parts, self.rng
        if kind == "place":
            return self._fresh(lambda: r.choice(p["place_start"])
                               + (r.choice(p["place_mid"]) if r.chance(0.3) else "")
                               + r.choice(p["place_end"]))
        return self._fresh(lambda: r.choice(p[kind + "_start"]) + r.choice(p[kind + "_end"]))

    def person(self, gender):
        p, r = self.parts, self.rng
        for _ in range(10000):
            first = r.choice(p["first_start"]) + r.choice(p["first_end_" + gender])
            last = r.choice(p["surname_start"]) + r.choice(p["surname_end"])
            if (first.lower() in self.place_words or last.lower() in self.place_words
                    or first.lower() in self.forbidden or last.lower() in self.forbidden
                    or f"{first} {last}" in self.full_names):
                continue
            self.person_words.update((first.lower(), last.lower()))
            self.full_names.add(f"{first} {last}")
            return first, last
        raise RuntimeError("ran out of person names; add syllables to data/world/names.txt")


# ----------------------------------------------------------------------------- the world

def _population(rng, capital):
    """1,000 .. 999,000 with three significant digits, spread over the orders of magnitude
    (capitals are big). Integer arithmetic only: libm's exp/log may differ between
    machines in the last bit, and that must never change a fact."""
    power = rng.weighted((1, 2, 3), (1, 2, 3) if capital else (4, 3, 1))
    return rng.randint(100, 999) * 10 ** power


class _Builder:
    def __init__(self, seed, counts, forbidden):
        self.rng = Rng("world", seed, "entities")
        self.names = _Names(self.rng, forbidden)
        self.counts = counts
        self.entities, self.bucket, self.serial = {}, {}, {}
        self.by = {(t, b): [] for t in TYPES for b in BUCKETS}  # (type, bucket) -> [Entity]

    def new(self, type_, bucket, name, **extra):
        index = self.serial[type_] = self.serial.get(type_, -1) + 1
        e = Entity(f"{_ID_PREFIX[type_]}-{index:05d}", type_, name, extra=extra)
        self.entities[e.id] = e
        self.bucket[e.id] = bucket
        self.by[type_, bucket].append(e)
        return e

    def by_type(self, type_):
        return [e for b in BUCKETS for e in self.by[type_, b]]

    def buckets(self, type_):
        """The bucket labels of one type, shuffled, so ids do not reveal popularity."""
        labels = [b for b in BUCKETS for _ in range(self.counts[type_, b])]
        self.rng.shuffle(labels)
        return labels

    def allowed(self, type_, bucket):
        """Entities that an entity of `bucket` may link to (links point up, see docstring)."""
        pool = list(self.by[type_, "many"])
        if bucket == "never":
            pool += self.by[type_, "never"]
        return pool

    def link(self, e, rel, target):
        e.links[rel] = target.id
        e.attrs[rel] = target.name


def _set(e, rel, value):
    e.attrs[rel] = str(value)


def _make_countries(b):
    r, n = b.rng, b.names
    continents = [n.word("continent") for _ in range(max(3, b.counts["country", "many"] // 3))]
    for bucket in b.buckets("country"):
        c = b.new("country", bucket, n.word("place"))
        _set(c, "language", n.word("language"))
        _set(c, "currency", n.word("currency").lower())
        _set(c, "continent", r.choice(continents))
        c.extra["rivers"] = [n.word("river") for _ in range(r.randint(2, 3))]


def _make_cities(b):
    r, n = b.rng, b.names
    landmarks = [f"{a} {z}" for a in words("landmark_adj") for z in words("landmark_noun")]
    r.shuffle(landmarks)
    visible = b.by["country", "many"]
    hidden = b.by["country", "never"]
    for i, bucket in enumerate(b.buckets("city")):
        city = b.new("city", bucket, n.word("place"))
        # every country gets a capital first: visible ones from the many cities, the hidden
        # country from the never cities
        need_capital = [c for c in (visible if bucket == "many" else hidden if bucket == "never" else [])
                        if "capital" not in c.attrs]
        if need_capital:
            country = need_capital[0]
            b.link(country, "capital", city)
        elif bucket == "never" and hidden and r.chance(0.5):
            country = r.choice(hidden)
        else:
            country = r.choice(visible)
        b.link(city, "country", country)
        _set(city, "population", _population(r, country.links.get("capital") == city.id))
        _set(city, "river", r.choice(country.extra["rivers"]))
        _set(city, "landmark", landmarks[i % len(landmarks)])
        _set(city, "founded", r.randint(300, 1900))
    missing = [c.name for c in b.by_type("country") if "capital" not in c.attrs]
    assert not missing, f"countries without a capital: {missing}"


def _make_people(b):
    r, n = b.rng, b.names
    for bucket in b.buckets("person"):
        gender = "f" if r.chance(0.5) else "m"
        first, last = n.person(gender)
        p = b.new("person", bucket, f"{first} {last}", gender=gender, first=first, last=last)
        _set(p, "birth_year", r.randint(1930, 2004))
        b.link(p, "birth_city", r.choice(b.allowed("city", bucket)))
        _set(p, "occupation", r.choice(words("occupation")))
        _set(p, "hobby", r.choice(words("hobby")))
        _set(p, "pet", r.choice(words("pet")))
        _set(p, "pet_name", r.choice(words("pet_name")))


def _make_orgs(b):
    r, n = b.rng, b.names
    for bucket in b.buckets("org"):
        o = b.new("org", bucket, f"{n.word('place')} {r.choice(words('org_suffix'))}")
        _set(o, "industry", r.choice(words("industry")))
        b.link(o, "hq_city", r.choice(b.allowed("city", bucket)))
        founder = r.choice(b.allowed("person", bucket))
        b.link(o, "founder", founder)
        born = int(founder.attrs["birth_year"])
        _set(o, "founded", min(born + r.randint(22, 55), 2022 - r.below(4)) if born < 1998 else 2022)


def _link_people(b):
    r = b.rng
    for p in b.by_type("person"):
        bucket = b.bucket[p.id]
        employer = r.choice(b.allowed("org", bucket))
        b.link(p, "employer", employer)
        hq = b.entities[employer.links["hq_city"]]
        home = hq if r.chance(0.5) else r.choice(b.allowed("city", bucket))
        b.link(p, "home_city", home)
        friends = [q for q in b.allowed("person", bucket) if q.id != p.id]
        b.link(p, "best_friend", r.choice(friends))


def _make_events(b):
    r, n = b.rng, b.names
    for bucket in b.buckets("event"):
        kind = r.choice(words("event_kind"))
        e = b.new("event", bucket, f"{n.word('place')} {kind}", kind=kind)
        b.link(e, "city", r.choice(b.allowed("city", bucket)))
        winner = r.choice(b.allowed("person", bucket))
        earliest = int(winner.attrs["birth_year"]) + 12
        orgs = b.allowed("org", bucket)
        for _ in range(50):
            org = r.choice(orgs)
            lo = max(earliest, int(org.attrs["founded"]) + 1)
            if lo <= 2023:
                break
        else:
            org = min(orgs, key=lambda o: int(o.attrs["founded"]))
            lo = min(2023, max(earliest, int(org.attrs["founded"]) + 1))
        b.link(e, "winner", winner)
        b.link(e, "organizer", org)
        _set(e, "year", r.randint(lo, 2023))


def _make_assistant(b):
    """The famous AI assistant: made by a popular company, in that company's city, released
    after the company was founded. Built last, so it draws nothing the others depend on."""
    r = b.rng
    a = b.new("assistant", "many", b.names.assistant)
    maker = r.choice(b.by["org", "many"])
    b.link(a, "maker", maker)
    b.link(a, "city", b.entities[maker.links["hq_city"]])
    _set(a, "name", a.name)
    _set(a, "released", r.randint(min(2023, max(2010, int(maker.attrs["founded"]) + 1)), 2023))
    _set(a, "skill", r.choice(words("skill")))
    _set(a, "trait", r.choice(words("trait")))


def _order(entities):
    """attrs in RELATIONS order, so facts come out in a fixed order."""
    for e in entities.values():
        e.attrs = {rel: e.attrs[rel] for rel in RELATIONS[e.type]}


def make_entities(seed, counts, forbidden=()):
    """Generate every entity. forbidden: words no name may equal (the templates' words)."""
    b = _Builder(seed, counts, forbidden)
    _make_countries(b)
    _make_cities(b)
    _make_people(b)
    _make_orgs(b)
    _link_people(b)
    _make_events(b)
    _make_assistant(b)
    _order(b.entities)
    for e in b.entities.values():
        e.extra.pop("rivers", None)
    return b.entities, b.bucket


_WORD = re.compile(r"[A-Za-z]+")


def template_words(texts):
    """All words in some texts (used to forbid names that are ordinary template words)."""
    out = set()
    for t in texts:
        out.update(w.lower() for w in _WORD.findall(t))
    return out
