"""The speedrun: every stage from the generated internet to a base model and its assistant.

    minillm speedrun                       # the real thing on 2 cores: runs/default/
    minillm speedrun --profile smoke       # all of it, tiny (CI): runs/smoke/
    minillm speedrun --name try2 --force   # start the run again (only minillm's files go)

STAGES, in order: world -> crawl -> clean -> tokenizer -> shards -> pretrain -> evals -> samples,
then post-training: probe -> chat_data -> sft -> chat_evals -> rl (word problems) ->
rl_countdown (the puzzle SFT learned from an imperfect demonstrator) -> rl_evals ->
reward_model -> rlhf (past the true-score peak, then with a KL penalty) -> arena. Each stage
calls its package's Python API, writes its artifacts atomically under runs/<name>/ (world/,
crawl/, clean/, tokenizer.json, shards/, base/, chat/, sft/, rl/, rl_countdown/,
rl_evals.json, rlhf/, arena.json, arena.md, metrics.jsonl) and is skipped when they exist,
so an interrupted speedrun continues where it stopped (a stage killed midway runs again;
pretraining, SFT and RL resume from their last checkpoint, the RLHF stages start over). speedrun.json holds each stage's
time and key numbers (chat_evals: the base model's and the SFT model's side by side).

PROFILES fix every size (world, vocabulary, model, context, steps); README.md gives the
default profile's time and results. Read next: README.md's stages table, one package each.
Run: python -m pytest tests/test_speedrun.py -m slow
"""
import dataclasses
import json
import sys
import time

import numpy as np
from tqdm import tqdm

from minillm import clib
from minillm.chat import sft as chat_sft
from minillm.chat.data import IDENTITY, DataConfig, fitting, generate_conversations, write_conversations
from minillm.chat.evals import evaluate_checkpoint
from minillm.chat.evals import format_table as chat_table
from minillm.chat.evals import numbers as chat_numbers
from minillm.chat.probe import ProbeConfig, probe_facts, read_probe, write_probe
from minillm.chat.probe import summary as probe_summary
from minillm.chat.search import BM25Index, clean_documents
from minillm.common import (
    FORCE_HELP, MARKER, Output, UserError, atomic_write, prepare_dir, read_json, remove_output, runs_dir,
    thread_count, write_json)
from minillm.crawl import pages
from minillm.crawl.pages import crawl
from minillm.evals import factcheck
from minillm.evals.base import context_for, format_table, run_evals
from minillm.generate.engine import Engine
from minillm.internet import pipeline, score
from minillm.internet.pipeline import clean
from minillm.nn import checkpoint, gpt
from minillm.nn.gpt import GPTConfig, num_params
from minillm.nn.optim import AdamW
from minillm.pretrain import dist, shards
from minillm.pretrain.shards import write_token_shards
from minillm.pretrain.train import TrainConfig, train
from minillm.report import write_report
from minillm.rl.evals import format_table as rl_table
from minillm.rl.evals import rl_evals
from minillm.rl.grpo import RLConfig, rl
from minillm.rlhf.arena import arena
from minillm.rlhf.arena import format_table as arena_table
from minillm.rlhf.labeller import Labeller
from minillm.rlhf.policy import RLHFConfig, rlhf
from minillm.rlhf.reward_model import RMConfig, make_reward_model
from minillm.tokenizer.bpe import GPT2_DIGITS_PATTERN, Tokenizer
from minillm.tokenizer.train import train_tokenizer
from minillm.world import store
from minillm.world.world import World

PROFILES = {
    "smoke": {
        "world": "smoke", "world_seed": 0, "crawl_shards": 2, "workers": 2,
        "vocab_size": 512, "depth": 2, "n_embd": 64, "context_len": 64, "tie_embeddings": True,
        "batch_size": 8, "steps": 60, "lr": 3e-3, "warmup": 10,
        "eval_limit": 20, "samples": 3, "sample_tokens": 24,
        # post-training (on in this profile)
        "post_training": True,
        "probe_limit": 60, "probe_k": 4, "chat_size": 3000, "chat_eval_size": 100,
        "sft_steps": 400, "sft_batch": 16, "sft_lr": 3e-3, "chat_eval_limit": 40,
        "rl_steps": 4, "rl_countdown_steps": 4, "rl_prompts": 4, "rl_group": 4, "rl_lr": 1e-4,
        "rl_countdown_lr": 1e-4, "rl_temperature": 0.7, "rl_countdown_temperature": 1.0,
        "rl_max_tokens": 48, "rl_eval_prompts": 16, "rl_k": 4,
        "rm_prompts": 16, "rm_held_out": 8, "rm_k": 3, "rlhf_steps": 4, "rlhf_prompts": 2, "rlhf_group": 3,
        "rlhf_lr": 1e-4, "rlhf_beta": 0.1, "rlhf_eval_every": 2, "rlhf_eval_prompts": 4, "rlhf_max_tokens": 24,
        "arena_prompts": 4,
        # --minutes: measure_throughput() on the machine of a reference run, and what its
        # pretraining steps and its other stages took there
        "reference": {"probe_tokens_per_s": 50000, "pretrain_step_seconds": 0.015, "other_seconds": 12},
    },
    "default": {
        "world": "default", "world_seed": 0, "crawl_shards": 8, "workers": 2,
        # tied embeddings: the head reads the embedding table, so copying a token from the
        # context (a rare name into a search query, a number into the calculator) is one map
        # for every token; measured on this profile against untied: val loss 0.564 vs 0.622,
        # the second half of a rare name copied 57% vs 25%, 1.06M fewer parameters
        "vocab_size": 4096, "split": "gpt4", "depth": 4, "n_embd": 256, "context_len": 256, "tie_embeddings": True,
        "batch_size": 16, "steps": 1200, "lr": 2e-3, "warmup": 100,
        "eval_limit": 200, "samples": 5, "sample_tokens": 80,
        # post-training: 2 epochs of 12,000 conversations (SFT ~11 min on 2 AVX2 cores)
        "post_training": True,
        "probe_limit": 1000, "probe_k": 4, "chat_size": 12_000, "chat_eval_size": 600,
        "sft_steps": 1500, "sft_batch": 16, "sft_lr": 1e-3, "chat_eval_limit": 200,
        # RL: word problems at a small lr (larger ones lowered pass@1: see README); the
        # countdown explores at temperature 1 (measured: 60.3% -> 73.5% at 0.7, 82.4% at 1)
        "rl_steps": 20, "rl_countdown_steps": 80, "rl_prompts": 8, "rl_group": 8, "rl_lr": 1e-5,
        "rl_countdown_lr": 1e-4, "rl_temperature": 0.7, "rl_countdown_temperature": 1.0,
        "rl_max_tokens": 160, "rl_eval_prompts": 100, "rl_k": 8,
        # RLHF: the reward model on 1,536 prompts x 4 answers (1 epoch; 384 gave 74.8%, 1,536
        # 77.1% on 512 held-out prompts, 3 data orders each: see README), its accuracy on 256
        # held-out prompts (128 left it +-1.8 points); RL against it for 30
        # steps at 2e-4, past the true-score peak (measured: it peaks at step 8-22, then falls
        # as the reward model's score keeps rising), then the same with a KL penalty
        "rm_prompts": 1536, "rm_held_out": 256, "rm_k": 4, "rlhf_steps": 30, "rlhf_prompts": 8, "rlhf_group": 4,
        "rlhf_lr": 2e-4, "rlhf_beta": 0.3, "rlhf_eval_every": 2, "rlhf_eval_prompts": 48, "rlhf_max_tokens": 64,
        "arena_prompts": 60,
        # --minutes: on the 2-core AVX2 machine where measure_throughput() gave 5,328 tokens/s,
        # a default run took 1,075.8 s for 1,200 pretraining steps (evals and checkpoints
        # included) and 935 s for every other stage, + 59 s since the reward model's prompts
        # went from 384 to 1,536 (its stage: 29.4 s -> 88.8 s, the same build on another CPU)
        "reference": {"probe_tokens_per_s": 5328, "pretrain_step_seconds": 1075.8 / 1200, "other_seconds": 935 + 59},
    },
}


# the tokenizer's split pattern: GPT-4's cuts numbers into runs of up to 3 digits ("4821" ->
# "482" "1"); "digits" cuts every digit out (as Llama 2 and DeepSeek do), so arithmetic and
# copying a number work on 10 tokens instead of 1,110
SPLITS = {"gpt4": "gpt4", "digits": GPT2_DIGITS_PATTERN}


def model_config(profile, vocab_size):
    """The GPTConfig a profile trains (GPTConfig.from_depth with the profile's overrides)."""
    over = {k: profile[k] for k in ("n_embd", "n_head", "n_kv_head", "hidden_dim", "tie_embeddings") if k in profile}
    return GPTConfig.from_depth(profile["depth"], vocab_size, profile["context_len"], **over)


# ---- the stages: each returns its key numbers; done(run) says whether it can be skipped --

def stage_world(run, p):
    stats = World.build(seed=p["world_seed"], size=p["world"]).save(run / "world", progress=True)
    return {"documents": stats.get("documents"), "entities": stats["entities"], "facts": stats["facts"]}


def stage_crawl(run, p):
    s = crawl(World.load(run / "world"), run / "crawl", p["crawl_shards"], seed=p["world_seed"], progress=True)
    return {"pages": s["pages"], "warc_mb": round(s["warc_bytes"] / 1e6, 2)}


def stage_clean(run, p):
    s = clean(run / "crawl", run / "clean", workers=p["workers"])["stages"]
    report = score.score_run(run / "crawl", run / "clean")      # against the crawl's truth
    write_json(run / "clean" / "report.json", report)
    return {"pages": s["read"]["docs_in"], "documents": s["pii"]["docs_out"],
            "mb_in": round(s["read"]["bytes_in"] / 1e6, 2), "mb_out": round(s["pii"]["bytes_out"] / 1e6, 2),
            "spam_precision": report["filters"]["precision"], "spam_recall": report["filters"]["recall"],
            "near_dup_recall": report["dedup"]["recall"]}


def stage_tokenizer(run, p):
    pattern = SPLITS[p.get("split", "gpt4")]
    tok = train_tokenizer(sorted((run / "clean").glob("*.jsonl.gz")), p["vocab_size"], pattern)
    tok.save(run / "tokenizer.json")
    return {"vocab_size": tok.vocab_size}


def stage_shards(run, p):
    docs, tokens = write_token_shards(run / "clean", run / "tokenizer.json", run / "shards")
    return {"documents": docs, "tokens": tokens}


# the validation loss, one definition everywhere (the trainer's evals, its final number and
# the base-model evals): the mean over the first VAL_BATCHES x 16 windows of the held-out split
VAL_BATCHES = 8


def stage_pretrain(run, p):
    base = run / "base"
    cfg = TrainConfig(data=str(run / "shards"), out=str(base), tokenizer=str(run / "tokenizer.json"),
                      depth=p["depth"], n_embd=p.get("n_embd"), n_head=p.get("n_head"),
                      tie_embeddings=p.get("tie_embeddings"),
                      context_len=p["context_len"], batch_size=p["batch_size"], steps=p["steps"],
                      lr=p["lr"], warmup=p["warmup"], eval_every=max(1, p["steps"] // 4),
                      eval_batches=VAL_BATCHES, final_eval_batches=VAL_BATCHES,
                      sample_prompt=SAMPLE_PROMPTS[1].format(**famous(World.load(run / "world"))),
                      ckpt_every=max(1, p["steps"] // 4), log_every=10)
    if (base / "trainer_state.json").exists():
        cfg.resume = str(base)
    r = train(cfg)
    if r.interrupted:
        raise KeyboardInterrupt
    return {"steps": r.steps, "tokens_seen": r.tokens_seen, "train_loss": round(r.final_loss, 4),
            "val_loss": round(r.val_loss, 4), "tokens_per_s": round(r.tokens_per_s)}


def stage_evals(run, p):
    ctx = context_for(run / "base", limit=p["eval_limit"])
    results = run_evals(ctx)
    write_json(run / "base" / "evals.json", {k: {x: y for x, y in r.items() if x != "table"}
                                             for k, r in results.items()})
    print(format_table(results), file=sys.stderr)
    return _eval_numbers(results)


def _eval_numbers(results):
    out = {}
    if "val_loss" in results.get("val_loss", {}):
        out["val_loss"] = round(results["val_loss"]["val_loss"], 4)
        out["bits_per_byte"] = round(results["val_loss"]["bits_per_byte"], 4)
    for b, r in results.get("cloze", {}).get("buckets", {}).items():
        out[f"recall_{b}"] = round(r["accuracy"], 4)
    for g, r in results.get("regurgitation", {}).get("groups", {}).items():
        out[f"verbatim_{g}"] = round(r["verbatim_fraction"], 4)
    for k, r in results.get("few_shot", {}).get("shots", {}).items():
        out[f"few_shot_{k}"] = round(r["accuracy"], 4)
    if "copied" in results.get("copy", {}):
        out["copy"] = round(results["copy"]["copied"], 4)
    return out


# the famous person's facts come out right; the rare one's (read in one document) are
# made up: the fact check marks where
SAMPLE_PROMPTS = ["Once upon a time", "{person} was born in", "{rare_person} was born in",
                  "The capital of {country} is", "{city} is a city"]


def famous(world):
    """{"person", "country", "city"}: the most written-about of each type (names), and
    "rare_person": the first person of the world's "one" bucket (seen in one document)."""
    out = {"person": "Ana", "country": "Velmar", "city": "Tarsk", "rare_person": "Ana"}
    for t in ("person", "country", "city"):
        ents = [e for e in world.entities.values() if e.type == t]
        if ents:
            out[t] = max(ents, key=lambda e: world.exposure[e.id]).name
    out["rare_person"] = next((e.name for e in world.entities.values()
                               if e.type == "person" and world.bucket[e.id] == "one"), out["person"])
    return out


def stage_samples(run, p):
    world = World.load(run / "world")
    prompts = [t.format(**famous(world)) for t in SAMPLE_PROMPTS][:p["samples"]]
    engine = Engine.from_checkpoint(run / "base")
    completions = engine.generate(prompts, temperature=0.8, top_k=50, seed=0,
                                  max_tokens=p["sample_tokens"], stop=[engine.bos_id])
    samples = []
    for q, c in zip(prompts, completions):       # every stated fact checked against the world
        claims = factcheck.check(world, q + c.text, start=len(q))
        right, wrong = factcheck.tally(claims)
        samples.append({"prompt": q, "text": c.text, "finish_reason": c.finish_reason, "facts_right": right,
                        "facts_wrong": wrong, "checked": factcheck.marked(q + c.text, claims)[len(q):]})
    write_json(run / "base" / "samples.json", samples)
    for sample in samples:
        print(f"\n{_sample_text(sample)}", file=sys.stderr)
    return {"facts_right": sum(x["facts_right"] for x in samples),
            "facts_wrong": sum(x["facts_wrong"] for x in samples), "samples": samples}


def _sample_text(sample):
    """A base-model sample for the console: the prompt, a visible seam, the continuation
    with its facts checked."""
    return (f"  [prompt] {sample['prompt']} [the model:]{sample.get('checked', sample['text'])}\n"
            f"  ({sample.get('facts_right', 0)} stated facts right, {sample.get('facts_wrong', 0)} wrong; "
            f"{sample['finish_reason']})")


# ---- post-training: what the base model knows -> conversations -> SFT -> chat evals ------

def stage_probe(run, p):
    engine = Engine.from_checkpoint(run / "base")
    config = ProbeConfig(k=p["probe_k"], limit=p["probe_limit"])
    with tqdm(desc="probe", unit="fact", file=sys.stderr) as bar:
        def tick(done, total):
            bar.total = total
            bar.update(done - bar.n)
        records = probe_facts(engine, World.load(run / "world"), config, progress=tick)
    write_probe(records, run / "chat" / "probe.jsonl")
    return {"facts": len(records), **{f"known_{b}": round(k, 4) for b, _, k, _ in probe_summary(records)}}


def stage_chat_data(run, p):
    """The conversations, without those with an exchange longer than the context (a small
    profile's context holds no pasted search results)."""
    index = BM25Index.build(clean_documents(run))
    index.save(run / "chat" / "search.npz")
    base = run / "base"
    model = checkpoint.load_checkpoint(base)[0]
    config = DataConfig(size=p["chat_size"], eval_size=p["chat_eval_size"],
                        identity=dataclasses.replace(IDENTITY, parameters=num_params(model)))
    records = generate_conversations(World.load(run / "world"), config, read_probe(run / "chat" / "probe.jsonl"),
                                     index)
    tok = Tokenizer.load(run / "tokenizer.json")
    kept, dropped = fitting(records, tok, model.context_len + 1)
    write_conversations(kept, run / "chat" / "conversations.jsonl")
    return {"conversations": len(kept), "too_long": dropped,
            "train": sum(r["split"] == "train" for r in kept), "passages": len(index.texts)}


def stage_sft(run, p):
    out = run / "sft"
    resume = (out / "trainer_state.json").exists()
    config = chat_sft.SFTConfig(ckpt=str(run / "base"), out=str(out), data=str(run / "chat" / "conversations.jsonl"),
                                steps=p["sft_steps"], batch_size=p["sft_batch"], lr=p["sft_lr"],
                                eval_every=max(1, p["sft_steps"] // 4), log_every=10, progress=True,
                                resume=resume, force=out.exists() and not resume)
    r = chat_sft.sft(config)
    if r.interrupted:
        raise KeyboardInterrupt
    return {"steps": r.steps, "train_loss": round(r.final_loss, 4), "val_loss": round(r.val_loss, 4),
            "tokens_per_s": round(r.tokens_per_s)}


def stage_chat_evals(run, p):
    """The chat evals on the base model (chat/base_chat_evals.json) and the SFT model
    (sft/chat_evals.json, written last): the difference SFT makes."""
    probe, index = run / "chat" / "probe.jsonl", run / "chat" / "search.npz"
    out = {}
    for name, ckpt, path in (("base", run / "base", run / "chat" / "base_chat_evals.json"),
                             ("sft", run / "sft", run / "sft" / "chat_evals.json")):
        results = evaluate_checkpoint(ckpt, run / "world", probe, index, limit=p["chat_eval_limit"])
        print(f"chat evals, {name} model:\n{chat_table(results)}", file=sys.stderr)
        write_json(path, results)
        out[name] = chat_numbers(results)
    return out


def _rl(run, p, task, sub):
    out = run / sub
    resume = (out / "trainer_state.json").exists()
    config = RLConfig(ckpt=str(run / "sft"), out=str(out), task=task, world=str(run / "world"),
                      steps=p[f"{sub}_steps"], prompts=p["rl_prompts"], group=p["rl_group"], lr=p[f"{sub}_lr"],
                      temperature=p[f"{sub}_temperature"],
                      max_tokens=p["rl_max_tokens"], eval_every=max(1, p[f"{sub}_steps"] // 5),
                      eval_prompts=p["rl_eval_prompts"], k=p["rl_k"], progress=True,
                      resume=resume, force=out.exists() and not resume)
    r = rl(config)
    if r["interrupted"]:
        raise KeyboardInterrupt
    first, last = r["history"][0], r["history"][-1]
    return {"steps": r["steps"], "pass1_before": first.get("pass1"), "pass1_after": last.get("pass1"),
            f"pass{config.k}_before": first.get(f"pass{config.k}"), f"pass{config.k}_after": last.get(f"pass{config.k}")}


def stage_rl(run, p):
    """Practice on word problems (DeepSeek-R1's lesson), from the SFT model."""
    return _rl(run, p, "word_problems", "rl")


def stage_rl_countdown(run, p):
    """Practice on the puzzle SFT learned from an imperfect demonstrator (AlphaGo's lesson)."""
    return _rl(run, p, "countdown", "rl_countdown")


def stage_rl_evals(run, p):
    """SFT vs the RL models on held-out items (rl/evals.py) -> rl_evals.json."""
    results = rl_evals(World.load(run / "world"), run / "sft", run / "rl", run / "rl_countdown",
                       n=p["rl_eval_prompts"], k=p["rl_k"], max_tokens=p["rl_max_tokens"],
                       temperature=p["rl_temperature"])
    print(f"RL evals:\n{rl_table(results)}", file=sys.stderr)
    write_json(run / "rl_evals.json", results)
    m = results["models"]
    return {"word_problems": {k: round(m[k]["word_problems"]["accuracy"], 3) for k in m},
            "countdown": {k: round(m[k]["countdown"]["accuracy"], 3) for k in m},
            "demonstrator": round(results["demonstrator"], 3)}


# ---- RLHF: a reward model from the labeller's pairs, RL against it, and an arena ------------

def stage_reward_model(run, p):
    """Sample, label, train (rlhf/reward_model.py) -> rlhf/pairs.jsonl, rlhf/reward_model/."""
    labeller = Labeller.load(run / "world", run / "base")
    cfg = RMConfig(prompts=p["rm_prompts"], held_out=p["rm_held_out"], k=p["rm_k"], max_tokens=p["rlhf_max_tokens"])
    r = make_reward_model(run / "sft", run / "rlhf" / "reward_model", labeller, cfg)
    out = {k: round(r[k], 4) if isinstance(r[k], float) else r[k]
           for k in ("accuracy", "train_accuracy", "pairs", "held_out_pairs", "seconds_data", "seconds_training")}
    parts = r["by_part"]
    return dict(out, ceiling=round(parts["ceiling"], 4),
                by_part={k: {"pairs": v["pairs"], "accuracy": round(v["accuracy"], 4)} for k, v in parts["parts"].items()})


def stage_rlhf(run, p):
    """RL against the reward model past the true-score peak (rlhf/policy: the peak,
    rlhf/policy_last: the end, hacked), then the same with a KL penalty (rlhf/policy_kl,
    rlhf/policy_kl_last) -> rlhf/curves.json."""
    out = {}
    for name, beta in (("policy", 0.0), ("policy_kl", p["rlhf_beta"])):
        cfg = RLHFConfig(ckpt=str(run / "sft"), reward_model=str(run / "rlhf" / "reward_model"),
                         out=str(run / "rlhf" / name), world=str(run / "world"), base=str(run / "base"),
                         metrics=str(run / "metrics.jsonl"), steps=p["rlhf_steps"], prompts=p["rlhf_prompts"],
                         group=p["rlhf_group"], max_tokens=p["rlhf_max_tokens"], lr=p["rlhf_lr"], beta=beta,
                         eval_every=p["rlhf_eval_every"], eval_prompts=p["rlhf_eval_prompts"], hack=True,
                         force=True, progress=True)
        r = rlhf(cfg)
        evals = [h for h in r["history"] if "eval_true" in h]
        out[name] = {"beta": beta, "sft_true": evals[0]["eval_true"], "peak_step": r["peak"]["step"],
                     "peak_true": r["peak"]["eval_true"], "peak_rm": r["peak"]["eval_rm"],
                     "last_true": evals[-1]["eval_true"], "last_rm": evals[-1]["eval_rm"],
                     "seconds": round(r["seconds"], 1)}
        out[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in out[name].items()}
        out[name]["history"] = r["history"]
    write_json(run / "rlhf" / "curves.json", out)
    return {name: {k: v for k, v in o.items() if k != "history"} for name, o in out.items()}


ARENA = (("base", "base"), ("sft", "sft"), ("rl", "rl"), ("rl_countdown", "rl_countdown"),
         ("rlhf (peak)", "rlhf/policy"), ("rlhf (last step)", "rlhf/policy_last"),
         ("rlhf + KL (last step)", "rlhf/policy_kl_last"))


def stage_arena(run, p):
    """Every checkpoint of the run against every other (rlhf/arena.py) -> arena.json, arena.md."""
    found = [(name, run / sub) for name, sub in ARENA if (run / sub / "config.json").exists()]
    labeller = Labeller.load(run / "world", run / "base")
    n = p["arena_prompts"]
    result = arena([f for f, _ in found], [c for _, c in found], labeller, n, n, n,
                   max_tokens={"open_ended": p["rlhf_max_tokens"], "word_problems": p["rl_max_tokens"],
                               "countdown": 32}, seed=0)
    table = arena_table(result)
    print(f"arena:\n{table}", file=sys.stderr)
    atomic_write(run / "arena.md", table + "\n")
    write_json(run / "arena.json", result)
    return {"ratings": {m["name"]: round(m["bt"]) for m in result["models"]}}


POST_TRAINING = ("probe", "chat_data", "sft", "chat_evals", "rl", "rl_countdown", "rl_evals", "reward_model", "rlhf",
                 "arena")

STAGES = [("world", stage_world), ("crawl", stage_crawl), ("clean", stage_clean),
          ("tokenizer", stage_tokenizer), ("shards", stage_shards), ("pretrain", stage_pretrain),
          ("evals", stage_evals), ("samples", stage_samples), ("probe", stage_probe),
          ("chat_data", stage_chat_data), ("sft", stage_sft), ("chat_evals", stage_chat_evals),
          ("rl", stage_rl), ("rl_countdown", stage_rl_countdown), ("rl_evals", stage_rl_evals),
          ("reward_model", stage_reward_model), ("rlhf", stage_rlhf), ("arena", stage_arena)]

LECTURE = {   # stage -> the part of the lecture it is, printed when it starts
    "world": "the data: a generated world whose every fact is known",
    "crawl": "the data: that world as web pages (spam, duplicates, personal data included)",
    "clean": "1. download and preprocess the internet (FineWeb-style cleaning)",
    "tokenizer": "2. tokenization (byte-level BPE)", "shards": "2. the corpus as token ids",
    "pretrain": "3. pre-training the network (the base model)",
    "evals": "4. what the base model knows (recall by exposure, regurgitation)",
    "samples": "4. inference: the base model dreams documents",
    "probe": "post-training: which facts does the base model know?",
    "chat_data": "post-training: conversations as data",
    "sft": "post-training: supervised fine-tuning into an assistant",
    "chat_evals": "post-training: the assistant's evals (identity, I don't know, tools, thinking)",
    "rl": "RL: practice on word problems", "rl_countdown": "RL: practice on a countdown puzzle",
    "rl_evals": "RL: what practice changed",
    "reward_model": "RLHF: a reward model from (simulated) human preferences",
    "rlhf": "RLHF: RL against the reward model, and reward hacking",
    "arena": "keeping track of models: an arena"}

ARTIFACTS = {   # the file whose existence marks a stage as done (written last, atomically)
    "world": "world/stats.json", "crawl": "crawl/crawl.json", "clean": "clean/funnel.json",
    "tokenizer": "tokenizer.json", "shards": "shards/shards.json", "pretrain": None,
    "evals": "base/evals.json", "samples": "base/samples.json", "probe": "chat/probe.jsonl",
    "chat_data": "chat/conversations.jsonl", "sft": None, "chat_evals": "sft/chat_evals.json",
    "rl": None, "rl_countdown": None, "rl_evals": "rl_evals.json",
    "reward_model": "rlhf/reward_model/config.json", "rlhf": "rlhf/curves.json", "arena": "arena.json",
}
RLHF_CHECKPOINTS = ("reward_model", "policy", "policy_last", "policy_kl", "policy_kl_last")
CHAT_FILES = ("probe.jsonl", "search.npz", "conversations.jsonl", "base_chat_evals.json")


# the run directory's sub-directories and what writes them: --force removes their files
PARTS = {"world": store.OUTPUT, "crawl": pages.OUTPUT, "clean": pipeline.OUTPUT,
         "shards": shards.OUTPUT, "base": checkpoint.OUTPUT}
OUTPUT = Output("speedrun", ("speedrun.json", "tokenizer.json", "metrics.jsonl", "rl_evals.json", "arena.json",
                            "arena.md", "rlhf/pairs.jsonl", "rlhf/curves.json", "report.md", "report.html",
                            "report/*.png") + tuple(
    f"rlhf/{sub}/{name}" for sub in RLHF_CHECKPOINTS for name in sorted(chat_sft.CHECKPOINT_FILES)) + tuple(
    f"{sub}/{name}" for sub, out in PARTS.items() for name in out.files + (MARKER,)) + tuple(
    f"chat/{name}" for name in CHAT_FILES) + tuple(
    f"sft/{name}" for name in sorted(chat_sft.CHECKPOINT_FILES | {"chat_evals.json"})) + tuple(
    f"{sub}/{name}" for sub in ("rl", "rl_countdown") for name in sorted(chat_sft.CHECKPOINT_FILES)),
    meta=(("speedrun.json", ("profile", "stages")),))


TRAINED = {"pretrain": ("base", "steps"), "sft": ("sft", "sft_steps"), "rl": ("rl", "rl_steps"),
           "rl_countdown": ("rl_countdown", "rl_countdown_steps")}   # stage -> (dir, profile's steps)


def done(run, stage, p):
    if stage in TRAINED:
        sub, steps = TRAINED[stage]
        state = run / sub / "trainer_state.json"
        return state.exists() and json.loads(state.read_text())["step"] >= p[steps]
    return (run / ARTIFACTS[stage]).exists()


# ---- the driver -------------------------------------------------------------------------

def speedrun(profile="default", name=None, fresh=False, threads=None, start=None, only=None, minutes=None):
    """Run (or resume) every stage; returns the summary dict (also runs/<name>/speedrun.json).

    start: redo this stage and every later one (--from); only: redo just this stage (--only);
    minutes: size pretraining to a time budget (--minutes; the run is runs/<profile>-<N>min)."""
    if profile not in PROFILES:
        raise UserError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    if dist.launched_size() > 1:
        raise UserError("the speedrun runs in one process (every rank would write the same files): run it "
                        "without mpirun; `mpirun -np R minillm pretrain ...` trains data-parallel")
    p = PROFILES[profile]
    names = [stage for stage, _ in STAGES if p["post_training"] or stage not in POST_TRAINING]
    for flag, stage in (("--from", start), ("--only", only)):
        if stage is not None and stage not in names:
            raise UserError(f"{flag} {stage}: no such stage in the {profile} profile; the stages are {', '.join(names)}")
    if start and only:
        raise UserError("--from and --only do not go together: --from redoes a stage and all after it, "
                        "--only redoes one")
    run = runs_dir() / (name or (f"{profile}-{minutes:g}min" if minutes else profile))
    prepare_dir(run, OUTPUT, force=fresh, out_flag="--name")   # resumes; --force starts afresh
    if threads:
        clib.set_num_threads(threads)
    summary_path = run / "speedrun.json"
    summary = read_json(summary_path, "speedrun summary") if summary_path.exists() else {}
    if summary.get("profile") not in (None, profile):
        raise UserError(f"{run} was made with profile {summary['profile']!r}; use --name or --force")
    p = with_budget(p, minutes, summary, run)
    summary.update(profile=profile, settings=p, run=str(run))
    stages = summary.setdefault("stages", {})
    t_all, rerun = time.perf_counter(), False
    for stage, run_stage in STAGES:
        if stage not in names:
            continue
        if only and stage != only:
            if names.index(stage) < names.index(only) and not done(run, stage, p):
                raise UserError(f"--only {only} needs the stages before it done, and {stage} is not: "
                                f"run `minillm speedrun` (it resumes) or --from {stage}")
            continue
        if stage in (start, only):
            rerun = True
        elif not rerun and done(run, stage, p):
            stages.setdefault(stage, {})["skipped"] = True
            print(f"[speedrun] {stage}: done already, skipped", file=sys.stderr)
            continue
        if rerun:
            forget(run, stage)
        rerun = True                      # every later stage depends on this one's output
        print(f"\n[speedrun] {stage}: {LECTURE[stage]} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        numbers = run_stage(run, p)
        stages[stage] = {"seconds": round(time.perf_counter() - t, 1), **numbers}
        print(f"[speedrun] {stage} done in {stages[stage]['seconds']:.1f}s: "
              f"{stage_numbers(stage, stages[stage])}", file=sys.stderr, flush=True)
        write_json(summary_path, summary)
        refresh_report(run)
    if only and only != names[-1]:
        print(f"[speedrun] the stages after {only} still hold what they made from its old output; "
              f"`minillm speedrun --from {only}` redoes them too", file=sys.stderr)
    summary["seconds_this_call"] = round(time.perf_counter() - t_all, 1)
    summary["seconds_total"] = round(sum(s.get("seconds", 0) for s in stages.values()), 1)
    write_json(summary_path, summary)
    refresh_report(run)
    return summary


def forget(run, stage):
    """Before a stage is redone: drop what would make it resume instead of start again."""
    if stage == "pretrain" and (run / "base").exists():
        remove_output(run / "base", checkpoint.OUTPUT)   # trained on data just replaced
    if stage == "sft":                                   # from a base or data just replaced
        for name in ("trainer_state.json", "chat_evals.json"):
            (run / "sft" / name).unlink(missing_ok=True)
    if stage in ("rl", "rl_countdown"):                  # from an SFT model just replaced
        (run / stage / "trainer_state.json").unlink(missing_ok=True)


# ---- --minutes: a time budget ------------------------------------------------------------

def with_budget(p, minutes, summary, run):
    """The profile with its pretraining steps sized to `minutes` of wall time (or p itself).

    The throughput of this machine is measured on the profile's model (a few training
    steps on random tokens); the other stages are assumed to take what they took in the
    profile's reference run, scaled by the same speed ratio. A budget is decided once per
    run: resuming reuses it."""
    made = summary.get("budget")
    if minutes is None:
        if made:
            raise UserError(f"{run} was made with a {made['minutes']:g}-minute budget: pass --minutes "
                            f"{made['minutes']:g} to resume it, or --force to start again")
        return p
    if minutes <= 0:
        raise UserError(f"--minutes must be positive, got {minutes:g}")
    if summary.get("stages") and not made:
        raise UserError(f"{run} was made without a budget; use --name for a budgeted run or --force")
    if made and made["minutes"] != minutes:
        raise UserError(f"{run} was made with a {made['minutes']:g}-minute budget, not {minutes:g}; "
                        "use --name or --force")
    if not made:
        tokens_per_s = measure_throughput(p)
        steps, other = plan_budget(p, minutes, tokens_per_s)
        made = {"minutes": minutes, "tokens_per_s": round(tokens_per_s), "steps": steps,
                "other_minutes": round(other / 60, 1)}
        summary["budget"] = made
    fixed = p["steps"] * _scaled(p, made["tokens_per_s"])[1]
    print(f"[speedrun] budget {minutes:g} min: this machine does {made['tokens_per_s']:,} tokens/s on this "
          f"model; the other stages take ~{made['other_minutes']:g} min, so pretraining gets {made['steps']:,} "
          f"steps (the {p['steps']:,} of the fixed profile take ~{fixed / 60:.0f} min here)",
          file=sys.stderr, flush=True)
    return dict(p, steps=made["steps"], warmup=min(p["warmup"], made["steps"] // 10))


def plan_budget(p, minutes, tokens_per_s):
    """(pretraining steps, seconds for everything else) that fit `minutes` on a machine whose
    measure_throughput() is tokens_per_s: the reference run's times, scaled by the speed ratio."""
    other, step_seconds = _scaled(p, tokens_per_s)
    steps = int((minutes * 60 - other) / step_seconds)
    least = max(50, p["steps"] // 10)
    if steps < least:
        need = (other + least * step_seconds) / 60
        raise UserError(f"{minutes:g} minutes is too short for the {p.get('world')} profile on this machine "
                        f"(the stages besides pretraining take ~{other / 60:.0f} min): give at least {need:.0f}")
    return steps, other


def _scaled(p, tokens_per_s):
    """(seconds for the stages besides pretraining, seconds per pretraining step) on a
    machine whose measure_throughput() is tokens_per_s: the reference run's, scaled."""
    ref = p["reference"]
    slower = ref["probe_tokens_per_s"] / tokens_per_s
    return ref["other_seconds"] * slower, ref["pretrain_step_seconds"] * slower


def measure_throughput(p, steps=3):
    """Training tokens/s of the profile's model on this machine: a few forward + backward +
    AdamW steps on random tokens, after one to warm up."""
    config = model_config(p, p["vocab_size"])
    params = gpt.init_params(config, seed=0)
    opt = AdamW(params)
    rng = np.random.default_rng(0)
    x = rng.integers(0, config.vocab_size, (p["batch_size"], config.context_len))   # (B, T)
    y = rng.integers(0, config.vocab_size, x.shape)
    t = 0.0
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss, cache = gpt.forward(params, config, x, y)
        opt.step(0.0, grads=gpt.backward(cache), loss=loss)
        t = t + time.perf_counter() - t0 if i else 0.0
    return steps * x.size / t


def refresh_report(run):
    """Rewrite the report card (report.py) with what the stages so far have left. A report
    that cannot be written costs a warning, never the run."""
    try:
        write_report(run)
    except (UserError, OSError, ValueError, KeyError, TypeError) as e:
        print(f"[speedrun] report not refreshed ({type(e).__name__}: {e}); "
              f"`minillm report --run {run}` retries", file=sys.stderr)


def stage_numbers(stage, s):
    """One line of a stage's key numbers, from its entry in speedrun.json."""
    numbers = ", ".join(f"{k} {v}" for k, v in s.items()
                        if k not in ("seconds", "skipped", "samples", "base", "sft", "policy", "policy_kl", "by_part"))
    if stage == "rlhf" and "policy" in s:          # SFT -> the peak -> the last step, without and with KL
        numbers = "; ".join(f"{name}: true score {r['sft_true']:.3f} -> {r['peak_true']:.3f} (peak, step "
                            f"{r['peak_step']}) -> {r['last_true']:.3f}, reward model {r['peak_rm']:.2f} -> "
                            f"{r['last_rm']:.2f}" for name, r in ((n, s[n]) for n in ("policy", "policy_kl")))
    if stage == "chat_evals" and "sft" in s:       # base -> SFT, the main rate of each eval
        numbers = ", ".join(f"{k} {_pct(s['base'].get(k))} -> {_pct(s['sft'][k])}" for k in CHAT_SHOWN
                            if k in s["sft"])
    return numbers


def print_summary(summary):
    st, run = summary["stages"], summary["run"]
    post = summary["settings"].get("post_training", False)
    print(f"\nspeedrun ({summary['profile']} profile): {summary['seconds_total']:.0f}s of stage time "
          f"({summary['seconds_this_call']:.0f}s in this call)")
    for stage, _ in STAGES:
        if stage in POST_TRAINING and not post:
            continue
        s = st.get(stage, {})
        when = f"{s['seconds']:7.1f}s" if "seconds" in s else "   -    "
        print(f"  {stage:<10} {when}  {'(skipped: done) ' if s.get('skipped') else ''}{stage_numbers(stage, s)}")
    for sample in st.get("samples", {}).get("samples", []):
        print(f"\n{_sample_text(sample)}")
    print(f"\noutputs: {run}/  (world/ crawl/ clean/ tokenizer.json shards/ base/ chat/ sft/ rl/ metrics.jsonl)")
    print(f"  checkpoint {run}/base   evals {run}/base/evals.json   summary {run}/speedrun.json")
    print(f"  report card {run}/report.html (one file, plots inside) and {run}/report.md")
    if post:
        print(f"  assistant {run}/sft   chat evals {run}/sft/chat_evals.json (base model: {run}/chat/base_chat_evals.json)")
        print(f"  RL models {run}/rl (word problems) {run}/rl_countdown   RL evals {run}/rl_evals.json")
        print(f"  RLHF {run}/rlhf/ (reward_model, policy = the true-score peak, policy_last, policy_kl; "
              f"curves.json)   arena {run}/arena.md")
        print(f"  next: minillm chat --ckpt {run}/rl")
    else:
        print(f"  next: minillm sample --ckpt {run}/base --prompt \"Once upon a time\"")


CHAT_SHOWN = ("identity", "world_qa", "hallucination", "false_idk", "rare", "calculator", "think", "spelling")


def _pct(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def add_arguments(parser):
    parser.add_argument("--profile", default="default", choices=list(PROFILES),
                        help="sizes of everything (default: default, ~35 min on 2 cores; smoke: seconds)")
    parser.add_argument("--name", help="run directory runs/<name> (default: the profile's name)")
    parser.add_argument("--force", "--fresh", dest="fresh", action="store_true",
                        help="start the run again: " + FORCE_HELP)
    parser.add_argument("--threads", type=thread_count, help="kernel threads (default all cores)")
    parser.add_argument("--from", dest="start", metavar="STAGE",
                        help="redo this stage and every one after it (the stages: " + ", ".join(s for s, _ in STAGES) + ")")
    parser.add_argument("--only", metavar="STAGE", help="redo just this stage (the ones before it must be done)")
    parser.add_argument("--minutes", type=float, metavar="N",
                        help="a time budget: measure this machine's training speed and size pretraining to "
                             "finish in about N minutes (run directory runs/<profile>-<N>min)")


def run(args):
    summary = speedrun(args.profile, args.name, args.fresh, args.threads, args.start, args.only, args.minutes)
    print_summary(summary)
    return 0
