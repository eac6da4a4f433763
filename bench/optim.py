"""The optimizer step alone: minillm's AdamW (C and NumPy paths) against torch's fused AdamW.

    python bench/optim.py --quick --threads 2       # nanoGPT shape only (~10 s)
    python bench/optim.py --threads 1 2             # both shapes, 1 then 2 threads (~1 min)

One "step" is what a training step spends after backward, on the same number of parameters
(the real model's tensors, gpt.init_params) and the same fixed random gradients:
    minillm  opt.accumulate(grads) (copy into the flat buffer; C: fused with the sum of
             squares) + opt.step(lr, clip=1.0, loss=...): global norm, clipping, update
             "C" is csrc/optim.c (use_c=True); "NumPy" the reference path (use_c=False),
             i.e. the optimizer as it was before the C kernels
    torch    clip_grad_norm_(params, 1.0) + torch.optim.AdamW(fused=True).step(), with the
             gradients already in p.grad (torch's backward writes them there)
Both decay the same parameters (nn/optim.decays). Shapes (bench/train.py's):
    nanogpt   4 layers, n_embd 128, vocab 256      (0.87M parameters)
    speedrun  depth 6, n_embd 384, vocab 4096      (13.8M parameters)
Threads: clib.set_num_threads and torch.set_num_threads (OPENBLAS_NUM_THREADS for the
NumPy path's dot products, set before NumPy loads). The three implementations run in
alternating samples, each after a pause that lets the other libraries' idle threads stop
spinning; the median milliseconds per step is reported, with the fastest sample in
parentheses (on a shared machine, a neighbour that takes a core stalls every OpenMP region
of a 2-thread run, torch's and ours: the minimum shows what the code does without that;
OMP_WAIT_POLICY=PASSIVE in the environment makes such runs stable). Ends with one JSON
line of targets: the C step's median speed relative to torch's fused AdamW, per shape, at
the largest thread count (a component of issue 6's full-step target, not that target).
"""
import argparse
import json
import os
import statistics
import sys
import time

SETTLE = 0.1           # seconds of pause before each sample (OpenBLAS spins ~70 ms when idle)


def shapes():
    from minillm.nn.gpt import GPTConfig
    return {"nanogpt": GPTConfig.from_depth(4, 256, 64, n_embd=128, n_head=4),
            "speedrun": GPTConfig.from_depth(6, 4096, 256, n_embd=384)}


def make_ours(params, grads, use_c):
    from minillm.nn.optim import AdamW

    opt = AdamW({n: a.copy() for n, a in params.items()}, betas=(0.9, 0.95),
                weight_decay=0.1, use_c=use_c)

    def step():
        opt.accumulate(grads)
        opt.step(1e-4, clip=1.0, loss=1.0)
    return step


def make_torch(params, grads):
    import torch

    from minillm.nn.optim import decays

    tparams = {n: torch.nn.Parameter(torch.from_numpy(a.copy())) for n, a in params.items()}
    for n, p in tparams.items():
        p.grad = torch.from_numpy(grads[n].copy())
    groups = [{"params": [p for n, p in tparams.items() if decays(n, p)], "weight_decay": 0.1},
              {"params": [p for n, p in tparams.items() if not decays(n, p)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), fused=True)
    plist = list(tparams.values())

    def step():
        torch.nn.utils.clip_grad_norm_(plist, 1.0)
        opt.step()
    return step


def time_steps(fns, samples, calls):
    """(median, min) ms per call of each fn, samples interleaved (one warm-up call each)."""
    times = {name: [] for name in fns}
    for _ in range(samples):
        for name, fn in fns.items():
            time.sleep(SETTLE)
            fn()
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - t) / calls * 1e3)
    return {name: (statistics.median(ts), min(ts)) for name, ts in times.items()}


def bench_shape(config, threads, samples, calls):
    import numpy as np
    import torch

    from minillm.nn import gpt
    from minillm import clib

    params = gpt.init_params(config, seed=0)
    rng = np.random.default_rng(0)
    grads = {n: (1e-2 * rng.standard_normal(a.shape)).astype(np.float32)
             for n, a in params.items()}
    fns = {"torch fused": make_torch(params, grads), "NumPy": make_ours(params, grads, False),
           "C": make_ours(params, grads, True)}
    rows = {}
    for t in threads:
        clib.set_num_threads(t)
        torch.set_num_threads(t)
        rows[t] = time_steps(fns, samples, calls)
    return sum(a.size for a in params.values()), rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="nanoGPT shape only, fewer samples")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts to measure (default: all cores)")
    args = parser.parse_args(argv)
    threads = args.threads or [os.cpu_count() or 1]
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(max(threads)))  # before NumPy loads BLAS
    from minillm import clib
    if not clib.c_available():
        sys.exit(f"bench/optim.py: the C kernels are not loaded ({clib.load_error()})")
    print(f"bench/optim.py: threads {threads}, {'quick' if args.quick else 'full'}, "
          f"kernels {clib.library_path()}, load average {os.getloadavg()[0]:.1f}")
    plan = {"nanogpt": (5, 10) if args.quick else (9, 20), "speedrun": (5, 3)}
    results = {}
    for name, config in shapes().items():
        if args.quick and name != "nanogpt":
            continue
        results[name] = bench_shape(config, threads, *plan[name])
        print(f"  {name} done, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)

    print(f"\noptimizer step (accumulate + norm + clip + AdamW): median (min) ms over samples; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'shape':<9} {'params':>7} {'thr':>3} {'torch fused':>15} {'NumPy':>15} {'C':>15} "
          f"{'torch/C':>8} {'NumPy/C':>8}")
    for name, (n, rows) in results.items():
        for t, r in rows.items():
            cells = " ".join(f"{r[k][0]:>7.2f} ({r[k][1]:>5.2f})"
                             for k in ("torch fused", "NumPy", "C"))
            ours = r["C"][0]
            print(f"{name:<9} {n / 1e6:>6.2f}M {t:>3} {cells} {r['torch fused'][0] / ours:>7.2f}x "
                  f"{r['NumPy'][0] / ours:>7.2f}x")
    targets = {}
    for name in ("nanogpt", "speedrun"):
        key = f"adamw_step_{name}_vs_torch_fused"
        if name in results:
            r = results[name][1][max(threads)]
            ratio = round(r["torch fused"][0] / r["C"][0], 3)
            targets[key] = {"value": ratio, "goal": ">= 1.0", "met": ratio >= 1.0}
        else:
            targets[key] = {"value": None, "goal": ">= 1.0", "met": None}
    print(json.dumps({"targets": targets}))


if __name__ == "__main__":
    main()
