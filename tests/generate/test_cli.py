"""`minillm sample`'s numbers: values no sampler can use are one-line errors.

    python -m pytest tests/generate/test_cli.py
"""
import pytest

from minillm.cli import main


@pytest.mark.parametrize("flags, says", [
    (["--temperature", "nan"], "--temperature must be a finite number >= 0"),   # was accepted
    (["--temperature", "inf"], "--temperature must be a finite number >= 0"),
    (["--temperature", "-1"], "--temperature must be a finite number >= 0"),
    (["--top-p", "nan"], "--top-p must be in (0, 1]"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["-n", "0"], "-n and --max-tokens must be at least 1"),
])
def test_unusable_sampling_numbers_are_one_line_errors(tmp_path, capsys, flags, says):
    assert main(["sample", "--ckpt", str(tmp_path / "never-read"), "--prompt", "hi", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minillm: error: ") and says in err and "\n" not in err
