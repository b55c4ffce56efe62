"""The recurrent benchmarks still run and still check what they claim: a few
milliseconds of each (the real runs take minutes; see benchmarks/)."""

import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def benchmark_path(monkeypatch):
    for folder in ("benchmarks", "examples"):
        monkeypatch.syspath_prepend(str(ROOT / folder))


def test_vs_torch_rnn_rows_agree_and_time_both():
    import vs_torch_rnn

    for cell in ("lstm", "gru"):
        rows = vs_torch_rnn.speed_rows(cell, 4, 5, repeats=1, min_time=0.01)
        assert [r["mode"] for r in rows] == ["train", "predict"]
        for row in rows:
            assert row["unit"] == "tokens" and row["batch"] == 4
            assert row["cnnumpy_rate"] > 0 and row["torch_rate"] > 0
            assert row["ratio"] == pytest.approx(
                row["cnnumpy_rate"] / row["torch_rate"]
            )


def test_char_rnn_vs_torch_scores_both_alike(capsys):
    import char_rnn_vs_torch

    char_rnn_vs_torch.main(["--minutes", "0.01", "--turn", "0.3", "--batch", "8"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| cnnumpy")]
    rows += [line for line in out.splitlines() if line.startswith("| torch")]
    assert len(rows) == 2
    for line in rows:
        bpc = float(line.rstrip(" |").split("|")[-1])
        # both learnt something in 0.6 s, and are scored on the same scale:
        # below a uniform guess over the ~100 symbols of the stdlib corpus
        assert 0 < bpc < math.log2(100)

