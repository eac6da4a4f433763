"""`minillm exercise list|start|check|hint|solution`: learn each stage by rebuilding it.

    minillm exercise list                        # the exercises, in lecture order
    minillm exercise start rmsnorm_backward      # -> ./exercises/rmsnorm_backward/rmsnorm_backward.py
    minillm exercise check rmsnorm_backward      # PASS, or what is wrong in one line
    minillm exercise hint rmsnorm_backward
    minillm exercise solution rmsnorm_backward   # minillm's own lines

start never writes over a file that exists (your work); check exits 0 on PASS, 1 on FAIL.
--dir DIR puts the workspace elsewhere than ./exercises.

Read next: registry.py (the exercises), workspace.py (how a check runs).
"""
from pathlib import Path

from minillm.exercises.registry import EXERCISES, find
from minillm.exercises.workspace import exercise_file, solution_text, verdict, write_skeleton

WORKSPACE = "exercises"


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", required=True, metavar="{list,start,check,hint,solution}")
    actions = {
        "list": "the exercises in lecture order, and which you have started",
        "start": "write ./exercises/NAME/NAME.py: one of minillm's functions with the lines to write removed",
        "check": "check your ./exercises/NAME/NAME.py against minillm: PASS, or what is wrong",
        "hint": "a hint for an exercise",
        "solution": "print minillm's own code for an exercise",
    }
    for action, help_ in actions.items():
        p = sub.add_parser(action, help=help_)
        if action != "list":
            p.add_argument("name", help="the exercise (see `minillm exercise list`)")
        if action in ("list", "start", "check"):
            p.add_argument("--dir", default=WORKSPACE, help="the workspace directory (default ./exercises)")


def run(args):
    if args.action == "list":
        return _list(Path(args.dir))
    ex = find(args.name)
    if args.action == "start":
        path = write_skeleton(ex, args.dir)
        print(f"exercise {ex.name}: wrote {path}; write the lines that raise NotImplementedError, "
              f"then run `minillm exercise check {ex.name}`")
    elif args.action == "check":
        problem = verdict(ex, exercise_file(ex, args.dir))
        print(f"PASS {ex.name}" if problem is None else f"FAIL {ex.name}: {problem}")
        return 0 if problem is None else 1
    elif args.action == "hint":
        print(f"{ex.name} ({ex.title}): {ex.hint}")
    else:
        print(solution_text(ex), end="")
    return 0


def _list(root):
    print(f"{'':>3} {'exercise':<20} {'stage':<10} what you write")
    for i, ex in enumerate(EXERCISES, 1):
        started = "  (started)" if exercise_file(ex, root).exists() else ""
        print(f"{i:>3} {ex.name:<20} {ex.stage:<10} {ex.title}{started}")
    print(f"\n`minillm exercise start NAME` writes {root}/NAME/NAME.py; "
          "`minillm exercise check NAME` checks it.")
    return 0
