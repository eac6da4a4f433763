"""cffi builder for minillm's C kernels: `ffibuilder` compiles csrc/*.c into minillm._kernels.

setup.py names this file in `cffi_modules`, so `pip install .` and `pip install -e .`
compile it. Run it directly for a sanitizer build that the tests can load instead:

    python csrc/build.py --sanitize --out runs/asan
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
        MINILLM_KERNELS_PATH=runs/asan pytest tests/nn tests/test_clib.py

Flags: -O3 -march=native (the SIMD level is chosen here, at build time), C99, -Wall,
-fopenmp when the compiler supports it, and no -ffast-math: the kernels' results must stay
comparable with their NumPy twins.

MINILLM_MARCH=<gcc -march value> builds for another instruction set than this machine's:
MINILLM_MARCH=x86-64-v3 is the AVX2 + FMA path (what most laptops have), x86-64 the plain C
one. The benches' --isa avx2 builds that way to measure the AVX2 path on an AVX-512 machine,
and a build meant to run on other machines should use it: the library refuses to load on a
CPU without the instructions it was built for (minillm/clib.py checks at load).
"""
import os
import sys
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["runtime.c", "matmul.c", "layers.c", "attention.c", "attention_backward.c",
           "attention_gemm.c", "attention_common.c", "decode.c", "bpe_split.c", "bpe.c",
           "bpe_train.c", "optim.c"]
BASE_FLAGS = ["-O3", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"]
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer", "-g"]


def openmp_flags():
    """Return the OpenMP compile flags if the C compiler accepts them, else []."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_check.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objs, os.path.join(tmp, "omp_check"),
                                     extra_postargs=["-fopenmp"])
        except Exception:
            return []
    return ["-fopenmp"]


def make_ffibuilder(sanitize=False, absolute=False):
    omp = openmp_flags()
    if not omp:
        print("minillm: the C compiler has no OpenMP; the kernels will run on one thread",
              file=sys.stderr)
    march = os.environ.get("MINILLM_MARCH", "native")
    flags = BASE_FLAGS + [f"-march={march}"] + omp + (SANITIZE_FLAGS if sanitize else [])
    with open(os.path.join(HERE, "kernels.h")) as f:
        header = f.read()
    # setuptools wants source paths relative to setup.py; ffi.compile (script mode) runs
    # in its output directory and needs absolute ones.
    where = os.path.abspath if absolute else os.path.relpath
    ffi = FFI()
    ffi.cdef(header)
    ffi.set_source(
        "minillm._kernels",
        '#include "kernels.h"\n',
        sources=[where(os.path.join(HERE, s)) for s in SOURCES],
        include_dirs=[where(HERE)],
        extra_compile_args=flags,
        extra_link_args=omp + (SANITIZE_FLAGS if sanitize else []),
    )
    return ffi


ffibuilder = make_ffibuilder() if __name__ != "__main__" else None

if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sanitize", action="store_true",
                        help="build with -fsanitize=address,undefined")
    parser.add_argument("--out", default="build/kernels", help="output directory")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    ffi = make_ffibuilder(sanitize=args.sanitize, absolute=True)
    so = ffi.compile(tmpdir=args.out, verbose=False)
    print(f"built {so}")
