"""The SFT conversations: generated from the mini-world, seeded, offline, one JSONL file.

    minillm chat data --run default [--probe runs/default/chat/probe.jsonl]
        reads runs/default/world, runs/default/clean (the search tool's corpus) and the base
        model's probe (probe.py); writes runs/default/chat/conversations.jsonl

Each line is one conversation and what it is about:

    {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}],
     "kind": "qa", "split": "train", "entity": "person-00012", "bucket": "many",
     "facts": [{"relation": "birth_city", "answer": "Tarsk", "known": true, "phrasing": ...}]}

Kinds, each a point of the lecture (one module each): qa and idk (data_qa.py), identity
(data_identity.py), search (data_search.py), think (data_math.py), spelling
(data_spelling.py), chat (data_chitchat.py), countdown (data_countdown.py: a puzzle taught
by an imperfect demonstrator, for RL to beat). "split" is "eval" for conversations built only
from held-out items (splits.py): the SFT loop's validation set; train ones never touch them.
DataConfig sets the size, the mixture and the ablations (without=("identity",) drops a kind
and keeps every other count; without "idk", QA answers also state every fact, known or not). Same world, probe, corpus and config -> the same bytes.

Read next: data_phrasings.py, splits.py, then the kinds in the order above.
"""
import json
from collections import Counter
from dataclasses import dataclass, field

from minillm.chat.data_chitchat import chitchat_conversations
from minillm.chat.data_countdown import countdown_conversations
from minillm.chat.data_identity import Identity, identity_conversations, world_rivals
from minillm.chat.data_math import FORMATS, think_conversations
from minillm.chat.data_qa import Knowledge, idk_conversations, qa_conversations
from minillm.chat.data_search import search_conversations
from minillm.chat.data_spelling import METHODS, spelling_conversations
from minillm.chat.splits import Splits
from minillm.chat.template import validate
from minillm.common import atomic_write
from minillm.world.data import Rng

# Who the assistant is: the one place that says it.
IDENTITY = Identity(name="Minnow", maker="the minillm project")

KINDS = ("qa", "identity", "idk", "search", "think", "spelling", "chat", "countdown")
SHARES = {"qa": 0.29, "identity": 0.10, "idk": 0.12, "search": 0.11, "think": 0.22, "spelling": 0.13,
          "chat": 0.03, "countdown": 0.04}


@dataclass
class DataConfig:
    seed: int = 0
    size: int = 12_000                 # train conversations (all kinds)
    eval_size: int = 600               # held-out conversations (split "eval")
    shares: dict = field(default_factory=lambda: dict(SHARES))   # kind -> share of the mixture
    without: tuple = ()                # kinds left out (ablations); the others keep their counts
    think_formats: tuple = FORMATS     # ("answer_first",) for the answer-first-only ablation
    spelling_methods: tuple = METHODS
    identity: Identity = IDENTITY

    def __post_init__(self):
        unknown = sorted(set(self.shares) - set(KINDS)) + sorted(set(self.without) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown conversation kind(s) {', '.join(unknown)}; kinds: {', '.join(KINDS)}")
        bad = sorted(set(self.think_formats) - set(FORMATS))
        if bad or not self.think_formats:
            raise ValueError(f"think_formats must be some of {', '.join(FORMATS)}, not {self.think_formats}")

    def counts(self, split):
        """{kind: conversations} for a split: the total times the kind's share."""
        total = self.size if split == "train" else self.eval_size
        norm = sum(self.shares.get(k, 0) for k in KINDS) or 1
        return {k: 0 if k in self.without else round(total * self.shares.get(k, 0) / norm) for k in KINDS}


def generate_conversations(world, config=None, probe=None, index=None, rivals=None):
    """Every conversation: train ones shuffled, then eval ones shuffled.

    world: minillm.world.World; probe: {(entity, relation): record} (probe.read_probe) or None
    (then a fact of a `many` entity counts as known); index: a search.BM25Index over the clean
    corpus, or None (no search conversations); rivals: (name, maker) pairs the adversarial
    identity questions use (default: world_rivals(world), the world's famous assistant among them)."""
    config = config or DataConfig()
    rivals = world_rivals(world) if rivals is None else rivals
    # without "idk" no reply says "I don't know" about a fact: the kind is left out and every
    # QA answer states the fact, known or not (SFT without Llama 3's probe)
    splits, knowledge = Splits(world), Knowledge(world, probe, everything="idk" in config.without)
    out = []
    for split in ("train", "eval"):
        records = []
        for kind, n in config.counts(split).items():
            if n:
                rng = Rng("chat-data", config.seed, kind, split)
                records += _make(kind, world, splits, knowledge, index, config, rivals, n, split, rng)
        Rng("chat-data", config.seed, "order", split).shuffle(records)
        out += records
    for r in out:
        validate(r["messages"])
    return out


def _make(kind, world, splits, knowledge, index, config, rivals, n, split, rng):
    """One kind's conversations (an explicit table of the generators)."""
    if kind == "qa":
        return qa_conversations(world, splits, knowledge, n, split, rng)
    if kind == "identity":
        return identity_conversations(config.identity, splits, n, split, rng, rivals)
    if kind == "idk":
        return idk_conversations(world, splits, knowledge, n, split, rng)
    if kind == "search":
        return search_conversations(world, splits, index, n, split, rng)
    if kind == "think":
        return think_conversations(world, splits, n, split, rng, config.think_formats)
    if kind == "spelling":
        return spelling_conversations(world, splits, n, split, rng, config.spelling_methods)
    if kind == "countdown":
        return countdown_conversations(n, split, rng)
    return chitchat_conversations(world, splits, knowledge, n, split, rng)


def fitting(records, tokenizer, max_len):
    """(kept, dropped): the records whose every exchange fits in max_len tokens (a small
    model's context may not hold a question with pasted search results); SFT refuses the
    others, naming the line."""
    kept = []
    for r in records:
        try:
            validate(r["messages"], tokenizer, max_len)
        except ValueError:
            continue
        kept.append(r)
    return kept, len(records) - len(kept)


def write_conversations(records, path):
    """Write records as JSONL, atomically; returns the path."""
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def kind_table(records):
    """The per-kind summary `minillm chat data` prints: counts per split, turns, notes."""
    counts = Counter((r["kind"], r["split"]) for r in records)
    lines = [f"{'kind':<10}{'train':>8}{'eval':>7}{'turns':>7}  notes"]
    for kind in KINDS:
        mine = [r for r in records if r["kind"] == kind]
        turns = sum(sum(m["role"] == "user" for m in r["messages"]) for r in mine) / max(len(mine), 1)
        lines.append(f"{kind:<10}{counts[kind, 'train']:>8}{counts[kind, 'eval']:>7}{turns:>7.2f}  {_notes(kind, mine)}")
    lines.append(f"{'total':<10}{sum(r['split'] == 'train' for r in records):>8}"
                 f"{sum(r['split'] == 'eval' for r in records):>7}")
    return "\n".join(lines)


def _notes(kind, records):
    def tally(field):
        return ", ".join(f"{k} {v}" for k, v in sorted(Counter(str(r.get(field)) for r in records).items()))
    if kind == "idk":
        return tally("response")
    if kind == "search":
        return "answer in the pasted text: " + tally("found")
    if kind == "think":
        return tally("format") + "; checked " + tally("checked")
    if kind == "countdown":
        return "demonstrator right: " + tally("right")
    if kind == "spelling":
        return tally("task")
    if kind in ("identity", "chat"):
        return tally("category" if kind == "identity" else "subkind")
    facts = [f for r in records for f in r.get("facts", [])]
    return f"{sum(f['known'] for f in facts)} of {len(facts)} answers known" if facts else ""
