"""The top-level command table (minillm/cli.py): every command and sub-subcommand explains
itself in its --help, and a reader that leaves early costs no traceback."""
import subprocess
import sys

import pytest

from minillm.cli import COMMANDS, main

SUBCOMMANDS = [("world", "build"), ("world", "show"), ("world", "stats"), ("tokenizer", "train"),
               ("tokenizer", "encode"), ("chat", "render"), ("chat", "eval"), ("chat", "data")]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_a_description(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "-h"])
    assert done.value.code == 0
    assert COMMANDS[command][3] in " ".join(capsys.readouterr().out.split())   # (wrapped)


@pytest.mark.parametrize("command, sub", SUBCOMMANDS)
def test_every_subcommand_has_a_description(command, sub, capsys):
    with pytest.raises(SystemExit):
        main([command, sub, "-h"])
    usage, _, rest = capsys.readouterr().out.partition("\n\n")
    assert rest.strip() and not rest.lstrip().startswith(("options:", "positional")), rest[:200]


def test_output_cut_short_by_a_pipe_is_not_a_traceback():
    res = subprocess.run(f"'{sys.executable}' -m minillm -h >/dev/null; '{sys.executable}' -m minillm "
                         f"info | head -1", shell=True, capture_output=True, text=True)
    assert res.stdout.startswith("minillm ") and "Traceback" not in res.stderr, res.stderr
