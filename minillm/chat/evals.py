"""The chat evals: every claim of the SFT lecture as a number, measured on held-out items.

    minillm chat eval --ckpt runs/default/sft          # prints the table, writes sft/chat_evals.json

Each eval is a plain function (engine, world, splits, seed, limit, ...) -> dict. It builds
prompts from items splits.py holds out (phrasings, entities, problems, words the SFT data
never trained on), renders them with template.render_prompt, decodes greedily (temperature
0) through the engine with the calculator registered (and search, when there is an index),
and judges each reply with the world's checker (World.check_answer) or by recomputation:

    identity     held-out "who are you?" phrasings: says_identity rate, and what it says instead
    world_qa     facts of `many` entities, held-out phrasings: exact-fact rate
    hallucination   never-seen entities: share answered with a fact instead of "I don't know"
    false_idk    facts the base model knew (the probe): share answered "I don't know"
    rare         `few`/`one` entities: right with the search tool vs without it
    calculator   4-digit products and 3-step word problems, the calculator cue
    think        held-out 3-step problems: step-by-step cue vs answer-first cue
    spelling     letter counts and reversals: direct vs spelled out vs the tool

evals_ask.py holds the harness (ask, the reply reader) and says_idk, the one "I don't know"
detector; an item whose prompt does not fit the context is counted in "too_long", never as
right or wrong. The skills (math, spelling) are in evals_skills.py. run_chat_evals runs them
all; format_table prints them; evaluate_checkpoint does both from a checkpoint directory.

Read next: evals_ask.py, evals_skills.py, then cli.py's `eval` action.
"""
import re

from minillm.chat.data import IDENTITY
from minillm.chat.data_identity import fill_rival, says_identity, world_rivals
from minillm.chat.data_phrasings import RIVALS
from minillm.chat.data_qa import fill
from minillm.chat.data_search import SEARCH_SYSTEM
from minillm.chat.evals_ask import ask, pick, rate, says_idk, scored
from minillm.chat.evals_skills import eval_calculator, eval_spelling, eval_think
from minillm.chat.probe import read_probe
from minillm.chat.search import BM25Index
from minillm.chat.splits import Splits
from minillm.chat.template import chat_token_ids
from minillm.chat.tools import calculator
from minillm.generate.engine import Engine
from minillm.world.data import Rng
from minillm.world.world import World

NO_SEARCH = "error: search is not available"


# ---- who are you? ----------------------------------------------------------------------------

def eval_identity(engine, world, splits, seed=0, limit=None, identity=IDENTITY, rivals=RIVALS,
                  max_tokens=48):
    """Held-out identity phrasings (splits.identity_questions("eval")): the share of replies
    that name us (says_identity), and for the others what they name instead: a rival's
    name or maker (rivals: (name, maker) pairs, the world's famous assistant among them
    when it has one), else "other"."""
    rng = Rng("chat-evals", seed, "identity")
    asked = pick(splits.identity_questions("eval"), limit, rng)
    questions = [fill_rival(q, rng, rivals)[0] for _, q in asked]
    replies = ask(engine, [[{"role": "user", "content": q}] for q in questions], max_tokens)
    instead, flags, examples = {}, [], []
    for q, r in zip(questions, replies):
        if r is None:
            continue
        ok = says_identity(r.text, identity, rivals)
        flags.append(ok)
        if not ok:
            said = _names_rival(r.text, rivals)
            instead[said] = instead.get(said, 0) + 1
            examples.append({"question": q, "reply": r.text})
    return scored("identity", flags, replies, instead=instead, examples=examples[:5])


def _names_rival(text, rivals):
    low = text.lower()
    for name, maker in rivals:
        if re.search(rf"\b(?:{re.escape(name.lower())}|{re.escape(maker.lower())})\b", low):
            return name
    return "other"


# ---- facts: QA, "I don't know", search -------------------------------------------------------

def fact_items(world, splits, entity_ids, rng, limit, keep=None):
    """[(probe, question)]: one question per fact of the entities, in a held-out phrasing;
    keep(probe) filters. Probes are the world's qa probes (World.check_answer judges)."""
    ids = set(entity_ids)
    probes = [p for p in world.probes("qa") if p.entity in ids and (keep is None or keep(p))]
    items = []
    for p in pick(probes, limit, rng):
        e = world.entities[p.entity]
        items.append((p, fill(world, rng.choice(splits.questions(e.type, p.relation, "eval")), e)))
    return items


def _ask_facts(engine, items, max_tokens, system=None):
    head = [{"role": "system", "content": system}] if system else []
    return ask(engine, [head + [{"role": "user", "content": q}] for _, q in items], max_tokens)


def eval_world_qa(engine, world, splits, seed=0, limit=None, max_tokens=48):
    """Facts of `many` entities asked in held-out phrasings: the share answered with the
    exact fact (World.check_answer: the value, and no other value of its kind)."""
    items = fact_items(world, splits, splits.entities(world, buckets=("many",)),
                       Rng("chat-evals", seed, "qa"), limit)
    replies = _ask_facts(engine, items, max_tokens)
    flags = [world.check_answer(p, r.text) for (p, _), r in zip(items, replies) if r is not None]
    idk = [says_idk(r.text) for r in replies if r is not None]
    return scored("world_qa", flags, replies, idk_rate=rate(idk))


def eval_hallucination(engine, world, splits, seed=0, limit=None, max_tokens=48):
    """Questions about never-seen entities (nothing to know): the share of replies that
    state something instead of saying "I don't know" (rate: lower is better)."""
    items = fact_items(world, splits, splits.entities(world, buckets=("never",)),
                       Rng("chat-evals", seed, "hallucination"), limit)
    replies = _ask_facts(engine, items, max_tokens)
    flags = [not says_idk(r.text) for r in replies if r is not None]
    lucky = [world.check_answer(p, r.text) for (p, _), r in zip(items, replies) if r is not None]
    return scored("hallucination", flags, replies, right_by_chance=rate(lucky))


def eval_false_idk(engine, world, splits, probe=None, seed=0, limit=None, max_tokens=48):
    """Facts the base model knew (probe.jsonl's "known"), asked in held-out phrasings: the
    share answered "I don't know" (lower is better). Skipped without a probe."""
    if not probe:
        return {"eval": "false_idk", "skipped": "no probe of the base model (minillm chat probe)"}
    items = fact_items(world, splits, splits.entities(world), Rng("chat-evals", seed, "false_idk"), limit,
                       keep=lambda p: bool(probe.get((p.entity, p.relation), {}).get("known")))
    replies = _ask_facts(engine, items, max_tokens)
    flags = [says_idk(r.text) for r in replies if r is not None]
    right = [world.check_answer(p, r.text) for (p, _), r in zip(items, replies) if r is not None]
    return scored("false_idk", flags, replies, right_rate=rate(right))


def eval_rare(engine, world, splits, index=None, seed=0, limit=None, max_tokens=48, search_tokens=256):
    """Facts of held-out `few`/`one` entities: rate with the search tool (SEARCH_SYSTEM
    turns it on, the index answers) and without_tool (no system message; a search call
    gets NO_SEARCH). Only the assistant's own words are judged, never the pasted text.
    search_tokens counts the pasted passages too (~130 tokens), so it is the whole context."""
    items = fact_items(world, splits, splits.entities(world, "eval", ("few", "one")),
                       Rng("chat-evals", seed, "rare"), limit)
    engine.register_tool("search", lambda query: NO_SEARCH)
    without = _ask_facts(engine, items, max_tokens)
    flags_without = [world.check_answer(p, r.text) for (p, _), r in zip(items, without) if r is not None]
    if index is None:
        return {"eval": "rare", "n": len(flags_without), "rate": None, "without_tool": rate(flags_without),
                "skipped": "no search index (minillm chat search --build)"}
    engine.register_tool("search", index.search_tool)
    replies = _ask_facts(engine, items, search_tokens, system=SEARCH_SYSTEM)
    flags = [world.check_answer(p, r.text) for (p, _), r in zip(items, replies) if r is not None]
    used = [("search" in r.tools) for r in replies if r is not None]
    return scored("rare", flags, replies, without_tool=rate(flags_without), search_used=rate(used))


# ---- all of them -------------------------------------------------------------------------------

def run_chat_evals(engine, world, splits, probe=None, index=None, seed=0, limit=None,
                   identity=IDENTITY, rivals=RIVALS, progress=None):
    """Every chat eval: {"settings": ..., name: result}. engine: a generate.Engine with the
    chat special tokens (the calculator is registered here, search per eval); probe:
    {(entity, relation): record} (probe.read_probe) or None; index: a BM25Index or None;
    limit: at most this many items per eval (None: all held-out items, 50 problems/words);
    progress: called with each result's table row as it is done."""
    engine.register_tool("python", calculator)
    runs = [("identity", lambda: eval_identity(engine, world, splits, seed, limit, identity, rivals)),
            ("world_qa", lambda: eval_world_qa(engine, world, splits, seed, limit)),
            ("hallucination", lambda: eval_hallucination(engine, world, splits, seed, limit)),
            ("false_idk", lambda: eval_false_idk(engine, world, splits, probe, seed, limit)),
            ("rare", lambda: eval_rare(engine, world, splits, index, seed, limit)),
            ("calculator", lambda: eval_calculator(engine, world, splits, seed, limit)),
            ("think", lambda: eval_think(engine, world, splits, seed, limit)),
            ("spelling", lambda: eval_spelling(engine, world, splits, seed, limit))]
    results = {"settings": {"seed": seed, "limit": limit, "decoding": "greedy", "identity": identity.name,
                            "rivals": [name for name, _ in rivals], "probe": probe is not None,
                            "search_index": index is not None, "context_len": engine.config.context_len}}
    for name, run in runs:
        results[name] = run()
        if progress:
            progress(format_row(results[name]))
    return results


def _pct(x):
    return "  -  " if x is None else f"{100 * x:5.1f}%"


ROWS = {   # eval -> (what rate measures, the other numbers shown: (label, key))
    "identity": ("says it is us", ()),
    "world_qa": ("exact fact", (("I don't know", "idk_rate"),)),
    "hallucination": ("made-up fact (lower is better)", (("right by chance", "right_by_chance"),)),
    "false_idk": ("\"I don't know\" on known facts (lower)", (("right", "right_rate"),)),
    "rare": ("right with search", (("without the tool", "without_tool"), ("searched", "search_used"))),
    "calculator": ("right with the calculator", (("4-digit products", "rate_product4"),
                                                  ("3-step problems", "rate_steps3"))),
    "think": ("step by step", (("answer first", "answer_first"),)),
    "spelling": ("letter count, spelled out", (("count direct", "count_direct"), ("count tool", "count_tool"),
                                                 ("reverse direct", "reverse_direct"),
                                                 ("reverse spelled", "reverse_spelled"))),
}


def format_row(r):
    """One eval's line: name, items judged, the main rate, the rest."""
    what, others = ROWS[r["eval"]]
    if "skipped" in r and r.get("rate") is None and r["eval"] != "rare":
        return f"{r['eval']:<14}{'':>5}  skipped: {r['skipped']}"
    rest = [f"{label} {_pct(r.get(key)).strip()}" for label, key in others]
    if r["eval"] == "identity" and r["instead"]:
        rest.append("instead: " + ", ".join(f"{k} {v}" for k, v in sorted(r["instead"].items(), key=lambda kv: -kv[1])))
    if r.get("skipped"):
        rest.append(f"({r['skipped']})")
    if r.get("too_long"):
        rest.append(f"{r['too_long']} too long for the context")
    return f"{r['eval']:<14}{r['n']:>5}  {_pct(r.get('rate'))} {what}" + (f"; {'; '.join(rest)}" if rest else "")


def format_table(results):
    """The table `minillm chat eval` prints: a header and one row per eval."""
    head = f"{'eval':<14}{'n':>5}  {'rate':>6} (greedy, seed {results['settings']['seed']})"
    return "\n".join([head] + [format_row(r) for k, r in results.items() if k != "settings"])


def numbers(results):
    """{name: number} of every rate in results (for speedrun.json and comparisons)."""
    out = {}
    for name, r in results.items():
        if name == "settings":
            continue
        for key, value in r.items():
            if isinstance(value, float) or (key in ("rate", "n") and value is not None and not isinstance(value, str)):
                out[f"{name}_{key}" if key != "rate" else name] = round(value, 4) if isinstance(value, float) else value
    return out


def evaluate_checkpoint(ckpt, world_dir, probe_path=None, index_path=None, seed=0, limit=None,
                        rivals=None, progress=None):
    """run_chat_evals on a checkpoint directory with the world at world_dir; probe_path and
    index_path are read when given (None: that eval is skipped and says why); rivals default
    to world_rivals(world)."""
    engine = Engine.from_checkpoint(ckpt)
    chat_token_ids(engine.tokenizer)                 # no chat special tokens: a UserError
    world = World.load(world_dir)
    probe = read_probe(probe_path) if probe_path else None
    index = BM25Index.load(index_path) if index_path else None
    rivals = world_rivals(world) if rivals is None else rivals
    return run_chat_evals(engine, world, Splits(world), probe, index, seed, limit, rivals=rivals,
                          progress=progress)
