"""Benchmark the C matmul (csrc/matmul.c) against NumPy's BLAS (OpenBLAS) at the same thread count.

    python bench/kernels_matmul.py --threads 2          # all 36 shapes x 3 products
    python bench/kernels_matmul.py --quick --threads 1  # N in {768, 2048}: under a minute

For each shape (N tokens, C in, OC out) and each product of a linear layer it prints our
GFLOP/s, NumPy's and the ratio ours/NumPy:
    forward          out = inp @ W^T      NumPy: inp @ W.T
    backward_input   dinp = dout @ W      NumPy: dout @ W
    backward_weight  dW += dout^T @ inp   NumPy: dout.T @ inp (ours includes the +=)
then, for information, a few decoding forwards (N = 1, a matrix-vector product: the
inference hot path, timed as the raw C call that generation makes), and ends with one JSON
line of targets: per product, the median ratio >= 0.9 and the smallest ratio >= 0.7.

Threads: our kernels use kernels.set_num_threads(threads). OpenBLAS reads
OPENBLAS_NUM_THREADS when NumPy is first imported, so the __main__ path sets it before
importing NumPy; run() also sets it at run time through OpenBLAS's own
openblas_set_num_threads (found with ctypes) and prints the count NumPy really uses.
Timing: each sample runs a call often enough to last a few milliseconds; ours and NumPy's
samples alternate, the ratio is the median of the paired ratios (a noisy neighbour slows
both sides of a pair alike) and GF/s come from the median times. With more than one
thread, each sample first waits for the other library's idle threads to stop spinning
(see time_pair).
"""
import argparse
import ctypes
import json
import os
import sys
import time

SHAPES_N = (768, 2048, 8192)
SHAPES_C = (128, 256, 512)
DECODE_SHAPES = ((288, 288), (768, 288), (288, 768), (32000, 288))   # (OC, C), N = 1
OPS = ("forward", "backward_input", "backward_weight")


def shapes(quick):
    """The (N, C, OC) grid of the issue; quick keeps N in {768, 2048}."""
    ns = SHAPES_N[:2] if quick else SHAPES_N
    return [(n, c, oc) for n in ns for c in SHAPES_C for oc in (c, 3 * c, 4 * c, 4096)]


def openblas_threads(threads=None):
    """Set (if given) and return OpenBLAS's thread count, or None if it cannot be found."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                if threads is not None:
                    put(ctypes.c_int(threads))
                return int(get())
    return None


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def time_pair(ours, ref, reps, min_seconds, settle):
    """Seconds per call of ours() and ref() (medians) and the median of the paired ratios
    ref/ours: samples alternate, and each ratio compares two samples taken moments apart,
    so a noisy neighbour slows both sides of it alike."""
    def once(fn, calls):
        fn()                 # untimed: wakes the library's threads, warms the caches
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t) / calls

    # enough calls per sample to last min_seconds (a sample of one call measures noise)
    calls = [max(1, int(min_seconds / max(min(once(fn, 1) for _ in range(3)), 1e-7)))
             for fn in (ours, ref)]
    samples = ([], [])
    for _ in range(reps):
        # subtle: after a call, OpenBLAS's idle worker threads spin (yielding) for ~70 ms
        # and libgomp's for ~3 ms; a spinning thread steals a core from the other
        # library's next sample. With threads > 1, let them fall asleep first.
        time.sleep(settle)
        samples[0].append(once(ours, calls[0]))
        time.sleep(settle / 10)
        samples[1].append(once(ref, calls[1]))
    return median(samples[0]), median(samples[1]), median(r / o for o, r in zip(*samples))


def bench_shape(np, K, rng, N, C, OC, reps, min_seconds, settle):
    """Rows of (op, ours GFLOP/s, NumPy GFLOP/s) for one shape."""
    inp = rng.standard_normal((N, C), dtype=np.float32)              # (N, C)
    w = rng.standard_normal((OC, C), dtype=np.float32)               # (OC, C)
    dout = rng.standard_normal((N, OC), dtype=np.float32)            # (N, OC)
    out, out_ref = np.empty((N, OC), np.float32), np.empty((N, OC), np.float32)
    dinp, dinp_ref = np.empty((N, C), np.float32), np.empty((N, C), np.float32)
    dw, dw_ref = np.zeros((OC, C), np.float32), np.empty((OC, C), np.float32)
    pairs = {
        "forward": (lambda: K.matmul_forward(inp, w, out=out),
                    lambda: np.matmul(inp, w.T, out=out_ref)),
        "backward_input": (lambda: K.matmul_backward_input(dout, w, dinp=dinp),
                           lambda: np.matmul(dout, w, out=dinp_ref)),
        "backward_weight": (lambda: K.matmul_backward_weight(dout, inp, dweight=dw),
                            lambda: np.matmul(dout.T, inp, out=dw_ref)),
    }
    flops = 2.0 * N * C * OC
    rows = []
    for op in OPS:
        ours, ref, ratio = time_pair(*pairs[op], reps, min_seconds, settle)
        rows.append({"op": op, "N": N, "C": C, "OC": OC, "ours_gflops": flops / ours / 1e9,
                     "numpy_gflops": flops / ref / 1e9, "ratio": ratio})
    return rows


def bench_decode(np, K, rng, C, OC, reps, min_seconds, settle):
    """One decoding forward (N = 1): the C call as minillm/generate_cache.py makes it (cffi
    pointers made once, no wrapper checks) against NumPy's x @ W.T."""
    ffi, lib = K._load()
    x = rng.standard_normal((1, C), dtype=np.float32)                   # (1, C)
    w = rng.standard_normal((OC, C), dtype=np.float32)                  # (OC, C)
    out, out_ref = np.empty((1, OC), np.float32), np.empty((1, OC), np.float32)
    px, pw = ffi.from_buffer("float[]", x), ffi.from_buffer("float[]", w)
    pout = ffi.from_buffer("float[]", out, require_writable=True)
    ours, ref, ratio = time_pair(lambda: lib.matmul_forward(pout, px, pw, 1, C, OC),
                                 lambda: np.matmul(x, w.T, out=out_ref), reps, min_seconds, settle)
    flops = 2.0 * C * OC
    return {"op": "decode_forward", "N": 1, "C": C, "OC": OC, "ours_gflops": flops / ours / 1e9,
            "numpy_gflops": flops / ref / 1e9, "ratio": ratio}


def targets_from(rows):
    """Per product: median ratio >= 0.9 and smallest ratio >= 0.7 over the grid shapes."""
    targets = {}
    for op in OPS:
        ratios = [r["ratio"] for r in rows if r["op"] == op]
        if not ratios:
            continue
        for name, value, goal in ((f"matmul_{op}_median_ratio", median(ratios), 0.9),
                                  (f"matmul_{op}_min_ratio", min(ratios), 0.7)):
            targets[name] = {"value": round(value, 3), "goal": f">= {goal}",
                             "met": bool(value >= goal)}
    return targets


def run(quick, threads):
    """Measure every shape; return (rows, targets). Prints progress to stderr."""
    import numpy as np

    from minillm.nn import kernels as K

    if not K.c_available():
        raise SystemExit(f"the C kernels are not loaded ({K.load_error()}); nothing to measure")
    K.set_num_threads(threads)
    blas = openblas_threads(threads)
    print(f"threads: ours {K.get_num_threads()} ({K.simd_level()}), NumPy/OpenBLAS "
          f"{blas if blas is not None else 'unknown (OPENBLAS_NUM_THREADS=' + os.environ.get('OPENBLAS_NUM_THREADS', 'unset') + ')'}",
          file=sys.stderr)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other processes skew the "
          "timings, multi-threaded ones most)", file=sys.stderr)
    rng = np.random.default_rng(0)
    reps, min_seconds = (5, 0.004) if quick else (7, 0.01)
    settle = 0.08 if threads > 1 else 0.0
    rows = []
    grid = shapes(quick)
    for i, (N, C, OC) in enumerate(grid):
        print(f"\r[{i + 1}/{len(grid)}] N={N} C={C} OC={OC}   ", end="", file=sys.stderr)
        rows += bench_shape(np, K, rng, N, C, OC, reps, min_seconds, settle)
    print(file=sys.stderr)
    for OC, C in DECODE_SHAPES:                         # informational: not in the targets
        rows.append(bench_decode(np, K, rng, C, OC, reps, min_seconds, settle))
    print(f"load average at end: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return rows, targets_from(rows)


def print_table(rows):
    print(f"{'product':<16} {'N':>5} {'C':>4} {'OC':>5} {'ours GF/s':>10} {'numpy GF/s':>11} {'ratio':>6}")
    for r in rows:
        print(f"{r['op']:<16} {r['N']:>5} {r['C']:>4} {r['OC']:>5} {r['ours_gflops']:>10.1f} "
              f"{r['numpy_gflops']:>11.1f} {r['ratio']:>6.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N in {768, 2048} only, fewer repetitions")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for ours and NumPy")
    args = parser.parse_args(argv)
    # subtle: must happen before NumPy (and OpenBLAS with it) is first imported.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    rows, targets = run(args.quick, args.threads)
    print_table(rows)
    print(json.dumps({"targets": targets}))


if __name__ == "__main__":
    main()
