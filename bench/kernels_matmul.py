"""Benchmark the C matmul (csrc/matmul.c) against NumPy's BLAS (OpenBLAS) at the same thread count.

    python bench/kernels_matmul.py --threads 2          # all 36 shapes x 3 products
    python bench/kernels_matmul.py --quick --threads 1  # N in {768, 2048}: under a minute

For each shape (N tokens, C in, OC out) and each product of a linear layer it prints our
GFLOP/s, NumPy's and the ratio ours/NumPy:
    forward          out = inp @ W^T      NumPy: inp @ W.T
    backward_input   dinp = dout @ W      NumPy: dout @ W
    backward_weight  dW += dout^T @ inp   NumPy: dout.T @ inp (ours includes the +=)
and ours as a fraction of the machine's FMA peak (bench/isa.py); then, for information, a
few decoding forwards (N = 1, a matrix-vector product: the inference hot path, timed as the
raw C call that generation makes). It ends with one JSON line of targets: per product, the
median ratio >= 0.95 and the smallest ratio >= 0.8; over the large shapes (N*C*OC >= 2048 *
512 * 1024), the median fraction of peak >= 0.8. --isa avx2 measures the AVX2 path (and
OpenBLAS's Haswell kernels) on any x86 machine; its targets end in _avx2.

Threads: our kernels use clib.set_num_threads(threads). OpenBLAS reads
OPENBLAS_NUM_THREADS when NumPy is first imported, so the __main__ path sets it before
importing NumPy; run() also sets it at run time through OpenBLAS's own
openblas_set_num_threads (found with ctypes) and prints the count NumPy really uses.
Timing: each sample runs a call often enough to last a few milliseconds; ours and NumPy's
samples alternate, and the whole grid is swept 2 (--quick) or 3 times so that a burst of
load from another process hits one sweep, not every sample of a shape. A row's ratio is
the median of its paired ratios (two samples taken moments apart: a noisy neighbour slows
both alike); GF/s come from the median times. With more than one thread, a sample that
follows the other library's starts only once that library's idle threads have stopped
spinning (see time_pair).
"""
import argparse
import ctypes
import json
import os
import sys
import time

import isa

SHAPES_N = (768, 2048, 8192)
SHAPES_C = (128, 256, 512)
DECODE_SHAPES = ((288, 288), (768, 288), (288, 768), (32000, 288))   # (OC, C), N = 1
OPS = ("forward", "backward_input", "backward_weight")


def shapes(quick):
    """The (N, C, OC) grid of the issue; quick keeps N in {768, 2048}."""
    ns = SHAPES_N[:2] if quick else SHAPES_N
    return [(n, c, oc) for n in ns for c in SHAPES_C for oc in (c, 3 * c, 4 * c, 4096)]


def _openblas():
    """NumPy's OpenBLAS as a ctypes library, or None (found in /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    return ctypes.CDLL(sorted(paths)[0]) if paths else None


def openblas_threads(threads=None):
    """Set (if given) and return OpenBLAS's thread count, or None if it cannot be found."""
    lib = _openblas()
    for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
        get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
        put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
        if get is not None and put is not None:
            if threads is not None:
                put(ctypes.c_int(threads))
            return int(get())
    return None


def openblas_spin_seconds():
    """How long OpenBLAS's idle threads keep spinning after a call: 2^t TSC cycles, with
    t = OPENBLAS_THREAD_TIMEOUT as read when NumPy was imported (28 when unset: ~0.1 s)."""
    get = getattr(_openblas(), "openblas_thread_timeout", None)
    t = int(get()) if get is not None else 0
    t = 28 if t <= 0 else min(max(t, 4), 30)
    return 2.0 ** t / 2.0e9          # (a TSC of 2 GHz or more)


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def time_pair(ours, ref, reps, min_seconds, settle):
    """Lists of seconds per call of ours() and of ref(), `reps` samples each, alternating."""
    def once(fn, calls, warm=0.0):
        end = time.perf_counter() + warm
        fn()                 # untimed: wakes the library's threads, warms the caches
        while time.perf_counter() < end:
            fn()
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t) / calls

    # enough calls per sample to last min_seconds (a sample of one call measures noise)
    calls = [max(1, int(min_seconds / max(min(once(fn, 1) for _ in range(3)), 1e-7)))
             for fn in (ours, ref)]
    samples, last = ([], []), 1            # (the calibration ran ref last)
    for rep in range(reps):
        # subtle: after a call, idle worker threads keep spinning for a while (libgomp's
        # for GOMP_SPINCOUNT spins, a few ms at most; OpenBLAS's ~0.1 s unless
        # OPENBLAS_THREAD_TIMEOUT is lowered), and a spinning thread steals a core from
        # the other library. So on switching libraries, the next one first runs untimed
        # for `settle` seconds: the other's spinners time out meanwhile, and its own
        # threads and cores are awake when the clock starts (sleeping instead would hand
        # the sample idle, slowed-down cores). The order alternates, too.
        for which in ((0, 1) if rep % 2 == 0 else (1, 0)):
            warm = settle if last != which else 0.0
            samples[which].append(once((ours, ref)[which], calls[which], warm))
            last = which
    return samples


# NumPy and minillm are imported inside the functions: OPENBLAS_NUM_THREADS must be set
# (main) before NumPy first loads.

def shape_pairs(rng, N, C, OC):
    """{op: (ours, numpy)} callables for one shape, on fresh random operands."""
    import numpy as np

    from minillm.nn.kernels import matmul as KM

    inp = rng.standard_normal((N, C), dtype=np.float32)              # (N, C)
    w = rng.standard_normal((OC, C), dtype=np.float32)               # (OC, C)
    dout = rng.standard_normal((N, OC), dtype=np.float32)            # (N, OC)
    out, out_ref = np.empty((N, OC), np.float32), np.empty((N, OC), np.float32)
    dinp, dinp_ref = np.empty((N, C), np.float32), np.empty((N, C), np.float32)
    dw, dw_ref = np.zeros((OC, C), np.float32), np.empty((OC, C), np.float32)
    return {
        "forward": (lambda: KM.matmul_forward(inp, w, out=out),
                    lambda: np.matmul(inp, w.T, out=out_ref)),
        "backward_input": (lambda: KM.matmul_backward_input(dout, w, dinp=dinp),
                           lambda: np.matmul(dout, w, out=dinp_ref)),
        "backward_weight": (lambda: KM.matmul_backward_weight(dout, inp, dweight=dw),
                            lambda: np.matmul(dout.T, inp, out=dw_ref)),
    }


def decode_pair(rng, C, OC):
    """One decoding forward (N = 1): the C call as the decode path in minillm/generate/ makes it (cffi
    pointers made once, no wrapper checks) against NumPy's x @ W.T."""
    import numpy as np

    from minillm.nn.kernels import c_lib

    ffi, lib = c_lib()
    x = rng.standard_normal((1, C), dtype=np.float32)                   # (1, C)
    w = rng.standard_normal((OC, C), dtype=np.float32)                  # (OC, C)
    out, out_ref = np.empty((1, OC), np.float32), np.empty((1, OC), np.float32)
    px, pw = ffi.from_buffer("float[]", x), ffi.from_buffer("float[]", w)
    pout = ffi.from_buffer("float[]", out, require_writable=True)
    return (lambda: lib.matmul_forward(pout, px, pw, 1, C, OC),
            lambda: np.matmul(x, w.T, out=out_ref))


def row(op, N, C, OC, samples, peak=None):
    """A table row from all samples of one (op, shape): GF/s from the median times, the
    median of the paired ratios (each compares two samples taken moments apart, so a
    noisy neighbour slows both sides of it alike), and ours as a fraction of `peak`."""
    flops = 2.0 * N * C * OC
    ours, ref = samples
    gflops = flops / median(ours) / 1e9
    return {"op": op, "N": N, "C": C, "OC": OC, "ours_gflops": gflops,
            "numpy_gflops": flops / median(ref) / 1e9,
            "ratio": median(r / o for o, r in zip(ours, ref)),
            "peak_fraction": gflops / peak if peak else None}


LARGE = 2048 * 512 * 1024       # N*C*OC from here on is a "large" shape for the peak target


def targets_from(rows):
    """Per product: median ratio >= 0.95 and smallest ratio >= 0.8 over the grid shapes;
    over the large shapes of all three, the median fraction of the FMA peak >= 0.8."""
    targets = {}
    for op in OPS:
        ratios = [r["ratio"] for r in rows if r["op"] == op]
        if not ratios:
            continue
        for name, value, goal in ((f"matmul_{op}_median_ratio", median(ratios), 0.95),
                                  (f"matmul_{op}_min_ratio", min(ratios), 0.8)):
            targets[name + isa.suffix()] = {"value": round(value, 3), "goal": f">= {goal}",
                                            "met": bool(value >= goal)}
    large = [r["peak_fraction"] for r in rows if r["N"] * r["C"] * r["OC"] >= LARGE
             and r.get("peak_fraction") is not None]
    if large:
        value = median(large)
        targets["matmul_large_fraction_of_peak" + isa.suffix()] = {
            "value": round(value, 3), "goal": ">= 0.8", "met": bool(value >= 0.8)}
    return targets


def run(quick, threads):
    """Measure every shape; return (rows, targets). Prints progress to stderr.

    The grid is swept `passes` times with a few samples per (shape, product) each time,
    so a burst of load from another process lands on one pass, not on all of a shape's
    samples; each row pools the samples of all passes."""
    import numpy as np

    from minillm import clib

    if not clib.c_available():
        raise SystemExit(f"the C kernels are not loaded ({clib.load_error()}); nothing to measure")
    clib.set_num_threads(threads)
    blas = openblas_threads(threads)
    print(f"threads: ours {clib.get_num_threads()} ({clib.simd_level()}), NumPy/OpenBLAS "
          f"{blas if blas is not None else 'unknown (OPENBLAS_NUM_THREADS=' + os.environ.get('OPENBLAS_NUM_THREADS', 'unset') + ')'}",
          file=sys.stderr)
    settle = max(1.2 * openblas_spin_seconds(), 0.005) if threads > 1 else 0.0
    if settle > 0.02:
        print("note: OpenBLAS's idle threads spin ~0.1 s after each call, so every switch "
              "between the libraries costs that long; set OPENBLAS_THREAD_TIMEOUT=22 before "
              "NumPy is imported for a faster run (as this file's __main__ does)", file=sys.stderr)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other processes skew the timings, "
          f"multi-threaded ones most); untimed run on switching libraries: {settle * 1e3:.0f} ms",
          file=sys.stderr)
    passes, reps, min_seconds = (2, 3, 0.004) if quick else (3, 3, 0.01)
    grid = [(op, N, C, OC) for N, C, OC in shapes(quick) for op in OPS]
    grid += [("decode_forward", 1, C, OC) for OC, C in DECODE_SHAPES]   # not in the targets
    samples = {key: ([], []) for key in grid}
    rng = np.random.default_rng(0)
    for p in range(passes):
        for i, (N, C, OC) in enumerate(dict.fromkeys(key[1:] for key in grid)):
            print(f"\rpass {p + 1}/{passes}, shape {i + 1}: N={N} C={C} OC={OC}      ", end="",
                  file=sys.stderr)
            pairs = (shape_pairs(rng, N, C, OC) if N > 1 else
                     {"decode_forward": decode_pair(rng, C, OC)})
            for op, (ours, ref) in pairs.items():
                new = time_pair(ours, ref, reps, min_seconds, settle)
                for pooled, more in zip(samples[(op, N, C, OC)], new):
                    pooled.extend(more)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    total_peak = isa.peak(threads)[1]
    rows = [row(*key, samples[key], total_peak) for key in grid]
    return rows, targets_from([r for r in rows if r["op"] in OPS])


def print_table(rows, threads):
    print(isa.describe(threads))
    print(f"{'product':<16} {'N':>5} {'C':>4} {'OC':>5} {'ours GF/s':>10} {'numpy GF/s':>11} "
          f"{'ratio':>6} {'% peak':>7}")
    for r in rows:
        fraction = f"{100 * r['peak_fraction']:>6.0f}%" if r.get("peak_fraction") else f"{'-':>7}"
        print(f"{r['op']:<16} {r['N']:>5} {r['C']:>4} {r['OC']:>5} {r['ours_gflops']:>10.1f} "
              f"{r['numpy_gflops']:>11.1f} {r['ratio']:>6.2f} {fraction}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N in {768, 2048} only, fewer repetitions")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for ours and NumPy")
    isa.add_argument(parser)
    args = parser.parse_args(argv)
    isa.select(args.isa)
    # subtle: both must be set before NumPy (and OpenBLAS with it) is first imported. A
    # short spin (2^22 cycles, ~2 ms, like libgomp's) keeps OpenBLAS's threads hot between
    # back-to-back calls but lets them sleep before our next sample (see time_pair).
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "22")
    rows, targets = run(args.quick, args.threads)
    print_table(rows, args.threads)
    print(json.dumps({"targets": targets}))


if __name__ == "__main__":
    main()
