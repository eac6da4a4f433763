"""Base-model evals: what a checkpoint knows and does, measured on the mini-world.

    minillm eval --ckpt runs/default/base                      # table + runs/default/base/evals.json
    minillm eval --ckpt runs/default/base --world runs/default/world --only cloze,few_shot

  val_loss       nats per token and bits per byte on the held-out 10% of the token shards
  cloze          fact recall per exposure bucket: facts seen in many documents are recalled,
                 facts seen once mostly not, never-seen ones not at all
  regurgitation  how much of a line the greedy continuation reproduces verbatim, for lines
                 read many times, once, and never
  few_shot       a bare name after 0 or k example sentences of one relation: does the next
                 line take the examples' form and name the true value? (in-context learning)
  copy           random tokens written twice: how much of the second copy the model
                 predicts (reading its context: induction heads)

Adding an eval (SFT and RL add theirs): a function fn(ctx) -> dict with a "table" list of
(label, value text) rows, put in EVALS; an eval that lacks its inputs raises Skip(reason).
Read next: cli.py (the command). Run: python -m pytest tests/evals/test_base.py

Shapes: B batch, T context.
"""
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minillm.common import UserError
from minillm.generate.engine import Engine
from minillm.internet.pipeline import read_jsonl_gz
from minillm.nn import gpt
from minillm.nn.checkpoint import checkpoint_dir, load_checkpoint
from minillm.pretrain.shards import BatchLoader
from minillm.tokenizer.bpe import Tokenizer
from minillm.world.probes import normalize
from minillm.world.world import World


class Skip(Exception):
    """An eval cannot run here; the message says why."""


@dataclass
class EvalContext:
    engine: object                    # minillm.generate.engine.Engine (its params and tokenizer)
    params: dict
    config: object                    # GPTConfig
    world: object = None              # minillm.world.world.World
    shards: str = None                # token-shard directory (val split)
    clean: str = None                 # clean documents (the training text) for regurgitation
    limit: int = 200                  # probes per bucket / lines per group
    batch: int = 64                   # sequences per generation batch
    seed: int = 0
    options: dict = field(default_factory=dict)

    @property
    def tokenizer(self):
        return self.engine.tokenizer

    def complete(self, prompts, max_tokens, bos=True):
        """Greedy continuations (text) of many prompts, in batches of ctx.batch."""
        out = []
        for i in range(0, len(prompts), self.batch):
            out += [c.text for c in self.engine.generate(prompts[i:i + self.batch], bos=bos,
                                                          temperature=0, max_tokens=max_tokens,
                                                          logprobs=False)]
        return out


def _sample(items, k, seed):
    """Up to k items, a fixed random choice, in their original order."""
    if len(items) <= k:
        return list(items)
    keep = np.sort(np.random.default_rng(seed).choice(len(items), k, replace=False))
    return [items[i] for i in keep]


# ---- validation loss and bits per byte --------------------------------------------------

def eval_val_loss(ctx, max_batches=8, batch_size=16):
    """Mean loss over the first max_batches x batch_size validation windows (the speedrun's
    trainer measures the same windows, so both print one number), and bits per byte over
    their ordinary tokens.

    bits per byte = sum of -log2 p(token) / sum of the token's UTF-8 bytes, over targets
    that are not special tokens: comparable across tokenizers (a token-level loss is not).
    """
    if not ctx.shards or not Path(ctx.shards).exists():
        raise Skip("no token shards (pass --shards)")
    T = ctx.config.context_len
    loader = BatchLoader(ctx.shards, batch_size, T, split="val", vocab_size=ctx.config.vocab_size)
    tok = ctx.tokenizer
    specials = set(tok.special_tokens.values())
    nbytes = np.array([0 if i in specials else len(tok.decode_bytes([i]))
                       for i in range(ctx.config.vocab_size)])                   # (V,)
    n = min(max_batches, max(1, loader.n_windows // batch_size))
    loss_sum, count, nll_bytes, n_bytes = 0.0, 0, 0.0, 0
    for _ in range(n):
        x, y = loader.next_batch()                                              # (B, T) each
        logits, _ = gpt.forward(ctx.params, ctx.config, x, grad=False)          # (B, T, V)
        nll = _nll(logits, y)                                                   # (B, T)
        loss_sum, count = loss_sum + nll.sum(), count + y.size
        ordinary = nbytes[y] > 0                                                # (B, T)
        nll_bytes += nll[ordinary].sum()
        n_bytes += int(nbytes[y].sum())
    val = loss_sum / count
    bpb = nll_bytes / math.log(2) / max(n_bytes, 1)
    return {"val_loss": val, "bits_per_byte": bpb, "tokens": count,
            "table": [("val loss (nats/token)", f"{val:.4f}"), ("bits per byte", f"{bpb:.4f}"),
                      ("held-out tokens", f"{count:,}")]}


def _nll(logits, targets):
    """-log softmax(logits)[target] (B, T) in float64."""
    z = logits.astype(np.float64)                                               # (B, T, V)
    m = z.max(axis=-1, keepdims=True)                                           # (B, T, 1)
    lse = (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]       # (B, T)
    return lse - np.take_along_axis(z, targets[..., None], axis=-1)[..., 0]


# ---- cloze fact recall per exposure bucket ----------------------------------------------

BUCKETS = ("many", "few", "one", "never")


def eval_cloze(ctx):
    """Accuracy of greedy continuations of the world's cloze probes, per exposure bucket."""
    if ctx.world is None:
        raise Skip("no mini-world (pass --world)")
    probes = ctx.world.probes("cloze")
    result, table = {"buckets": {}}, []
    for bucket in BUCKETS:
        chosen = _sample([p for p in probes if p.bucket == bucket], ctx.limit, ctx.seed)
        if not chosen:
            continue
        budget = 2 + max(len(ctx.tokenizer.encode_ordinary(" " + p.answer)) for p in chosen)
        texts = ctx.complete([p.prompt for p in chosen], budget)
        right = [ctx.world.check_answer(p, t) for p, t in zip(chosen, texts)]
        acc = sum(right) / len(chosen)
        examples = [{"prompt": p.prompt, "answer": p.answer, "output": t, "correct": r}
                    for p, t, r in list(zip(chosen, texts, right))[:5]]
        result["buckets"][bucket] = {"n": len(chosen), "correct": sum(right), "accuracy": acc,
                                     "examples": examples}
        exposure = _mean_exposure(ctx.world, chosen)
        table.append((f"recall, {bucket:<5} (~{exposure:.0f} docs/entity)",
                      f"{acc:6.1%}  ({sum(right)}/{len(chosen)})"))
    result["table"] = table
    return result


def _mean_exposure(world, probes):
    return float(np.mean([world.exposure.get(p.entity, 0) for p in probes])) if probes else 0.0


# ---- regurgitation ------------------------------------------------------------------------

def eval_regurgitation(ctx, min_words=10, many=10, max_cont=24):
    """Verbatim continuation of lines seen >= `many` times, once, and never."""
    if not ctx.clean or not Path(ctx.clean).exists():
        raise Skip("no clean documents (pass --clean)")
    counts = _line_counts(ctx.clean, min_words)
    seen_many = sorted((n, line) for line, n in counts.items() if n >= many)[::-1]
    groups = {"seen_many": [line for _, line in seen_many[:ctx.limit]],
              "seen_once": _sample(sorted(line for line, n in counts.items() if n == 1), ctx.limit, ctx.seed)}
    other = World.build(seed=(ctx.world.seed if ctx.world else 0) + 1000, size="smoke")
    fresh = {line for doc in other.iter_documents() if doc.lang == "en"
             for line in doc.text.split("\n") if len(line.split()) >= min_words and line not in counts}
    groups["never_seen"] = _sample(sorted(fresh), ctx.limit, ctx.seed)
    result, table = {"groups": {}}, []
    tok = ctx.tokenizer
    for name, lines in groups.items():
        if not lines:
            continue
        prompts, targets = [], []
        for line in lines:
            ids = tok.encode_ordinary("\n" + line)
            k = max(4, len(ids) // 3)
            prompts.append(ids[:k])
            targets.append(ids[k:k + max_cont])
        bos = [tok.special_tokens["<|bos|>"]] if "<|bos|>" in tok.special_tokens else []
        outs = []
        for i in range(0, len(prompts), ctx.batch):
            outs += [c.tokens for c in ctx.engine.generate(
                [bos + p for p in prompts[i:i + ctx.batch]], temperature=0,
                max_tokens=max(len(t) for t in targets), logprobs=False)]
        runs = [_common_prefix(o, t) for o, t in zip(outs, targets)]
        frac = float(np.mean([r / len(t) for r, t in zip(runs, targets)]))
        exact = float(np.mean([r == len(t) for r, t in zip(runs, targets)]))
        result["groups"][name] = {"n": len(lines), "verbatim_fraction": frac, "exact_rate": exact,
                                  "mean_run_tokens": float(np.mean(runs)),
                                  "examples": [{"line": l, "prompt": tok.decode(p), "output": tok.decode(o)}
                                               for l, p, o in list(zip(lines, prompts, outs))[:3]]}
        table.append((f"verbatim, {name:<10} ({len(lines)} lines)",
                      f"{frac:6.1%} of the rest, {exact:6.1%} exact"))
    result["table"] = table
    return result


def _line_counts(clean_dir, min_words):
    counts = Counter()
    for path in sorted(Path(clean_dir).glob("*.jsonl.gz")):
        for rec in read_jsonl_gz(path):
            counts.update(line for line in rec["text"].split("\n") if len(line.split()) >= min_words)
    return counts


def _common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


# ---- few-shot prompting -------------------------------------------------------------------

def eval_few_shot(ctx, k=3, relation=("person", "birth_city")):
    """Name-only queries after k example sentences of one relation: 0-shot vs k-shot.

    Query "Lira Vendel": nothing says which fact is wanted. After k examples such as
    "Vene Ferrhurst was born in the city of Lorton." a model that learns in context
    continues " was born in ..." and names her birth city. Reported per shot count, on
    the first line of the greedy continuation: how often it starts with the examples'
    first two words (form), and how often the first value of the relation's kind it
    names is the true one (accuracy; " is a baker from Tarsk" counts for Tarsk).
    """
    if ctx.world is None:
        raise Skip("no mini-world (pass --world)")
    world = ctx.world
    etype, rel = relation
    known = [p for p in world.probes("cloze") if p.relation == rel and p.bucket == "many"
             and world.entities[p.entity].type == etype and p.prompt.startswith(p.name + " ")]
    if len(known) < k + 2:
        raise Skip(f"too few well-known {etype} entities with {rel} facts")
    queries = _sample(known, min(ctx.limit, 100), ctx.seed)
    values = world.candidates(etype, rel)
    rng = np.random.default_rng(ctx.seed)
    budget = 4 + max(len(ctx.tokenizer.encode_ordinary(p.prompt[len(p.name):] + " " + p.answer))
                     for p in queries)
    result, table = {"relation": f"{etype}.{rel}", "k": k, "shots": {}}, []
    for shots in (0, k):
        prompts = []
        for q in queries:
            pool = [p for p in known if p.entity != q.entity]
            examples = [pool[i] for i in rng.choice(len(pool), shots, replace=False)] if shots else []
            prompts.append("".join(f"{e.prompt} {e.answer}.\n" for e in examples) + q.name)
        texts = ctx.complete(prompts, budget)
        lines = [t.split("\n")[0] for t in texts]
        form = [line.split()[:2] == q.prompt[len(q.name):].split()[:2] for q, line in zip(queries, lines)]
        right = [_first_value(line, values) == normalize(q.answer) for q, line in zip(queries, lines)]
        n = len(queries)
        result["shots"][str(shots)] = {"n": n, "format": sum(form) / n, "accuracy": sum(right) / n,
                                       "example": {"prompt": prompts[0], "output": texts[0]}}
        table.append((f"few-shot {rel}, {shots}-shot", f"{sum(right) / n:6.1%} right, "
                                                        f"{sum(form) / n:6.1%} in the examples' form"))
    result["table"] = table
    return result


def _first_value(text, values):
    """The value (normalized) named first in text, of the given normalized values; None if none."""
    padded = f" {normalize(text)} "
    hits = [(padded.find(f" {v} "), -len(v), v) for v in values if f" {v} " in padded]
    return min(hits)[2] if hits else None


# ---- copying from the context ----------------------------------------------------------

def eval_copy(ctx, n=32, length=24):
    """Can the model read its context? n sequences of `length` random ordinary tokens, each
    written twice (<|bos|> s s): the share of the second copy's tokens (after its first)
    the model predicts greedily, beside the same share for the first copy (chance: nothing
    to go on). A model with induction heads (attention that finds the earlier occurrence of
    the current token and predicts what came after it there; Olsson et al. 2022) copies
    nearly all of it. A search query with the name from the question, a calculator call
    with the question's numbers, an answer read out of pasted passages: all of it is this.
    """
    tok = ctx.tokenizer
    bos = [tok.special_tokens["<|bos|>"]] if "<|bos|>" in tok.special_tokens else []
    length = min(length, (ctx.config.context_len - len(bos)) // 2)
    specials = set(tok.special_tokens.values())
    ordinary = np.array([i for i in range(ctx.config.vocab_size) if i not in specials])
    seqs = ordinary[np.random.default_rng(ctx.seed).integers(0, len(ordinary), (n, length))]  # (n, L)
    x = np.concatenate([np.full((n, len(bos)), bos, np.int64), seqs, seqs], axis=1)  # (n, b + 2L)
    logits, _ = gpt.forward(ctx.params, ctx.config, x[:, :-1], grad=False)         # (n, b + 2L - 1, V)
    right = logits.argmax(-1) == x[:, 1:]               # right[:, j]: predicted x[:, j + 1]
    b = len(bos)                  # each copy's own first token is never predictable: left out
    first, second = right[:, b:length - 1 + b].mean(), right[:, length + b:].mean()
    return {"n": n, "length": length, "copied": float(second), "first_time": float(first),
            "table": [("copy a repeated random sequence", f"{second:6.1%} of the second copy "
                                                         f"({first:.1%} the first time)")]}


EVALS = {"val_loss": eval_val_loss, "cloze": eval_cloze, "regurgitation": eval_regurgitation,
         "few_shot": eval_few_shot, "copy": eval_copy}


def run_evals(ctx, names=None, progress=True):
    """{name: result dict, or {"skipped": reason}} for EVALS (or the named ones)."""
    results = {}
    for name in names or EVALS:
        if name not in EVALS:
            raise UserError(f"unknown eval {name!r}; choose from {', '.join(EVALS)}")
        t = time.perf_counter()
        try:
            results[name] = EVALS[name](ctx)
        except Skip as e:
            results[name] = {"skipped": str(e), "table": [(name, f"skipped: {e}")]}
        results[name]["seconds"] = round(time.perf_counter() - t, 2)
        if progress:
            print(f"eval {name}: {results[name]['seconds']:.1f}s", file=sys.stderr)
    return results


def format_table(results):
    rows = [(label, value) for r in results.values() for label, value in r.get("table", [])]
    width = max((len(label) for label, _ in rows), default=10)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


# ---- a context for a checkpoint in a run directory -----------------------------------------

def context_for(ckpt, world=None, shards=None, clean=None, limit=200, seed=0):
    """An EvalContext for a checkpoint in a run directory (runs/<name>/base): world/,
    shards/ and clean/ default to the run directory's, when present."""
    config, params, meta = load_checkpoint(ckpt)
    tok_path = Path(checkpoint_dir(ckpt)) / "tokenizer.json"
    if not tok_path.exists():
        raise UserError(f"{ckpt} has no tokenizer.json; the evals need the model's tokenizer")
    engine = Engine(params, config, Tokenizer.load(tok_path))
    run = Path(ckpt).parent
    world = Path(world) if world else run / "world"
    shards = Path(shards) if shards else Path(meta.get("data", {}).get("source") or run / "shards")
    clean = Path(clean) if clean else run / "clean"
    w = World.load(world) if (world / "stats.json").exists() else None
    return EvalContext(engine, params, config, w, str(shards) if shards.exists() else None,
                       str(clean) if clean.exists() else None, limit=limit, seed=seed)
