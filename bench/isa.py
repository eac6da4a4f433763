"""The benches' --isa switch and their yardstick, the machine's FMA peak.

    python bench/kernels.py --quick --isa avx2     # the AVX2 path, on any x86 machine

--isa native (the default): minillm's kernels as installed (-march=native), NumPy's
    OpenBLAS and PyTorch as they choose for this CPU.
--isa avx2: the AVX2 + FMA path everywhere, so an AVX-512 machine measures what a laptop
    runs: minillm's kernels built with MINILLM_MARCH=x86-64-v3 (csrc/build.py) into
    runs/bench-avx2/<hash of csrc/>/, OpenBLAS held to its Haswell kernels
    (OPENBLAS_CORETYPE=Haswell), PyTorch to AVX2 (ATEN_CPU_CAPABILITY=avx2,
    MKL_ENABLE_INSTRUCTIONS=AVX2).
Those variables must hold before NumPy or torch load, so select() builds the kernels and
re-executes the bench with them set; the re-executed process goes on from select().

The peak: clib.fma_peak(), this core's register-only FMA throughput (csrc/runtime.c),
times the threads. A bench's "% of peak" is its achieved GFLOP/s over that. With --isa
avx2 the probe is the AVX2 build's, so an AVX-512 machine's AVX2 rows are measured
against its AVX2 peak (half the AVX-512 one).
"""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AVX2_ENV = {"MINILLM_MARCH": "x86-64-v3", "OPENBLAS_CORETYPE": "Haswell",
            "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
MARKER = "MINILLM_BENCH_ISA"     # set in the re-executed process


def add_argument(parser):
    parser.add_argument("--isa", choices=("native", "avx2"), default="native",
                        help="native: this machine's build; avx2: the AVX2 path, with "
                             "OpenBLAS and PyTorch restricted to AVX2 too (bench/isa.py)")


def select(isa):
    """Make this process run `isa`: returns at once for native (or when already done),
    else builds the AVX2 kernels and re-executes the bench with AVX2_ENV (never returns)."""
    if isa == "native" or os.environ.get(MARKER) == isa:
        return
    build = avx2_build()
    env = dict(os.environ, **AVX2_ENV, MINILLM_KERNELS_PATH=str(build), **{MARKER: isa})
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def avx2_build():
    """The AVX2 kernels, built once per version of csrc/ (about 15 s)."""
    from minillm.common import runs_dir

    digest = hashlib.sha256()
    for path in sorted((ROOT / "csrc").iterdir()):
        if path.suffix in (".c", ".h", ".py"):
            digest.update(path.name.encode() + path.read_bytes())
    out = runs_dir() / "bench-avx2" / digest.hexdigest()[:12]
    if not any(out.glob("**/_kernels*.so")):
        print(f"building the AVX2 kernels (MINILLM_MARCH=x86-64-v3) into {out} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "csrc" / "build.py"), "--out", str(out)],
                       env=dict(os.environ, MINILLM_MARCH="x86-64-v3"), check=True,
                       stdout=subprocess.DEVNULL)
    return out


def name():
    """The ISA this process measures: "avx2" under --isa avx2, else "native"."""
    return os.environ.get(MARKER, "native")


def suffix():
    """Appended to target names: "" for native, "_avx2" for --isa avx2."""
    return "" if name() == "native" else f"_{name()}"


def peak(threads):
    """(GFLOP/s per thread, GFLOP/s for `threads`) of this build's FMA probe."""
    from minillm import clib

    one = clib.fma_peak()
    return one, (one * threads if one else None)


def describe(threads):
    """One line for a bench's header: ISA, build, CPU, peak."""
    from minillm import clib

    one, total = peak(threads)
    peak_text = f"FMA peak {one:.1f} GFLOP/s per thread, {total:.0f} on {threads}" if one else "no peak (no C kernels)"
    return (f"isa {name()} (minillm kernels: {clib.simd_level()}; {clib.cpu_model()}); {peak_text}")
