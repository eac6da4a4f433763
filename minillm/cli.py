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

# command -> (module, one-line help). Lecture order.
COMMANDS = {
    "info": ("minillm.cli", "show how this installation is set up"),
}


def add_arguments(parser):
    """`minillm info` has no flags."""


def run(args):
    """`minillm info`: version, C kernels, threads, SIMD, NumPy's BLAS, runs directory."""
    import numpy as np

    import minillm
    from minillm.common import runs_dir
    from minillm.nn import kernels

    print(f"minillm {minillm.__version__}  (python {sys.version.split()[0]}, numpy {np.__version__})")
    if kernels.c_available():
        print(f"C kernels:    loaded ({kernels.library_path()})")
        print(f"OpenMP:       {'yes' if kernels.has_openmp() else 'no'}, "
              f"{kernels.get_num_threads()} threads (MINILLM_THREADS)")
        print(f"SIMD:         {kernels.simd_level()}")
    else:
        print(f"C kernels:    not loaded ({kernels.load_error()}); using the NumPy references")
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
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"minillm {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        result = module.run(args)
    except UserError as e:
        print(f"minillm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nminillm: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
