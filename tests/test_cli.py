"""The top-level command table (minillm/cli.py): every command and sub-subcommand explains
itself in its --help."""
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
