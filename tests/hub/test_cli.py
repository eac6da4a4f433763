"""`minillm export` and `minillm import` (minillm/hub/cli.py): flag values checked before
anything is read or written (the conversions themselves: test_export.py, test_import_hf.py)."""
import pytest

from minillm.cli import main


@pytest.mark.parametrize("value", ["-5", "0"])
def test_import_context_len_must_be_positive(value, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["import", "--hf", str(tmp_path), "--out", str(out), "--context-len", value]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"minillm: error: --context-len must be a positive number of tokens, got {value}"
    assert not out.exists()
