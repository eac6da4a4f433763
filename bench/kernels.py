"""Benchmark the C kernel library (issue 2): matmul vs NumPy/OpenBLAS, attention vs NumPy
and PyTorch SDPA, all at the same thread count, in one run.

    python bench/kernels.py --threads 2          # every shape of the issue
    python bench/kernels.py --quick --threads 2  # fewer shapes and repetitions (< 1 minute)
    python bench/kernels.py --isa avx2           # the AVX2 path on any x86 machine (bench/isa.py)

The two halves live in bench/kernels_matmul.py and bench/kernels_attention.py (each also
runs on its own); this script runs both, prints both tables and ends with one JSON line
holding every target of the issue.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import isa  # noqa: E402  (bench/ on the path first)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes and repetitions")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for ours, NumPy/OpenBLAS and torch")
    isa.add_argument(parser)
    args = parser.parse_args(argv)
    isa.select(args.isa)
    # subtle: must happen before NumPy (and OpenBLAS with it) is first imported.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    # OpenBLAS's idle threads otherwise spin ~0.1 s after each call, stealing a core from
    # the next (our) sample; with this, alternating samples need only a short settle.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "22")
    import kernels_attention
    import kernels_matmul

    print(f"load average before the run: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    matmul_rows, matmul_targets = kernels_matmul.run(args.quick, args.threads)
    attention_rows, attention_targets = kernels_attention.run(args.quick, args.threads)
    print(f"threads: {args.threads}; load average after the run: {os.getloadavg()[0]:.2f}")
    kernels_matmul.print_table(matmul_rows, args.threads)
    print()
    kernels_attention.print_table(attention_rows)
    print(json.dumps({"targets": {**matmul_targets, **attention_targets}}))


if __name__ == "__main__":
    main()
