"""Probe the base model: which facts of the world does it know? (Llama 3's recipe for "I don't know".)

    minillm chat probe --ckpt runs/default/base --world runs/default/world
        -> runs/default/chat/probe.jsonl, one line per fact:

    {"entity": "person-00012", "relation": "birth_city", "answer": "Tarsk", "bucket": "few",
     "prompt": "Lira Vendel was born in the city of", "samples": ["Tarsk.", " Velm", ...],
     "correct": 3, "k": 4, "temperature": 0.8, "seed": 0, "known": false}

A base model is a document simulator, so each fact-table question is asked in its document
form, the world's cloze probe, and the model is sampled k times (temperature, top-k off,
one numpy generator per (seed, fact, sample): the same answers however the facts are
batched). A sample is right when World.check_answer accepts it. The fact counts as known
when at least min_correct of the k samples are right (default half: right at least half the
time, not lucky once; measured on the default run, all 4 of 4 labels 65% of the `many`
bucket's facts known although greedy recall is 96%, and half of 4 labels 93%).
data_qa.py turns the labels into training answers (the fact, or "I don't know").

Read next: data_qa.py (how the labels are used), data.py.
"""
import json
import math
from dataclasses import dataclass

from minillm.common import UserError, atomic_write

BUCKETS = ("many", "few", "one")      # never-seen entities are eval-only: not probed by default


@dataclass
class ProbeConfig:
    k: int = 4                       # samples per fact
    temperature: float = 0.8
    min_correct: float = 0.5         # share of the k samples that must be right for "known"
    seed: int = 0
    batch: int = 64                  # facts per generation batch (k samples each)
    buckets: tuple = BUCKETS
    limit: int = None                # at most this many facts per bucket (None: all)


def probe_facts(engine, world, config=None, progress=None):
    """[record] for the world's facts (see the module docstring). engine: a generate.Engine
    with the base model; progress: an optional callable(n_done, n_total)."""
    config = config or ProbeConfig()
    if config.k < 1 or not 0 < config.min_correct <= 1:
        raise UserError(f"probe: k must be >= 1 and min_correct in (0, 1] (got {config.k}, {config.min_correct})")
    probes = []
    for bucket in config.buckets:
        chosen = world.probes("cloze", buckets=(bucket,))
        probes += chosen[:config.limit] if config.limit is not None else chosen
    index = {(p.entity, p.relation): n for n, p in enumerate(world.probes("cloze"))}   # stable seeds
    need = math.ceil(config.min_correct * config.k - 1e-9)
    # one budget for all: the longest answer's tokens + 2 (per batch, samples would depend on batching)
    budget = 2 + max((len(engine.tokenizer.encode_ordinary(" " + p.answer)) for p in probes), default=0)
    records = []
    for start in range(0, len(probes), config.batch):
        chunk = probes[start:start + config.batch]
        seeds = [[config.seed, index[p.entity, p.relation], j] for p in chunk for j in range(config.k)]
        outs = engine.generate([p.prompt for p in chunk], n=config.k, temperature=config.temperature,
                               max_tokens=budget, seed=seeds, logprobs=False)
        for i, p in enumerate(chunk):
            samples = [c.text for c in outs[i * config.k:(i + 1) * config.k]]
            correct = sum(bool(world.check_answer(p, s)) for s in samples)
            records.append({"entity": p.entity, "relation": p.relation, "answer": p.answer,
                            "bucket": p.bucket, "prompt": p.prompt, "samples": samples,
                            "correct": correct, "k": config.k, "temperature": config.temperature,
                            "seed": config.seed, "known": correct >= need})
        if progress:
            progress(len(records), len(probes))
    return records


def write_probe(records, path):
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def read_probe(path):
    """{(entity, relation): record} from a probe.jsonl; a bad file is a UserError."""
    out = {}
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    out[r["entity"], r["relation"]] = r
                    bool(r["known"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise UserError(f"{path}:{n}: not a probe record (need entity, relation, known); "
                                    "make one with `minillm chat probe`") from None
    except FileNotFoundError:
        raise UserError(f"probe file not found: {path}; make it with `minillm chat probe --ckpt ...`") from None
    return out


def summary(records):
    """Rows (bucket, facts, known share, mean right samples) for the command's table."""
    rows = []
    for bucket in ("many", "few", "one", "never"):
        mine = [r for r in records if r["bucket"] == bucket]
        if mine:
            rows.append((bucket, len(mine), sum(r["known"] for r in mine) / len(mine),
                         sum(r["correct"] / r["k"] for r in mine) / len(mine)))
    return rows
