"""`minillm <command> ...`: one subcommand per stage (also `python -m minillm`).

Each command lives in the module that implements it; the module provides

    add_arguments(parser)   # fill an argparse parser with the command's flags
    run(args)               # do the work; raise UserError for mistakes the user can fix

and this file only dispatches, so `minillm info` never imports the training code. A
UserError prints as one line ("minillm: error: ...") with exit status 2; Ctrl-C exits 130.
"""
import argparse
import importlib
import sys

from minillm.common import UserError

# command -> ("module" or "module:name", one-line help), in lecture order. The module
# provides add_arguments(parser) and run(args), or add_<name>_arguments and run_<name>.
COMMANDS = {
    "info": ("minillm.cli", "show how this installation is set up"),
    "world": ("minillm.world.cli", "build / inspect the mini-world (the generated internet)"),
    "crawl": ("minillm.crawl.cli", "render the mini-world as a web crawl in WARC files"),
    "download": ("minillm.internet.cli:download", "download a real corpus (resumable, checksummed)"),
    "clean": ("minillm.internet.cli:clean", "run the FineWeb-style cleaning pipeline over WARCs"),
    "tokenizer": ("minillm.tokenizer.bpe", "train / use the byte-level BPE tokenizer"),
    "pretrain": ("minillm.pretrain.train", "pretrain the transformer (the base model)"),
    "sample": ("minillm.generate.cli", "sample text from a checkpoint"),
    "eval": ("minillm.evals.base", "evaluate a checkpoint on the mini-world's probes"),
    "speedrun": ("minillm.speedrun", "run every stage end to end"),
    "export": ("minillm.hub.export", "export a checkpoint to GGUF, Hugging Face or llama2.c"),
    "import": ("minillm.hub.export:import", "import a Hugging Face Llama checkpoint"),
}


def add_arguments(parser):
    """`minillm info` has no flags."""


def run(args):
    """`minillm info`: version, C kernels, threads, SIMD, NumPy's BLAS, runs directory."""
    import numpy as np

    import minillm
    from minillm.common import runs_dir
    from minillm import clib

    print(f"minillm {minillm.__version__}  (python {sys.version.split()[0]}, numpy {np.__version__})")
    if clib.c_available():
        print(f"C kernels:    loaded ({clib.library_path()})")
        print(f"OpenMP:       {'yes' if clib.has_openmp() else 'no'}, "
              f"{clib.get_num_threads()} threads (MINILLM_THREADS)")
        print(f"SIMD:         {clib.simd_level()}")
    else:
        print(f"C kernels:    not loaded ({clib.load_error()}); using the NumPy references")
    print(f"NumPy BLAS:   {_numpy_blas()}")
    print(f"runs:         {runs_dir().resolve()}  (MINILLM_RUNS)")


def _numpy_blas():
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def _top_parser():
    parser = argparse.ArgumentParser(
        prog="minillm", description="Build a ChatGPT-like assistant from scratch on a CPU.")
    parser.add_argument("command", choices=list(COMMANDS), metavar="command",
                        help="one of: " + ", ".join(COMMANDS))
    lines = [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    parser.epilog = "commands:\n" + "\n".join(lines) + "\n\n`minillm <command> -h` for a command's flags."
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    name = top.parse_args(argv[:1]).command
    spec, help_ = COMMANDS[name]
    module_name, _, prefix = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        print(f"minillm: error: `minillm {name}` is not available in this version", file=sys.stderr)
        return 2
    add = getattr(module, f"add_{prefix}_arguments" if prefix else "add_arguments")
    run_ = getattr(module, f"run_{prefix}" if prefix else "run")
    parser = argparse.ArgumentParser(prog=f"minillm {name}", description=help_)
    add(parser)
    args = parser.parse_args(argv[1:])
    try:
        result = run_(args)
    except UserError as e:
        print(f"minillm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nminillm: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
