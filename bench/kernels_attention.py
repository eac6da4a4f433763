"""Benchmark the C causal attention (csrc/attention*.c) against NumPy and PyTorch on CPU.

    python bench/kernels_attention.py --threads 2          # all 6 shapes, NumPy at every T
    python bench/kernels_attention.py --quick --threads 1  # NumPy only at T <= 256: < 1 min

For B=8, NH=NKV=8, HD in {32, 64}, T in {64, 256, 1024} it prints forward+backward
milliseconds of
    ours    KA.attention_forward + KA.attention_backward (the C kernels' wrappers)
    numpy   their twins' NumPy lines, nn/attention.py's causal_attention and
            causal_attention_backward (plain NumPy, BLAS matmuls, the (B, NH, T, T) scores
            materialised)
    torch   torch.nn.functional.scaled_dot_product_attention(is_causal=True), forward and
            torch.autograd.grad of it (when torch is installed; torch.set_num_threads(threads))
and the ratios numpy/ours and torch/ours (> 1: ours is faster). Then, for information, the
decode kernel at llama2.c's stories15M shape (B=1, NH=NKV=6, HD=48) for a few cache lengths:
microseconds per C call (through cffi, wrapper checks excluded), per wrapper call, and the
NumPy lines of nn/attention.py's attention_decode. Ends with one JSON line of targets:
fwd+bwd >= 1.0x torch on every shape (the value is the smallest ratio) and >= 3x NumPy at
T >= 256 (smallest ratio there).

Timing: the three implementations' samples alternate (a noisy neighbour hurts all alike),
each sample lasts at least a few milliseconds, and the median is reported. NumPy's thread
count is set as in bench/kernels_matmul.py (OPENBLAS_NUM_THREADS before NumPy loads).
"""
import argparse
import json
import os
import sys
import time

import isa

try:                                        # run as a script, or from bench/kernels.py
    from kernels_matmul import openblas_threads
except ImportError:                         # imported as bench.kernels_attention
    from bench.kernels_matmul import openblas_threads

B, NH = 8, 8
HDS = (32, 64)
TIMES = (64, 256, 1024)
DECODE = (1, 6, 48)                      # (B, NH = NKV, HD): stories15M
DECODE_LENGTHS = (256, 1024)


SETTLE = 0.02     # seconds each library runs untimed after another one ran (> 1 thread)


def median_times(fns, reps, min_seconds):
    """Median seconds per call of each function (None entries skipped), samples interleaved.

    subtle: after a call, a library's idle threads keep spinning for a while (OpenBLAS's,
    torch's, libgomp's), and with more than one thread a spinning thread steals a core
    from the next library's sample: a 15 us decode call measured 530 us. So with several
    threads each sample starts after SETTLE seconds of untimed calls, which lets the
    previous library's threads go to sleep and wakes this one's."""
    from minillm import clib

    settle = SETTLE if clib.get_num_threads() > 1 else 0.0

    def once(fn, calls):
        end = time.perf_counter() + settle
        while time.perf_counter() < end:
            fn()
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t) / calls

    calls = [None if fn is None else max(1, int(min_seconds / max(once(fn, 1), 1e-7)))
             for fn in fns]                                  # the first call also warms up
    samples = [[] for _ in fns]
    for _ in range(reps):
        for fn, n, s in zip(fns, calls, samples):
            if fn is not None:
                s.append(once(fn, n))
    return [sorted(s)[len(s) // 2] if s else None for s in samples]


def torch_fwd_bwd(torch, q, k, v, dout):
    """A closure running torch SDPA forward + backward on copies of q, k, v, dout."""
    import torch.nn.functional as F

    tq, tk, tv = (torch.from_numpy(x.copy()).requires_grad_() for x in (q, k, v))
    tdout = torch.from_numpy(dout.copy())

    def run():
        out = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
        torch.autograd.grad(out, (tq, tk, tv), tdout)
    return run


# NumPy and minillm are imported inside the functions: OPENBLAS_NUM_THREADS must be set
# (main) before NumPy first loads.

def numpy_lines(fn):
    """fn, run with the layers' NumPy lines on float32 (kernels.fast answers False during the
    call, as under MINILLM_NO_C=1)."""
    from minillm.nn import kernels as K

    def run():
        fast, K.fast = K.fast, (lambda *arrays: False)
        try:
            fn()
        finally:
            K.fast = fast
    return run


def bench_training(torch, rng, HD, T, with_numpy, reps, min_seconds):
    """One row: fwd+bwd milliseconds of ours, NumPy's and torch's, and the ratios."""
    import numpy as np

    from minillm.nn import attention as A
    from minillm.nn.kernels import attention as KA

    q, k, v, dout = (rng.standard_normal((B, NH, T, HD), dtype=np.float32) for _ in range(4))

    def ours():
        out, lse = KA.attention_forward(q, k, v)
        KA.attention_backward(dout, q, k, v, out, lse)

    @numpy_lines
    def numpy_ref():
        out, lse = A.causal_attention(q, k, v)
        A.causal_attention_backward(dout, q, k, v, out, lse)

    fns = [ours, numpy_ref if with_numpy else None,
           torch_fwd_bwd(torch, q, k, v, dout) if torch else None]
    t_ours, t_np, t_torch = median_times(fns, reps, min_seconds)
    ms = lambda t: None if t is None else t * 1e3
    ratio = lambda t: None if t is None else t / t_ours
    return {"kind": "fwd+bwd", "B": B, "NH": NH, "HD": HD, "T": T, "ours_ms": ms(t_ours),
            "numpy_ms": ms(t_np), "torch_ms": ms(t_torch), "vs_numpy": ratio(t_np),
            "vs_torch": ratio(t_torch)}


def bench_decode(rng, L, reps, min_seconds):
    """Decode microseconds at the stories15M shape with a cache of L positions."""
    import numpy as np

    from minillm.nn import attention as A
    from minillm.nn.kernels import attention as KA
    from minillm.nn.kernels import c_lib

    b, nh, hd = DECODE
    q = rng.standard_normal((b, nh, hd), dtype=np.float32)                # (B, NH, HD)
    kc, vc = (rng.standard_normal((b, nh, L, hd), dtype=np.float32) for _ in range(2))
    lengths = np.full(b, L, np.int32)
    ffi, lib = c_lib()
    out = np.empty_like(q)
    ptrs = [ffi.from_buffer("float[]", x) for x in (out, q, kc, vc)]
    plen = ffi.from_buffer("int[]", lengths)
    raw = lambda: lib.attention_decode(*ptrs, plen, b, nh, nh, L, hd)
    wrapped = lambda: KA.attention_decode(q, kc, vc, lengths)
    ref = numpy_lines(lambda: A.attention_decode(q, kc, vc, lengths))
    t_raw, t_wrap, t_ref = median_times([raw, wrapped, ref], reps, min_seconds)
    return {"kind": "decode", "B": b, "NH": nh, "HD": hd, "L": L, "ours_us": t_raw * 1e6,
            "wrapper_us": t_wrap * 1e6, "numpy_us": t_ref * 1e6}


def targets_from(rows, have_torch):
    train = [r for r in rows if r["kind"] == "fwd+bwd"]
    vs_torch = [r["vs_torch"] for r in train if r["vs_torch"] is not None]
    vs_numpy = [r["vs_numpy"] for r in train if r["vs_numpy"] is not None and r["T"] >= 256]
    targets = {}
    for name, values, goal, missing in (
            ("attention_fwd_bwd_vs_torch_min", vs_torch, 1.0,
             None if have_torch else "torch is not installed"),
            ("attention_fwd_bwd_vs_numpy_min_T>=256", vs_numpy, 3.0, None)):
        if values:
            targets[name + isa.suffix()] = {"value": round(min(values), 3), "goal": f">= {goal}",
                             "met": bool(min(values) >= goal), "shapes": len(values)}
        else:
            targets[name + isa.suffix()] = {"value": None, "goal": f">= {goal}", "met": False,
                             "note": missing or "not measured"}
    return targets


def run(quick, threads):
    """Measure every shape; return (rows, targets). Prints progress to stderr."""
    import numpy as np

    from minillm import clib

    if not clib.c_available():
        raise SystemExit(f"the C kernels are not loaded ({clib.load_error()}); nothing to measure")
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    clib.set_num_threads(threads)
    blas = openblas_threads(threads)
    print(f"threads: ours {clib.get_num_threads()} ({clib.simd_level()}), NumPy/OpenBLAS "
          f"{blas if blas is not None else 'unknown'}, torch "
          f"{torch.get_num_threads() if torch else 'not installed'}", file=sys.stderr)
    rng = np.random.default_rng(0)
    reps, min_seconds = (3, 0.02) if quick else (7, 0.05)
    rows = []
    for HD in HDS:
        for T in TIMES:
            print(f"\rHD={HD} T={T}   ", end="", file=sys.stderr)
            rows.append(bench_training(torch, rng, HD, T, not quick or T <= 256,
                                       reps if T < 1024 else max(3, reps // 2), min_seconds))
    print(file=sys.stderr)
    for L in DECODE_LENGTHS:
        rows.append(bench_decode(rng, L, reps, 0.01))
    return rows, targets_from(rows, torch is not None)


def print_table(rows):
    col = lambda x, width: "-".rjust(width) if x is None else f"{x:{width}.2f}"
    print(f"attention fwd+bwd (B={B}, NH=NKV={NH}), milliseconds; ratio > 1: ours is faster")
    print(f"{'HD':>3} {'T':>5} {'ours':>9} {'numpy':>9} {'torch':>9} {'np/ours':>8} "
          f"{'torch/ours':>10}")
    for r in rows:
        if r["kind"] == "fwd+bwd":
            print(f"{r['HD']:>3} {r['T']:>5} {col(r['ours_ms'], 9)} {col(r['numpy_ms'], 9)} "
                  f"{col(r['torch_ms'], 9)} {col(r['vs_numpy'], 8)} {col(r['vs_torch'], 10)}")
    print(f"attention decode (B, NH=NKV, HD = {DECODE}: stories15M), microseconds per call")
    print(f"{'L':>5} {'C call':>8} {'wrapper':>8} {'numpy':>8}")
    for r in rows:
        if r["kind"] == "decode":
            print(f"{r['L']:>5} {r['ours_us']:>8.2f} {r['wrapper_us']:>8.2f} {r['numpy_us']:>8.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="NumPy only at T <= 256, fewer repetitions")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for ours, NumPy and torch")
    isa.add_argument(parser)
    args = parser.parse_args(argv)
    isa.select(args.isa)
    # subtle: must happen before NumPy (and OpenBLAS with it) is first imported.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    rows, targets = run(args.quick, args.threads)
    print(isa.describe(args.threads))
    print_table(rows)
    print(json.dumps({"targets": targets}))


if __name__ == "__main__":
    main()
