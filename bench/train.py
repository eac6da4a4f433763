"""Training throughput and quality: minillm against the same model in PyTorch eager.

    python bench/train.py --quick --threads 2   # throughput of both shapes (~1 minute)
    python bench/train.py --quick --isa avx2    # the AVX2 path on any x86 machine (bench/isa.py)
    python bench/train.py --threads 2           # both shapes, SFT, peak RSS, tinyshakespeare run
    python bench/train.py --sft --threads 2     # only the SFT step against the pretraining step
    python bench/train.py --scaling             # only data parallelism: 1 and 2 ranks (mpirun)

Throughput is tokens/s of a full training step (forward, backward, clipping, AdamW) on
random tokens, for
    nanogpt   nanoGPT's CPU recipe shape: 4 layers, 4 heads, n_embd 128, context 64,
              batch 12, vocab 256 (bytes)
    speedrun  the model `minillm speedrun` trains by default, at its batch size
              (minillm/speedrun.py's PROFILES["default"])
PyTorch runs tests/torch_ref.py's TorchLlama (F.scaled_dot_product_attention) loaded with
the same weights, with torch.optim.AdamW(fused=True) when this torch supports it on CPU,
else foreach=True. Both use --threads (torch.set_num_threads, clib.set_num_threads,
OPENBLAS_NUM_THREADS). Rounds of minillm steps and torch steps alternate, so a noisy
neighbour hurts both alike; the median step time is reported, with minillm's split into
forward / backward / optimizer, and the model FLOPs per second (flops_per_token) as a
fraction of the machine's FMA peak (bench/isa.py). Targets: both shapes >= 1.1x PyTorch,
the speedrun shape >= 60% of peak.

SFT (not in --quick; alone with --sft, no PyTorch needed): on the speedrun shape, the
SFT step (chat/sft.py: a batch of whole conversations padded to the longest, the loss masked
to the assistant's tokens) against the pretraining step (full windows), rounds alternating.
Conversations have random lengths from T/4 to T + 1 tokens, the second half of each
supervised. Reported: real (not padding) tokens/s of the SFT step, its padded tokens/s, and
the pretraining step's tokens/s.

Quality (not in --quick): nanoGPT's CPU recipe, byte-level, on ../shared/data/text/
tinyshakespeare.txt: 2000 steps, batch 12, context 64, 4 layers x 4 heads x 128, AdamW
(0.9, 0.99) lr 1e-3 cosine to 1e-4, warmup 100, weight decay 0.1, clip 1.0, no dropout,
the last 10% as validation. Reported: the final validation loss over the WHOLE validation
split and the run's wall time. The reference is the issue's statement that nanoGPT needs
about 110 s for this at 2 threads on this machine (val loss 1.886); it is not re-measured
here (nanoGPT is not a dependency).

Peak RSS (not in --quick): a separate `train()` process of the speedrun's default model
and batch (2 steps, random shard) reports resource.getrusage's peak resident set size.

Scaling (not in --quick; alone with --scaling, which --quick shortens): data parallelism
(minillm/pretrain/dist.py) on the speedrun shape and its global batch, one thread per
rank, R = 1 (a plain process) and R = 2 (`mpirun -np 2`, each rank half the batch), runs
alternating. Each step: forward + backward on the rank's rows, the gradients' copy into
AdamW's flat buffer, a barrier (the wait for the slower rank, so that what follows is
communication only), the one Allreduce of that buffer (dist.sum_step), and AdamW.
Reported: tokens/s of the global batch, the speedup, and the Allreduce's time per step
and its share of the step. Needs mpirun and mpi4py (`pip install -e ".[mpi]"`); mpirun
binds one rank to each core when this process may use every core, else (taskset) lets
the ranks share this process's cores.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import isa

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare.txt"
NANOGPT_SECONDS, NANOGPT_VAL = 110.0, 1.886


def shapes():
    from minillm.nn.gpt import GPTConfig
    from minillm.speedrun import PROFILES, model_config

    default = PROFILES["default"]
    return {
        "nanogpt": (GPTConfig.from_depth(4, 256, 64, n_embd=128, n_head=4), 12),
        "speedrun": (model_config(default, default["vocab_size"]), default["batch_size"]),
    }


def make_minillm_step(config, params):
    from minillm.nn import gpt
    from minillm.nn.optim import AdamW

    opt = AdamW(params, betas=(0.9, 0.95), weight_decay=0.1)

    def step(x, y, split, loss_mask=None):
        t0 = time.perf_counter()
        loss, cache = gpt.forward(params, config, x, y, loss_mask=loss_mask)
        t1 = time.perf_counter()
        grads = gpt.backward(cache)
        t2 = time.perf_counter()
        opt.step(1e-4, grads=grads, clip=1.0, loss=loss)
        t3 = time.perf_counter()
        split.append((t1 - t0, t2 - t1, t3 - t2))
        return loss
    return step


def make_torch_step(config, params):
    import torch
    sys.path.insert(0, str(ROOT / "tests"))
    from torch_ref import TorchLlama, load_params

    from minillm.nn.optim import decays

    model = load_params(TorchLlama(config), params)
    named = dict(model.named_parameters())
    groups = [{"params": [p for n, p in named.items() if decays(n, p)], "weight_decay": 0.1},
              {"params": [p for n, p in named.items() if not decays(n, p)], "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), fused=True)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()                                  # raises here if fused is CPU-unsupported
        kind = "fused"
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), foreach=True)
        kind = "foreach"
    model.load_state_dict({n: torch.from_numpy(params[n]) for n in named}, strict=True)

    def step(x, y, split):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(x, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t3 = time.perf_counter()
        split.append((t1 - t0, t2 - t1, t3 - t2))
        return loss.item()
    return step, kind


def throughput(name, config, B, rounds, steps_per_round, warmup=2):
    """Median step seconds and splits of minillm and torch on one shape."""
    import numpy as np
    import torch

    from minillm.nn import gpt

    params = gpt.init_params(config, seed=0)
    torch_step, kind = make_torch_step(config, {n: a.copy() for n, a in params.items()})
    ours_step = make_minillm_step(config, params)
    rng = np.random.default_rng(0)
    xs = [rng.integers(0, config.vocab_size, (B, config.context_len)) for _ in range(4)]  # (B, T)
    batches = [(x, np.roll(x, -1, axis=1)) for x in xs]
    tbatches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    ours, theirs, scratch = [], [], []
    for i in range(warmup):
        ours_step(*batches[i % 4], scratch)
        torch_step(*tbatches[i % 4], scratch)
    for r in range(rounds):
        for i in range(steps_per_round):
            ours_step(*batches[i % 4], ours)
        for i in range(steps_per_round):
            torch_step(*tbatches[i % 4], theirs)
        print(f"  {name}: round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return summarize(ours, B * config.context_len), summarize(theirs, B * config.context_len), kind


def sft_batches(config, B, rng, n=4):
    """n SFT batches (x, y, w) as chat/sft.py makes them (collate): B conversations of
    random lengths, padded to the batch's longest, the second half of each supervised."""
    import numpy as np

    from minillm.chat.sft import collate

    batches = []
    for _ in range(n):
        examples = []
        for _ in range(B):
            L = int(rng.integers(config.context_len // 4, config.context_len + 2))
            ids = rng.integers(0, config.vocab_size, L)                              # (L,)
            examples.append((ids, (np.arange(L) >= L // 2).astype(np.uint8)))        # (L,) mask
        batches.append(collate(examples, pad_id=0))
    return batches


def sft_vs_pretrain(config, B, rounds, steps_per_round, warmup=2):
    """Median step time of an SFT step and a pretraining step on one shape, alternating."""
    import numpy as np

    from minillm.nn import gpt

    step = make_minillm_step(config, gpt.init_params(config, seed=0))
    rng = np.random.default_rng(0)
    pre = [rng.integers(0, config.vocab_size, (B, config.context_len + 1)) for _ in range(4)]
    pre = [(w[:, :-1], w[:, 1:], None) for w in pre]                                 # (B, T) each
    sft = sft_batches(config, B, rng)
    ours_pre, ours_sft, scratch = [], [], []
    for i in range(warmup):
        step(*pre[i % 4][:2], scratch)
        step(*sft[i % 4][:2], scratch, sft[i % 4][2])
    for r in range(rounds):
        for i in range(steps_per_round):
            step(*pre[i % 4][:2], ours_pre)
        for i in range(steps_per_round):
            x, y, w = sft[i % 4]
            step(x, y, ours_sft, w)
        print(f"  sft: round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    real = statistics.mean(int((y >= 0).sum()) for _, y, _ in sft)
    padded = statistics.mean(x.size for x, _, _ in sft)
    supervised = statistics.mean(float(w.sum()) for _, _, w in sft)
    out = summarize(ours_sft, real)
    out.update(padded_tokens_per_s=padded / (out["step_ms"] / 1e3), padding=1 - real / padded,
               supervised=supervised / real)
    return out, summarize(ours_pre, B * config.context_len)


def print_sft(config, B, sft, pre, threads):
    print(f"\nSFT step vs pretraining step, speedrun shape ({config.n_layer} layers, {config.n_embd} wide, "
          f"context {config.context_len}, batch {B}), {threads} threads; median step")
    print(f"sft       minillm  {sft['tokens_per_s']:>10,.0f} real tokens/s ({sft['padded_tokens_per_s']:,.0f} "
          f"padded; {sft['padding']:.0%} padding, {sft['supervised']:.0%} of real tokens supervised), "
          f"step {sft['step_ms']:.1f} ms")
    print(f"pretrain  minillm  {pre['tokens_per_s']:>10,.0f} tokens/s, step {pre['step_ms']:.1f} ms; "
          f"sft / pretrain (real tokens) {sft['tokens_per_s'] / pre['tokens_per_s']:.2f}x")


def summarize(splits, tokens):
    totals = [sum(s) for s in splits]
    med = statistics.median(totals)
    parts = [statistics.median(s[i] for s in splits) for i in range(3)]
    return {"step_ms": med * 1e3, "tokens_per_s": tokens / med, "forward_ms": parts[0] * 1e3,
            "backward_ms": parts[1] * 1e3, "optimizer_ms": parts[2] * 1e3, "steps": len(splits)}


def quality_run(threads, out_dir):
    """nanoGPT's CPU recipe on tinyshakespeare with minillm's pretrain loop."""
    from minillm.pretrain.train import TrainConfig, train

    config = TrainConfig(data=str(SHAKESPEARE), out=str(out_dir / "base"), n_layer=4, n_head=4,
                         n_embd=128, context_len=64, batch_size=12, steps=2000, lr=1e-3,
                         min_lr=1e-4, warmup=100, schedule="cosine", betas=(0.9, 0.99),
                         weight_decay=0.1, clip=1.0, eval_every=250, eval_batches=20,
                         final_eval_batches=0, ckpt_every=0, log_every=10, threads=threads,
                         seed=0, progress=sys.stderr.isatty())
    t0 = time.perf_counter()
    result = train(config)
    return result, time.perf_counter() - t0


RSS_SCRIPT = """
import sys, numpy as np
from minillm.pretrain.shards import write_shard
from minillm.speedrun import PROFILES
from minillm.pretrain.train import TrainConfig, train
d, p = sys.argv[1], PROFILES["default"]
write_shard(d + "/shard.bin", np.random.default_rng(0).integers(0, p["vocab_size"], 200_000), p["vocab_size"])
over = {k: p[k] for k in ("n_embd", "n_head", "n_kv_head", "hidden_dim") if k in p}
r = train(TrainConfig(data=d + "/shard.bin", out=d + "/base", depth=p["depth"], context_len=p["context_len"],
                      batch_size=p["batch_size"], steps=2, eval_every=0, eval_batches=1,
                      threads=int(sys.argv[2]), progress=False, **over))
print(r.peak_rss_mb)
"""


def peak_rss(threads):
    """Peak RSS (MB) of a separate process training the speedrun model for 2 steps."""
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, d, str(threads)], capture_output=True,
                             text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def flops_per_token(config):
    """Model FLOPs of one training step per token, counted as PaLM's MFU (and nanoGPT's
    and llm.c's estimates) count them: 6 per weight of every matmul (2 in the forward, 4
    in the backward: the input's and the weight's gradients), the LM head included, plus
    12 x T x C per layer for attention's scores and weighted sum (forward 4 x T x C over
    the whole T x T matrix, backward twice that; a causal kernel skips half of it)."""
    import numpy as np

    from minillm.nn import gpt

    shapes_ = gpt.param_shapes(config)
    linear = sum(int(np.prod(shape)) for name, shape in shapes_.items()
                 if name.split(".")[-1] in ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"))
    head = int(np.prod(shapes_["tok_emb" if config.tie_embeddings else "lm_head"]))   # (V, C)
    attention = 12 * config.n_layer * config.context_len * config.n_embd
    return 6 * (linear + head) + attention


def print_table(rows, threads, kind, peak=None):
    print(f"\ntraining throughput, {threads} threads (torch AdamW: {kind}); median step")
    print(f"{'shape':<10} {'':<8} {'tokens/s':>10} {'step ms':>9} {'fwd ms':>8} {'bwd ms':>8} "
          f"{'opt ms':>8} {'GFLOP/s':>8} {'% peak':>7}")
    for name, (ours, theirs) in rows.items():
        for who, r in (("minillm", ours), ("torch", theirs)):
            gflops = r["tokens_per_s"] * flops_per_token(shapes()[name][0]) / 1e9
            print(f"{name:<10} {who:<8} {r['tokens_per_s']:>10,.0f} {r['step_ms']:>9.1f} "
                  f"{r['forward_ms']:>8.1f} {r['backward_ms']:>8.1f} {r['optimizer_ms']:>8.1f} "
                  f"{gflops:>8.1f} {f'{100 * gflops / peak:.0f}%' if peak else '-':>7}")
        print(f"{name:<10} {'ratio':<8} {ours['tokens_per_s'] / theirs['tokens_per_s']:>10.2f}x")


def scaling_worker(steps, warmup=1):
    """One rank of the scaling measurement (scaling() starts it, under mpirun for R > 1):
    warmup + `steps` training steps of the speedrun shape on this rank's rows of a random
    global batch, one thread; rank 0 prints a JSON line of the steps' timings."""
    import numpy as np

    from minillm import clib
    from minillm.nn import gpt
    from minillm.nn.optim import AdamW
    from minillm.pretrain import dist

    world = dist.connect()
    clib.set_num_threads(1)
    config, B = shapes()["speedrun"]
    params = gpt.init_params(config, seed=0)
    opt = AdamW(params, betas=(0.9, 0.95), weight_decay=0.1,
                extra=dist.EXTRA_SLOTS if world.size > 1 else 0)
    rng = np.random.default_rng(world.rank)
    w = rng.integers(0, config.vocab_size, (B // world.size, config.context_len + 1))  # (b, T + 1)
    x, y = w[:, :-1], w[:, 1:]                                                        # (b, T) each
    timings = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss, cache = gpt.forward(params, config, x, y)
        t1 = time.perf_counter()
        grads = gpt.backward(cache)
        t2 = time.perf_counter()
        opt.accumulate(grads)                   # the copy into the flat buffer (+ sum of squares)
        t3 = time.perf_counter()
        del cache, grads
        if world.size > 1:
            world.comm.Barrier()
        t4 = time.perf_counter()
        if world.size > 1:
            loss, _ = dist.sum_step(world, opt, float(loss), False)
        t5 = time.perf_counter()
        opt.step(1e-4, clip=1.0, loss=loss)
        t6 = time.perf_counter()
        if i >= warmup:
            timings.append({"forward": t1 - t0, "backward": t2 - t1, "copy": t3 - t2, "wait": t4 - t3,
                            "allreduce": t5 - t4, "optimizer": t6 - t5, "step": t6 - t0})
    if world.root:
        print(json.dumps({"ranks": world.size, "tokens": B * config.context_len,
                          "grad_bytes": opt.flat_g.nbytes, "steps": timings}))


def mpirun_command(ranks):
    """(mpirun's command line for `ranks` local ranks, its binding), or (None, why not)."""
    import importlib.util
    import shutil

    if not shutil.which("mpirun"):
        return None, "mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"
    if importlib.util.find_spec("mpi4py") is None:
        return None, 'mpi4py not installed (pip install -e ".[mpi]")'
    # subtle: Open MPI's binding ignores taskset (rank i goes to core i); bind only when
    # this process may use every core, else let the ranks inherit its affinity
    bind = "core" if len(os.sched_getaffinity(0)) >= (os.cpu_count() or 1) >= ranks else "none"
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", bind]
    return cmd + (["--allow-run-as-root"] if os.geteuid() == 0 else []), bind


def scaling(quick):
    """{ranks: summary} of R = 1 and 2 (scaling_worker), rounds alternating; None and the
    reason when mpirun or mpi4py is missing."""
    import minillm

    launcher, bind = mpirun_command(2)
    if launcher is None:
        return None, bind
    rounds, steps = (1, 2) if quick else (3, 4)
    env = dict(os.environ, MINILLM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(minillm.__file__).parents[1]),
                                           os.environ.get("PYTHONPATH", "")]))
    runs = {1: [], 2: []}
    for r in range(rounds):
        for ranks in (1, 2):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--scaling-worker", str(steps)]
            done = subprocess.run((launcher if ranks > 1 else []) + cmd, capture_output=True,
                                  text=True, env=env, cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"bench/train.py: the {ranks}-rank scaling run failed:\n{done.stderr}")
            result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
            runs[ranks].append(result)
        print(f"  scaling: round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    summary = {}
    for ranks, results in runs.items():
        steps_ = [t for res in results for t in res["steps"]]
        med = {k: statistics.median(t[k] for t in steps_) for k in steps_[0]}
        med["tokens_per_s"] = results[0]["tokens"] / med["step"]
        med["grad_bytes"] = results[0]["grad_bytes"]
        summary[ranks] = med
    return summary, bind


def print_scaling(summary, bind):
    config, B = shapes()["speedrun"]
    from minillm.nn import gpt

    print(f"\ndata parallelism, speedrun shape ({config.n_layer} layers, {config.n_embd} wide, context "
          f"{config.context_len}, {gpt.num_params(config) / 1e6:.2f}M parameters), global batch {B}, "
          f"1 thread per rank (mpirun --bind-to {bind}); median step")
    print(f"{'ranks':<6} {'tokens/s':>10} {'step ms':>9} {'fwd ms':>8} {'bwd ms':>8} {'copy ms':>8} "
          f"{'wait ms':>8} {'allreduce':>10} {'opt ms':>8} {'allreduce share':>16}")
    for ranks, m in summary.items():
        comm = f"{1e3 * m['allreduce']:>10.1f}" if ranks > 1 else f"{'-':>10}"
        share = f"{m['allreduce'] / m['step']:>16.1%}" if ranks > 1 else f"{'-':>16}"
        print(f"{ranks:<6} {m['tokens_per_s']:>10,.0f} {1e3 * m['step']:>9.1f} {1e3 * m['forward']:>8.1f} "
              f"{1e3 * m['backward']:>8.1f} {1e3 * m['copy']:>8.1f} {1e3 * m['wait']:>8.1f} {comm} "
              f"{1e3 * m['optimizer']:>8.1f} {share}")
    one, two = summary[1], summary[2]
    speedup = two["tokens_per_s"] / one["tokens_per_s"]
    mb = two["grad_bytes"] / 1e6
    print(f"2 ranks: {speedup:.2f}x the tokens/s of 1 ({speedup / 2:.0%} of linear); the Allreduce sums "
          f"{mb:.1f} MB of gradient in {1e3 * two['allreduce']:.1f} ms ({mb / 1e3 / two['allreduce']:.1f} GB/s)")


def scaling_targets(summary):
    if summary is None:
        return {"dp_speedup_2_ranks": target(None, ">= 1.6", None),
                "dp_allreduce_share_2_ranks": target(None, "<= 0.05", None)}
    speedup = summary[2]["tokens_per_s"] / summary[1]["tokens_per_s"]
    share = summary[2]["allreduce"] / summary[2]["step"]
    return {"dp_speedup_2_ranks": target(round(speedup, 3), ">= 1.6", speedup >= 1.6),
            "dp_allreduce_share_2_ranks": target(round(share, 4), "<= 0.05", share <= 0.05)}


def run_scaling(quick):
    summary, why = scaling(quick)
    if summary is None:
        print(f"\nscaling skipped: {why}")
    else:
        print_scaling(summary, why)
    return scaling_targets(summary)


def target(value, goal, met):
    return {"value": value, "goal": goal, "met": met}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="throughput only (both shapes, fewer steps)")
    parser.add_argument("--sft", action="store_true", help="only the SFT step vs the pretraining step")
    parser.add_argument("--scaling", action="store_true",
                        help="only data parallelism: tokens/s at 1 and 2 ranks (mpirun), one thread each")
    parser.add_argument("--scaling-worker", type=int, help=argparse.SUPPRESS)   # one rank's steps
    parser.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    isa.add_argument(parser)
    args = parser.parse_args(argv)
    if args.scaling_worker:
        scaling_worker(args.scaling_worker)
        return
    if args.scaling:
        print(f"bench/train.py: scaling, {'quick' if args.quick else 'full'}, load average "
              f"{os.getloadavg()[0]:.1f}")
        print(json.dumps({"targets": run_scaling(args.quick)}))
        return
    isa.select(args.isa)
    from minillm.common import num_cores
    threads = args.threads or num_cores()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))   # before NumPy loads BLAS
    from minillm import clib
    clib.set_num_threads(threads)
    if args.sft:
        config, B = shapes()["speedrun"]
        print_sft(config, B, *sft_vs_pretrain(config, B, 3, 3), threads)
        return
    import torch
    torch.set_num_threads(threads)
    load = os.getloadavg()[0]
    print(f"bench/train.py: {threads} threads, {'quick' if args.quick else 'full'}, C kernels "
          f"{'on' if clib.c_available() else 'OFF'} ({clib.simd_level()}), load average {load:.1f}")

    print(isa.describe(threads))
    peak = isa.peak(threads)[1]
    rows, kind = {}, "?"
    plan = {"nanogpt": (2, 8) if args.quick else (3, 20), "speedrun": (2, 2) if args.quick else (3, 3)}
    for name, (config, B) in shapes().items():
        ours, theirs, kind = throughput(name, config, B, *plan[name])
        rows[name] = (ours, theirs)
    print_table(rows, threads, kind, peak)
    if not args.quick:
        config, B = shapes()["speedrun"]
        print_sft(config, B, *sft_vs_pretrain(config, B, 3, 3), threads)

    targets, tag = {}, isa.suffix()
    for name in ("nanogpt", "speedrun"):
        ratio = rows[name][0]["tokens_per_s"] / rows[name][1]["tokens_per_s"]
        targets[f"throughput_{name}_vs_torch{tag}"] = target(round(ratio, 3), ">= 1.1", ratio >= 1.1)
    if peak:
        config = shapes()["speedrun"][0]
        fraction = rows["speedrun"][0]["tokens_per_s"] * flops_per_token(config) / 1e9 / peak
        targets[f"train_speedrun_fraction_of_peak{tag}"] = target(round(fraction, 3), ">= 0.6",
                                                                  fraction >= 0.6)
    targets["shakespeare_val_loss"] = target(None, "<= 1.88", None)
    targets["shakespeare_wall_time_s"] = target(None, f"< {NANOGPT_SECONDS:.0f} (nanoGPT, stated)", None)
    if not args.quick:
        rss = peak_rss(threads)
        config, B = shapes()["speedrun"]
        print(f"\npeak RSS, speedrun model ({config.n_layer} layers, {config.n_embd} wide, context "
              f"{config.context_len}, batch {B}, vocab {config.vocab_size}): {rss:.0f} MB")
        if SHAKESPEARE.exists():
            with tempfile.TemporaryDirectory() as d:
                result, wall = quality_run(threads, Path(d))
            print(f"\ntinyshakespeare, nanoGPT CPU recipe ({threads} threads): val loss "
                  f"{result.val_loss:.4f} (nanoGPT {NANOGPT_VAL}), wall {wall:.1f} s "
                  f"(nanoGPT ~{NANOGPT_SECONDS:.0f} s stated), train tokens/s {result.tokens_per_s:,.0f}")
            ends = {k: round(v, 4) for k, v in sorted(result.val_losses.items())}
            print(f"  loss curve: train step 1 {result.losses[1]:.4f} -> step 2000 "
                  f"{result.final_loss:.4f}; val {ends}")
            print("  time split: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.time_split.items()))
            targets["shakespeare_val_loss"] = target(round(result.val_loss, 4), "<= 1.88",
                                                     result.val_loss <= 1.88)
            targets["shakespeare_wall_time_s"] = target(
                round(wall, 1), f"< {NANOGPT_SECONDS:.0f} (nanoGPT, stated)",
                wall < NANOGPT_SECONDS and result.val_loss <= 1.88)
        else:
            print(f"\nquality run skipped: {SHAKESPEARE} not found")
        targets.update(run_scaling(quick=False))
    print(json.dumps({"targets": targets}))


if __name__ == "__main__":
    main()
