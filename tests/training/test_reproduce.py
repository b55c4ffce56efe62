"""benchmarks/reproduce.py: every reproduction is listed, well formed, and a run ends
with one JSON line holding the notes' figure beside cnnumpy's."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reproduce(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import reproduce

    return reproduce


def test_every_reproduction_is_well_formed(reproduce):
    found = reproduce.registry()
    assert found, "no reproduction found"
    for name, item in found.items():
        assert name == item.name and name.replace("_", "").isalnum()
        assert name.startswith("seed"), name  # named after the seed it reproduces
        assert item.source and item.notes and callable(item.run)
        assert item.minutes > 0


def test_list_prints_each_name_and_the_notes_figure(reproduce, capsys):
    assert reproduce.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name, item in reproduce.registry().items():
        assert name in out and item.notes in out


def test_a_run_ends_with_one_json_line(reproduce, capsys):
    assert reproduce.main(["seed003_receptive_field", "--quick"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(last)
    assert record["machine"]["cores"] >= 1 and record["machine"]["cpu"]
    (row,) = record["reproductions"]
    assert row["name"] == "seed003_receptive_field" and row["quick"] is True
    assert row["field"] == [7, 7] and row["weights"][0] * 49 == row["weights"][1] * 27


def test_unknown_names_are_refused(reproduce, capsys):
    with pytest.raises(SystemExit):
        reproduce.main(["seed999_nothing"])
    assert "unknown seed999_nothing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reproduce.main([])


def test_markdown_table_has_one_row_per_run(reproduce, tmp_path, capsys):
    out = tmp_path / "r.md"
    argv = ["seed003_receptive_field", "--quick-over", "5", "--markdown", str(out)]
    assert reproduce.main(argv) == 0
    text = out.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| seed")]
    assert len(rows) == 1 and "27·C²" in rows[0] and "`reproduce.py seed003" in rows[0]
    assert "Machine: " in text
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["reproductions"][0]["quick"] is False  # 0.01 min < 5


def test_a_reproduction_cannot_overwrite_the_record_keys(reproduce, capsys):
    item = reproduce.Reproduction(
        "seed000_probe",
        "a test",
        "nothing",
        lambda quick: {"cnnumpy": "ok", "seconds": {"train": 1.0}, "quick": "no"},
    )
    record = reproduce.run_one(item, True)
    assert record["quick"] is True and isinstance(record["seconds"], float)
    assert record["timings"] == {"train": 1.0} and record["differences"] == ""
    table = reproduce.markdown(
        {
            "command": "reproduce.py seed000_probe",
            "machine": reproduce.machine(),
            "total_seconds": 1.0,
            "reproductions": [record],
        }
    )
    assert "| seed000_probe (a test) | nothing | ok |  |" in table
