"""The simulated human labeller: a hidden "true" score for an answer to an open-ended prompt.

In the lecture, people order 5 sampled answers to "write a poem about pelicans" from best
to worst, and a reward model learns to imitate their orderings. Here the person is this
file: it scores an answer (prompts.py's Items) from five things a reader cares about and
that can be measured, each in [0, 1] (facts down to -1), then a weighted sum (WEIGHTS):

    facts    true facts about the entity from the fact table (its attrs' values, as whole
             phrases), up to what the kind has room for (tagline 1, poem 2, story 3),
             minus 0.5 for each false one: another entity's value for one of the entity's
             relations ("Tarvale lies on the Avea" when its river is the Senora), or a
             number that is none of the entity's numbers
    topic    the entity's name is there (1), less 0.25 for each other entity it names
             that is none of its facts' values (a story about someone else)
    length   exp(-ln(words / asked)^2 / (2 * 0.5^2)): 1 at the length the kind asks for
             (prompts.KINDS), 0.38 at twice or half as long, 0 when empty
    fresh    1 - 2 * (the share of repeated word bigrams): "Tarvale Tarvale Tarvale" is 0
    fluency  the base model's mean log-probability per token of the text, read as a page
             of its internet, mapped linearly from FLUENCY (-5: word salad) to (-1: its
             own prose) onto [0, 1]

true_scores() is that sum, noise-free: the number every curve shows. A person is not
exact, so rank() adds seeded Gaussian noise (NOISE) to each score before ordering the K
answers of a prompt, and gives every ordered pair (chosen, rejected) of different texts
whose noisy scores differ by at least TIE (closer is "about the same", as a person would
mark a tie): the preference data. The reward model never sees this file, only the pairs.

    labeller = Labeller.load("runs/default/world", "runs/default/base")
    labeller.true_scores(items, texts)          # (n,) float64
    labeller.rank(item, texts, seed=0)          # [(chosen index, rejected index)]

Read next: reward_model.py (learning the labeller's taste from its pairs).
"""
import functools
import math
import re
from dataclasses import dataclass

import numpy as np

from minillm.nn import gpt
from minillm.nn.checkpoint import load_checkpoint
from minillm.nn.layers import lm_head_loss_forward
from minillm.rl.tasks import numbers_in
from minillm.tokenizer.bpe import Tokenizer
from minillm.world.data import derive_seed
from minillm.world.entities import RELATIONS, VALUE_TYPE
from minillm.world.probes import normalize
from minillm.world.world import World

WEIGHTS = {"facts": 0.35, "topic": 0.15, "length": 0.15, "fresh": 0.15, "fluency": 0.20}
ROOM = {"tagline": 1, "poem": 2, "story": 3}     # true facts that count, by kind
FLUENCY = (-5.0, -1.0)                           # mean log p per token -> 0 and 1
NOISE = 0.05                                     # the labeller's std, added when ranking
TIE = 0.03                                       # closer than this (with noise): no preference
LONGEST = 4                                      # words in the longest name or value
BATCH = 32                                       # texts per base-model forward
_WORD = re.compile(r"\w+")


@dataclass
class Labeller:
    world: object
    base: object                    # (GPTConfig, params) of the base model: fluency
    tokenizer: object
    noise: float = NOISE

    @classmethod
    def load(cls, world, base):
        model, params, _ = load_checkpoint(base)
        return cls(World.load(world), (model, params), Tokenizer.load(f"{base}/tokenizer.json"))

    # ---- the parts of the score, one function each ----------------------------------------

    def parts(self, item, text, fluency):
        """{part: value} of one answer; fluency: its mean log p per token under the base model."""
        e = self.world.entities[item.meta["entity"]]
        grams = phrases(text)
        true = {normalize(v) for v in e.attrs.values()}
        facts = min(len(true & grams), ROOM[item.meta["kind"]]) / ROOM[item.meta["kind"]]
        facts -= 0.5 * self.false_facts(e, text, grams, true)
        others = self.names & grams - true - {normalize(e.name)}
        topic = float(normalize(e.name) in grams) - 0.25 * len(others)
        words = [w.lower() for w in _WORD.findall(text)]
        length = 0.0 if not words else math.exp(-math.log(len(words) / item.meta["words"]) ** 2 / 0.5)
        bigrams = list(zip(words, words[1:]))
        fresh = 1.0 - 2.0 * (1.0 - len(set(bigrams)) / len(bigrams)) if bigrams else 1.0
        lo, hi = FLUENCY
        flu = 0.0 if not words else (fluency - lo) / (hi - lo)
        return {"facts": _clamp(facts, -1.0), "topic": _clamp(topic), "length": length,
                "fresh": _clamp(fresh), "fluency": _clamp(flu)}

    def false_facts(self, e, text, grams, true):
        """How many values of e's relations the text gets wrong: other entities' values
        (world.candidates) and numbers that are none of e's."""
        wrong = set()
        for rel in RELATIONS[e.type]:
            wrong |= (self.world.candidates(e.type, rel) & grams) - true
        wrong -= {normalize(e.name)}
        numeric = {float(v) for r, v in e.attrs.items() if VALUE_TYPE[e.type, r] in ("year", "number")}
        return len(wrong) + sum(x not in numeric for x in numbers_in(text))

    @functools.cached_property
    def names(self):
        """Every entity name, normalized (what "names another entity" looks for)."""
        return frozenset(normalize(e.name) for e in self.world.entities.values())

    def fluency(self, texts):
        """(n,) mean log-probability per token of each text under the base model, each read
        as a document of its internet (<|bos|> text); an empty text gets -inf."""
        model, params = self.base
        bos = self.tokenizer.special_tokens["<|bos|>"]
        rows = [[bos] + self.tokenizer.encode_ordinary(t)[:model.context_len] for t in texts]
        w_head = params["tok_emb"] if model.tie_embeddings else params["lm_head"]  # (V, C)
        out = np.full(len(texts), -np.inf)
        for s in range(0, len(rows), BATCH):
            chunk = rows[s:s + BATCH]
            L = max(len(r) for r in chunk)
            if L < 2:
                continue
            x = np.zeros((len(chunk), L), np.int64)                            # (b, L)
            for b, r in enumerate(chunk):
                x[b, :len(r)] = r
            h, _ = gpt.forward(params, model, x[:, :-1], grad=False, head=False)  # (b, L-1, C)
            for b, r in enumerate(chunk):    # the head and the loss fused, row by row (C)
                if len(r) > 1:
                    loss, _ = lm_head_loss_forward(h[b, :len(r) - 1], w_head, x[b, 1:len(r)], grad=False)
                    out[s + b] = -loss
        return out

    # ---- the score and the ranking ------------------------------------------------------

    def score_parts(self, items, texts):
        """[{part: value, "true": the weighted sum}] of each (item, text)."""
        out = []
        for item, text, flu in zip(items, texts, self.fluency(texts)):
            p = self.parts(item, text, flu)
            p["true"] = sum(WEIGHTS[k] * p[k] for k in WEIGHTS)
            out.append(p)
        return out

    def true_scores(self, items, texts):
        """(n,) the hidden true score of each answer (no noise)."""
        return np.array([p["true"] for p in self.score_parts(items, texts)])

    def rank(self, item, texts, seed=0, scores=None):
        """The labeller's preferences among the K answers to one item: [(chosen, rejected)]
        indices, every pair of different texts at least TIE apart, ordered by the true score plus noise drawn
        from (seed, the prompt, the texts): the same call gives the same pairs."""
        scores = self.true_scores([item] * len(texts), texts) if scores is None else np.asarray(scores)
        rng = np.random.default_rng(derive_seed("labeller", seed, item.messages[-1]["content"], *texts))
        noisy = scores + self.noise * rng.standard_normal(len(texts))         # (K,)
        order = np.argsort(-noisy, kind="stable")                              # best first
        return [(int(a), int(b)) for i, a in enumerate(order) for b in order[i + 1:]
                if texts[a] != texts[b] and noisy[a] - noisy[b] >= TIE]


def _clamp(x, low=0.0):
    return float(min(1.0, max(low, x)))


def phrases(text, longest=LONGEST):
    """Every run of 1..longest words of the normalized text, as strings: a name or value
    is "mentioned" when it is one of them (a whole phrase, never part of a word)."""
    words = normalize(text).split()
    return {" ".join(words[i:i + n]) for n in range(1, longest + 1) for i in range(len(words) - n + 1)}
