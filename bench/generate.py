"""Inference speed: minillm's KV-cache engine against PyTorch and llama2.c's run.c.

    python bench/generate.py --quick                     # stories15M shape, 1 and 2 threads
    python bench/generate.py                             # + the speedrun's default model
    python bench/generate.py --runc /tmp/llama2c/run     # + run.c side by side
    python bench/generate.py --quick --isa avx2          # the AVX2 path (bench/isa.py); build
                                                         # run.c with -march=x86-64-v3 for it

Measured at batch 1 on random weights (the same weights in every implementation):
  decode   tokens/s of greedy generation: a 1-token prompt (token 1, run.c's BOS), then
           context_len - 1 new tokens (255 for stories15M), each chosen by argmax and fed back;
           timed as run.c's "achieved tok/s" is, from the first new token to the last (the
           first step, with its cold caches and setup, is not counted: in any of the three)
  prefill  tokens/s of one forward pass over a 128-token prompt that fills the cache
           (per round the median of 3 such passes after a warm-up one)
  rollout  RL's sampling (rl/grpo.py): 8 answers at temperature 1 to one 64-token prompt,
           128 new tokens each, on the speedrun shape; tokens/s over the whole call (one
           shared prefill, then the 8 rows decoded as a batch); minillm with log-probs kept
Shapes:
  stories15M  llama2.c's stories15M: dim 288, 6 layers, 6 heads, hidden 768, vocab
              32000, seq_len 256, tied embeddings
  speedrun    the model `minillm speedrun` trains by default (minillm/speedrun.py)

Each implementation runs in its own process (minillm and PyTorch in worker processes of
this script, run.c as itself), so none measures with another library's threads or memory
in its process; the workers and run.c get the environment as it was before minillm set
its OpenMP defaults (GOMP_SPINCOUNT).

minillm: Engine.generate(temperature=0, logprobs=False) (the whole engine: sampling,
bookkeeping, text decoding). PyTorch: tests/torch_ref.py's TorchLlama with the same
weights, decoded by a KV-cache loop written here (preallocated cache tensors, F.scaled_
dot_product_attention over the filled part, torch.inference_mode). run.c (--runc PATH, built
with `make runomp` OUTSIDE this repository): the weights written in its legacy .bin format
with a tokenizer.bin whose token i prints as "[i]", so the token ids it generates are
read back from its output and compared with ours; its own "achieved tok/s" line is the
number. Without --runc, run.c is reported as not measured. Token 1's embedding row is
zeroed so that no implementation meets run.c's BOS stop early. Rounds of the
implementations alternate; medians are reported. Threads: clib.set_num_threads,
torch.set_num_threads, OMP_NUM_THREADS for run.c.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import isa

ROOT = Path(__file__).resolve().parents[1]
PREFILL_LEN = 128
ROLLOUT_PROMPT, ROLLOUT_GROUP, ROLLOUT_NEW = 64, 8, 128     # RL's rollouts: G answers to one prompt


def shapes():
    from minillm.nn.gpt import GPTConfig
    from minillm.speedrun import PROFILES, model_config

    default = PROFILES["default"]
    return {
        "stories15M": GPTConfig(vocab_size=32000, context_len=256, n_layer=6, n_head=6, n_kv_head=6,
                                n_embd=288, hidden_dim=768, tie_embeddings=True),
        "speedrun": model_config(default, default["vocab_size"]),
    }


def random_params(config, seed=0):
    from minillm.nn.gpt import init_params

    params = init_params(config, seed)
    params["tok_emb"][1] = 0.0      # token 1 (run.c's BOS, which stops it) is never the argmax
    # subtle: at init scale a tied model's logits are dominated by the input token's own
    # embedding, so greedy decoding repeats one token and "the tokens agree" would prove
    # little; 4x larger block weights make it wander over ~250 distinct tokens in 255 steps
    for name, w in params.items():
        if name.startswith("blocks.") and w.ndim == 2:
            w *= 4.0
    return params


# ---- minillm --------------------------------------------------------------------------

class _Pieces:
    """A tokenizer stand-in: token i reads "[i]" (like the tokenizer.bin given to run.c)."""

    def __init__(self, vocab_size):
        self.vocab_size, self.special_tokens = vocab_size, {}

    def decode_bytes(self, ids):
        return "".join(f"[{i}]" for i in ids).encode()

    def decode(self, ids):
        return self.decode_bytes(ids).decode()


def minillm_decode(engine, n_new):
    """Greedy tokens/s, timed as run.c times itself: from the first new token to the last."""
    stream = engine.stream([1], temperature=0, max_tokens=n_new, logprobs=False)
    t = None
    for _ in stream:
        t = t or time.perf_counter()
    tokens = stream.completion.tokens
    return (len(tokens) - 1) / (time.perf_counter() - t), tokens


def minillm_prefill(engine, prompt):
    """Prompt tokens/s of the engine's prefill: the model's forward filling a KV cache."""
    from minillm.generate.cache import KVCache
    from minillm.nn.gpt import logits_last

    cache = KVCache(engine.config, 1)
    t = time.perf_counter()
    logits_last(engine.params, engine.config, np.asarray([prompt]), cache.rows(0, 1))
    return len(prompt) / (time.perf_counter() - t)


# ---- PyTorch with a KV cache ----------------------------------------------------------

class TorchCached:
    """A KV-cache decode loop over tests/torch_ref.py's TorchLlama (same weights)."""

    def __init__(self, config, params, batch=1):
        import torch
        sys.path.insert(0, str(ROOT / "tests"))
        from torch_ref import TorchLlama, load_params

        self.torch, self.config = torch, config
        self.model = load_params(TorchLlama(config), params).eval()
        S, NKV, HD = config.context_len, config.n_kv_head, config.head_dim
        self.k = [torch.zeros(batch, NKV, S, HD) for _ in range(config.n_layer)]
        self.v = [torch.zeros(batch, NKV, S, HD) for _ in range(config.n_layer)]

    def forward(self, idx, pos0, rows=1):
        """logits (B, V) at the last of idx (B, T) at positions pos0.., filling cache rows :B
        (a one-row prefill with rows=G copies its keys and values into G rows: one shared
        prefill per prompt, as minillm's engine does)."""
        import torch.nn.functional as F
        from torch_ref import apply_rope, rmsnorm

        m, cfg = self.model, self.config
        (B, T), HD, L = idx.shape, cfg.head_dim, pos0 + idx.shape[1]
        freqs = m.freqs[pos0:L]
        x = m.tok_emb[idx]                                                       # (B, T, C)
        for blk, kc, vc in zip(m.blocks, self.k, self.v):
            h = rmsnorm(x, blk.attn_norm, cfg.norm_eps)
            q = apply_rope(F.linear(h, blk.wq).view(B, T, cfg.n_head, HD), freqs)
            k = apply_rope(F.linear(h, blk.wk).view(B, T, cfg.n_kv_head, HD), freqs)
            kc[:max(B, rows), :, pos0:L] = k.transpose(1, 2)
            vc[:max(B, rows), :, pos0:L] = F.linear(h, blk.wv).view(B, T, cfg.n_kv_head, HD).transpose(1, 2)
            y = F.scaled_dot_product_attention(q.transpose(1, 2), kc[:B, :, :L], vc[:B, :, :L],
                                               is_causal=T > 1, enable_gqa=cfg.n_kv_head != cfg.n_head)
            x = x + F.linear(y.transpose(1, 2).reshape(B, T, -1), blk.wo)
            h = rmsnorm(x, blk.mlp_norm, cfg.norm_eps)
            x = x + F.linear(F.silu(F.linear(h, blk.w_gate)) * F.linear(h, blk.w_up), blk.w_down)
        h = rmsnorm(x[:, -1], m.final_norm, cfg.norm_eps)
        return F.linear(h, m.tok_emb if cfg.tie_embeddings else m.lm_head)

    def rollout(self, prompt, group, n_new, seed=0):
        """tokens/s of G samples (temperature 1) continuing one prompt: one prefill, its cache
        copied into G rows, then G rows decoded together; timed from the prefill on."""
        torch = self.torch
        g = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            t = time.perf_counter()
            logits = self.forward(torch.tensor([prompt]), 0, rows=group).expand(group, -1)
            pos = len(prompt)
            for _ in range(n_new):
                token = torch.multinomial(torch.softmax(logits, -1), 1, generator=g)   # (G, 1)
                logits = self.forward(token, pos)
                pos += 1
            return group * n_new / (time.perf_counter() - t)

    def decode(self, n_new):
        """Greedy tokens/s, timed from the first new token to the last (as run.c does)."""
        torch = self.torch
        with torch.inference_mode():
            token, tokens = 1, []
            for pos in range(n_new):
                token = int(self.forward(torch.tensor([[token]]), pos)[0].argmax())
                tokens.append(token)
                if pos == 0:
                    t = time.perf_counter()
            return (n_new - 1) / (time.perf_counter() - t), tokens

    def prefill(self, prompt):
        torch = self.torch
        with torch.inference_mode():
            t = time.perf_counter()
            self.forward(torch.tensor([prompt]), 0)
            return len(prompt) / (time.perf_counter() - t)


def minillm_rollout(engine, prompt, group, n_new):
    """tokens/s of Engine.generate([prompt], n=G) at temperature 1 with the log-probabilities
    RL keeps (what rl/grpo.py's rollouts call), no stop token: G * n_new tokens."""
    t = time.perf_counter()
    out = engine.generate([prompt], n=group, temperature=1.0, max_tokens=n_new, seed=0, logprobs=True)
    assert sum(len(c.tokens) for c in out) == group * n_new
    return group * n_new / (time.perf_counter() - t)


# ---- llama2.c's run.c ------------------------------------------------------------------

def write_runc_files(model_path, tok_path, config, params):
    """run.c's inputs: the model in its legacy .bin (minillm export's writer, with the ids
    left where they are rather than moved to run.c's layout) and a tokenizer.bin whose
    token i prints as "[i]", so that run.c's output spells out the ids it generated."""
    from minillm.hub.llama2c import pack_tokenizer_bin, write_model_bin

    write_model_bin(model_path, config, params, np.arange(config.vocab_size))
    pieces = [(f"[{i}]".encode(), -float(i)) for i in range(config.vocab_size)]
    Path(tok_path).write_bytes(pack_tokenizer_bin(pieces))


def runc_decode(runc, model, tokenizer, threads, n_steps, env):
    env = dict(env, OMP_NUM_THREADS=str(threads))
    r = subprocess.run([runc, str(model), "-z", str(tokenizer), "-t", "0", "-n", str(n_steps)],
                       capture_output=True, text=True, env=env, timeout=600)
    m = re.search(r"achieved tok/s: ([0-9.]+)", r.stderr)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"run.c failed ({r.returncode}): {r.stderr.strip()[:300]}")
    return float(m.group(1)), [int(t) for t in re.findall(r"\[(\d+)\]", r.stdout)]


# ---- driver -----------------------------------------------------------------------------

def agree(a, b):
    """How many leading tokens two greedy runs share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


class Worker:
    """One implementation ("minillm" or "torch") on one shape in its own process, asked over
    a pipe to measure: each runs as it would alone, with no other library's threads or
    allocator in its process (in one shared process, whichever ran after PyTorch measured
    a few percent slower)."""

    def __init__(self, kind, shape, env):
        self.kind = kind
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", kind, "--shape", shape],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.kind} worker died (exit status {self.proc.wait()})")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def serve(kind, shape):
    """The worker's side: build the shape's random weights, then answer requests
    {"op": "decode" | "prefill", "threads": t} with {"tps": tokens/s[, "tokens": ids]}."""
    config = shapes()[shape]
    params = random_params(config)
    if kind == "minillm":
        from minillm.generate.engine import Engine
        from minillm import clib
        engine = Engine(params, config, _Pieces(config.vocab_size))
        set_threads, decode = clib.set_num_threads, lambda n: minillm_decode(engine, n)
        prefill = lambda prompt: minillm_prefill(engine, prompt)            # noqa: E731
        rollout = lambda prompt, g, n: minillm_rollout(engine, prompt, g, n)  # noqa: E731
    else:
        import torch
        ref = TorchCached(config, params)
        set_threads, decode, prefill = torch.set_num_threads, ref.decode, ref.prefill
        batched = TorchCached(config, params, batch=ROLLOUT_GROUP)
        rollout = batched.rollout
    decode(8)                                           # warm up (allocation, first touch)
    for line in sys.stdin:
        request = json.loads(line)
        set_threads(request["threads"])
        if request["op"] == "decode":
            tps, tokens = decode(config.context_len - 1)
            reply = {"tps": tps, "tokens": tokens}
        elif request["op"] == "rollout":
            reply = {"tps": median_of(lambda: rollout(request["prompt"], ROLLOUT_GROUP, ROLLOUT_NEW), 2)}
        else:
            reply = {"tps": median_of(lambda: prefill(request["prompt"]))}
        print(json.dumps(reply), flush=True)


def median_of(measure, n=3):
    """Median of n calls of measure() after a warm-up call: one prefill takes milliseconds."""
    measure()
    return statistics.median(measure() for _ in range(n))


def bench_shape(name, config, threads, rounds, runc, tmp, env):
    n_new = config.context_len - 1                  # fill the context
    runc_files = None
    if runc and name == "stories15M":
        runc_files = (tmp / f"{name}.bin", tmp / f"{name}.tok.bin")
        params = random_params(config)              # the workers make the same (seeded)
        write_runc_files(*runc_files, config, params)
    prompt = np.random.default_rng(0).integers(2, config.vocab_size, PREFILL_LEN).tolist()
    out = {t: {"ours": [], "torch": [], "runc": [], "ours_prefill": [], "torch_prefill": []} for t in threads}
    tokens = {}
    ours, theirs = Worker("minillm", name, env), Worker("torch", name, env)
    try:
        for _ in range(rounds):
            for t in threads:
                r = out[t]
                for key, worker in (("ours", ours), ("torch", theirs)):
                    reply = worker.ask(op="decode", threads=t)
                    r[key].append(reply["tps"])
                    tokens[key] = reply["tokens"]
                if runc_files:
                    tps, tokens["runc"] = runc_decode(runc, *runc_files, t, n_new + 1, env)
                    r["runc"].append(tps)
                r["ours_prefill"].append(ours.ask(op="prefill", threads=t, prompt=prompt)["tps"])
                r["torch_prefill"].append(theirs.ask(op="prefill", threads=t, prompt=prompt)["tps"])
    finally:
        ours.close()
        theirs.close()
    med = {t: {k: (statistics.median(v) if v else None) for k, v in out[t].items()} for t in threads}
    agreement = {k: agree(tokens["ours"], v) for k, v in tokens.items() if k != "ours"}
    return med, agreement, n_new


def bench_rollout(threads, rounds, env):
    """{threads: (minillm, torch) median tokens/s} of RL rollouts on the speedrun shape."""
    config = shapes()["speedrun"]
    prompt = np.random.default_rng(1).integers(2, config.vocab_size, ROLLOUT_PROMPT).tolist()
    out = {t: ([], []) for t in threads}
    ours, theirs = Worker("minillm", "speedrun", env), Worker("torch", "speedrun", env)
    try:
        for _ in range(rounds):
            for t in threads:
                out[t][0].append(ours.ask(op="rollout", threads=t, prompt=prompt)["tps"])
                out[t][1].append(theirs.ask(op="rollout", threads=t, prompt=prompt)["tps"])
    finally:
        ours.close()
        theirs.close()
    return {t: (statistics.median(a), statistics.median(b)) for t, (a, b) in out.items()}


def print_table(results):
    def fmt(x):
        return f"{x:9.1f}" if x is not None else f"{'n/m':>9}"

    def ratio(a, b):
        return f"{a / b:7.2f}x" if a and b else "      - "
    print(f"\ndecode: greedy, batch 1, context_len - 1 new tokens; prefill: {PREFILL_LEN}-token "
          "prompt (tokens/s)")
    print(f"{'shape':<11} {'thr':>3} {'minillm':>9} {'torch':>9} {'run.c':>9} {'vs torch':>8} {'vs run.c':>8}"
          f" | {'prefill':>9} {'torch':>9} {'vs torch':>8}")
    for (name, t), (m, _) in results.items():
        print(f"{name:<11} {t:>3} {fmt(m['ours'])} {fmt(m['torch'])} {fmt(m['runc'])} "
              f"{ratio(m['ours'], m['torch'])} {ratio(m['ours'], m['runc'])} | "
              f"{fmt(m['ours_prefill'])} {fmt(m['torch_prefill'])} {ratio(m['ours_prefill'], m['torch_prefill'])}")


def target(value, goal, met):
    return {"value": value, "goal": goal, "met": met}


def targets_of(results, threads):
    out = {}
    for name in ("speedrun", "stories15M"):
        for t in threads:
            m = results.get((name, t), ({}, None))[0]
            r = m["ours"] / m["torch"] if m.get("ours") and m.get("torch") else None
            out[f"decode_{name}_vs_torch_{t}t"] = target(None if r is None else round(r, 3), ">= 1.0",
                                                          None if r is None else r >= 1.0)
    for t in (1, 2):
        m = results.get(("stories15M", t), ({}, None))[0]
        r = m["ours"] / m["runc"] if m.get("ours") and m.get("runc") else None
        out[f"decode_stories15M_vs_runc_{t}t"] = target(None if r is None else round(r, 3), ">= 1.0",
                                                        None if r is None else r >= 1.0)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="stories15M only, fewer rounds (~1 minute)")
    parser.add_argument("--threads", type=int, default=None, help="one thread count (default: 1 and 2)")
    parser.add_argument("--runc", help="path of llama2.c's run binary (make runomp), built outside the repo")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per measurement (default 5, quick 2)")
    parser.add_argument("--worker", choices=("minillm", "torch"), help=argparse.SUPPRESS)  # internal
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    isa.add_argument(parser)
    args = parser.parse_args(argv)
    if args.worker:
        return serve(args.worker, args.shape)
    isa.select(args.isa)
    threads = [args.threads] if args.threads else [1, 2]
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(max(threads)))
    env = dict(os.environ)      # for the workers and run.c: before minillm sets its OpenMP defaults
    from minillm import clib

    if args.runc and not os.access(args.runc, os.X_OK):
        parser.error(f"--runc {args.runc} is not an executable")
    rounds = args.rounds or (2 if args.quick else 5)
    print(f"bench/generate.py: threads {threads}, {'quick' if args.quick else 'full'}, C kernels "
          f"{'on' if clib.c_available() else 'OFF'} ({clib.simd_level()}), load average "
          f"{os.getloadavg()[0]:.1f}, run.c {'at ' + args.runc if args.runc else 'not measured (no --runc)'}")
    print(isa.describe(max(threads)))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in shapes().items():
            if args.quick and name != "stories15M":
                continue
            med, agreement, n_new = bench_shape(name, config, threads, rounds, args.runc, Path(tmp), env)
            for t in threads:
                results[name, t] = (med[t], agreement)
            print(f"{name}: greedy tokens agree with minillm's for the first "
                  + ", ".join(f"{v} ({k})" for k, v in agreement.items()) + f" of {n_new}")
    print_table(results)
    print("n/m: not measured (run.c needs --runc; only stories15M is run there)")
    rollouts = bench_rollout(threads, rounds, env)
    print(f"\nRL rollouts, speedrun shape: {ROLLOUT_GROUP} samples at temperature 1 of one "
          f"{ROLLOUT_PROMPT}-token prompt, {ROLLOUT_NEW} new tokens each (tokens/s, prefill included)")
    print(f"{'thr':>3} {'minillm':>9} {'torch':>9} {'vs torch':>8}")
    targets = targets_of(results, threads)
    for t, (a, b) in rollouts.items():
        print(f"{t:>3} {a:9.1f} {b:9.1f} {a / b:7.2f}x")
        targets[f"rollout_speedrun_vs_torch_{t}t"] = target(round(a / b, 3), ">= 1.0", a / b >= 1.0)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(json.dumps({"targets": {name + isa.suffix(): value for name, value in targets.items()}}))


if __name__ == "__main__":
    main()
