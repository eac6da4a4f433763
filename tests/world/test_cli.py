"""`minillm world build|show|stats` (minillm/world/cli.py) through the top-level command line."""
from minillm.cli import main
from minillm.world.world import World


def test_cli_build_show_stats(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["world", "build", "--seed", "2", "--size", "smoke", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "documents" in text
    assert main(["world", "stats", "--dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "by kind" in text and "worksheet" in text and "never" in text
    world = World.load(out)
    person = next(e for e in world.entities.values() if e.type == "person" and world.bucket[e.id] == "many")
    assert main(["world", "show", person.name.lower(), "--dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert person.attrs["birth_city"] in text and "---" in text
    assert main(["world", "show", "Nobody Anywhere", "--dir", str(out)]) == 2
    assert "no entity" in capsys.readouterr().err
    assert main(["world", "stats", "--dir", str(tmp_path / "empty")]) == 2
    assert "world build" in capsys.readouterr().err
