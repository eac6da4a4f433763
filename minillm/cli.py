"""`minillm <command> ...`: one subcommand per stage (also `python -m minillm`).

COMMANDS below is the whole map: each command names its package's cli module and the functions
that fill an argparse parser with the command's flags and do the work. Those cli modules
are the only places that know about argparse; the stages themselves are plain functions
(`minillm.world.cli` calls `World.build`, and so on), so read a stage from its cli.py
inward. A UserError prints as one line ("minillm: error: ...") with exit status 2; Ctrl-C
exits 130.

    minillm info          # how this installation is set up (C kernels, threads, SIMD)
    minillm -h            # every command, in lecture order

Read next: minillm/world/cli.py, the first stage.
"""
import argparse
import importlib
import os
import sys

import numpy as np

import minillm
from minillm import clib
from minillm.common import UserError, runs_dir


def add_info_arguments(parser):
    """`minillm info` has no flags."""


def run_info(args):
    """`minillm info`: version, C kernels, threads, SIMD, NumPy's BLAS, runs directory."""
    print(f"minillm {minillm.__version__}  (python {sys.version.split()[0]}, numpy {np.__version__})")
    if clib.c_available():
        print(f"C kernels:    loaded ({clib.library_path()})")
        print(f"OpenMP:       {'yes' if clib.has_openmp() else 'no'}, "
              f"{clib.get_num_threads()} threads (MINILLM_THREADS)")
        peak, threads = clib.fma_peak(), clib.get_num_threads()
        print(f"SIMD:         {clib.simd_level()} (compiled in; MINILLM_MARCH at build time, "
              f"default native)")
        print(f"FMA peak:     {peak:.1f} GFLOP/s per thread ({threads * peak:.0f} on "
              f"{threads} threads), float32, measured now")
    else:
        print(f"C kernels:    not loaded ({clib.load_error()}); using the NumPy references")
    print(f"NumPy BLAS:   {_numpy_blas()}")
    print(f"runs:         {runs_dir().resolve()}  (MINILLM_RUNS)")


def _numpy_blas():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict mode
        return "unknown"


# command -> (module, its add_arguments function, its run function, one-line help), in lecture
# order. The names are written out, never built, so grep finds every command's code; a
# command's module is imported only when that command runs, so `minillm -h` and `minillm
# info` do not load every stage.
COMMANDS = {
    "info": ("minillm.cli", "add_info_arguments", "run_info", "show how this installation is set up"),
    "world": ("minillm.world.cli", "add_arguments", "run",
              "build / inspect the mini-world (the generated internet)"),
    "crawl": ("minillm.crawl.cli", "add_arguments", "run",
              "render the mini-world as a web crawl in WARC files"),
    "download": ("minillm.internet.cli", "add_download_arguments", "run_download",
                 "download a real corpus (resumable, checksummed)"),
    "clean": ("minillm.internet.cli", "add_clean_arguments", "run_clean",
              "run the FineWeb-style cleaning pipeline over WARCs"),
    "tokenizer": ("minillm.tokenizer.cli", "add_arguments", "run",
                  "train / use the byte-level BPE tokenizer"),
    "pretrain": ("minillm.pretrain.cli", "add_arguments", "run",
                 "pretrain the transformer (the base model)"),
    "sample": ("minillm.generate.cli", "add_arguments", "run", "sample text from a checkpoint"),
    "eval": ("minillm.evals.cli", "add_arguments", "run",
             "evaluate a checkpoint on the mini-world's probes"),
    "sft": ("minillm.chat.cli", "add_sft_arguments", "run_sft",
            "fine-tune a base model on conversations (supervised fine-tuning)"),
    "rl": ("minillm.rl.cli", "add_arguments", "run",
           "practise on problems with checkable answers (reinforcement learning)"),
    "rlhf": ("minillm.rlhf.cli", "add_arguments", "run",
             "train a reward model on a simulated labeller's preferences, and RL against it"),
    "arena": ("minillm.rlhf.cli", "add_arena_arguments", "run_arena",
              "rate checkpoints against each other: battles, Elo, Bradley-Terry"),
    "chat": ("minillm.chat.cli", "add_arguments", "run",
             "talk to a model (--ckpt); the chat format as tokens (render); the search tool (search)"),
    "speedrun": ("minillm.speedrun", "add_arguments", "run", "run every stage end to end"),
    "report": ("minillm.report", "add_arguments", "run",
               "write a run's report card (report.md, report.html)"),
    "serve": ("minillm.web.cli", "add_arguments", "run",
              "the web app: chat with a run's models, see their tokens, read the report card"),
    "export": ("minillm.hub.cli", "add_export_arguments", "run_export",
               "export a checkpoint to GGUF, Hugging Face or llama2.c"),
    "import": ("minillm.hub.cli", "add_import_arguments", "run_import",
               "import a Hugging Face Llama checkpoint"),
    "exercise": ("minillm.exercises.cli", "add_arguments", "run",
                 "learn a stage by rebuilding it: list, start, check, hint, solution"),
}


def _top_parser():
    parser = argparse.ArgumentParser(
        prog="minillm", description="Build a ChatGPT-like assistant from scratch on a CPU.")
    parser.add_argument("command", choices=list(COMMANDS), metavar="command",
                        help="one of: " + ", ".join(COMMANDS))
    lines = [f"  {name:<12} {help_}" for name, (*_, help_) in COMMANDS.items()]
    parser.epilog = "commands:\n" + "\n".join(lines) + "\n\n`minillm <command> -h` for a command's flags."
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def _describe_subcommands(parser):
    """Give each sub-subcommand (`minillm world build`, ...) its one-line help as the
    description its own --help prints, unless it has one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for sub_name, sub in action.choices.items():
                if sub.description is None and helps.get(sub_name):
                    sub.description = helps[sub_name]
                _describe_subcommands(sub)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    name = top.parse_args(argv[:1]).command
    module_name, add_name, run_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    add, run = getattr(module, add_name), getattr(module, run_name)
    parser = argparse.ArgumentParser(prog=f"minillm {name}", description=help_)
    add(parser)
    _describe_subcommands(parser)
    args = parser.parse_args(argv[1:])
    try:
        result = run(args)
    except UserError as e:
        if not getattr(e, "quiet", False):   # quiet: another process prints it (pretrain/dist.py)
            print(f"minillm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nminillm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:      # `minillm info | head -3`: the reader has left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # (no error at exit)
        return 141
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
