"""Shared plumbing of the mini-world: a version-stable random generator, and the data files.

Determinism across machines and Python versions: Python only promises that
random.Random(seed).random() keeps its sequence (choice, shuffle, randrange may change), so
Rng builds everything on random() alone, and seeds come from a hash of their parts
(derive_seed), never from hash() (which PYTHONHASHSEED randomises) or set order.

Data files (data/world/*.txt) are sectioned word lists: "== name", then items separated by
new lines or " | ", "#" comments. Every other world module builds on this one; read
entities.py next.
"""
import functools
import hashlib
import random

from minillm.common import data_path


def derive_seed(*parts):
    """A 64-bit seed from any tuple of ints/strings, the same on every machine."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


class Rng:
    """A seeded generator built only on random.Random.random(), so it is stable across
    Python versions (choice/shuffle/randrange are not promised to be)."""

    def __init__(self, *seed_parts):
        self._random = random.Random(derive_seed(*seed_parts)).random

    def random(self):
        return self._random()

    def below(self, n):
        return int(self._random() * n)

    def randint(self, lo, hi):
        return lo + self.below(hi - lo + 1)

    def chance(self, p):
        return self._random() < p

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]

    def sample(self, seq, k):
        pool = list(seq)
        k = min(k, len(pool))
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]

    def weighted(self, items, weights):
        x = self._random() * sum(weights)
        for item, w in zip(items, weights):
            x -= w
            if x < 0:
                return item
        return items[-1]


@functools.lru_cache(maxsize=None)
def read_sections(name):
    """data/world/<name>: {section: [items]}; items are separated by new lines or ' | '."""
    sections, current = {}, None
    for raw in data_path("world", name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("== "):
            current = sections.setdefault(line[3:].strip(), [])
            continue
        current.extend(item.strip() for item in line.split(" | ") if item.strip())
    return sections


def words(section):
    return read_sections("words.txt")[section]
