"""`minillm rl` (rl/cli.py): bad input is one line and exit status 2, never a traceback."""
import pytest

from minillm.cli import main


@pytest.mark.parametrize("argv, says", [
    (["rl"], "--ckpt is required"),
    (["rl", "--out", "nowhere", "--resume"], "no RL run at nowhere"),
    (["rl", "eval"], "give --run DIR"),
    (["rl", "eval", "--run", "no-such-run"], "no-such-run/sft is not a checkpoint"),
])
def test_bad_input_is_one_line(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_task_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["rl", "--ckpt", "x", "--task", "chess"])
    assert e.value.code == 2 and "invalid choice: 'chess'" in capsys.readouterr().err
