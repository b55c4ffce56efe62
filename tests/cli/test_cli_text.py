"""``cnnumpy train --text`` and ``cnnumpy generate``: char models end to end.

A tiny LSTM (16 units) on 4,000 characters of the standard library's sources trains in
about a second; the errors are pinned with ``match=``.
"""

from __future__ import annotations

import csv
import json
import re
import sysconfig
from pathlib import Path

import pytest

from cnnumpy import load_model, zoo
from cnnumpy.cli import main, runs

TINY = ["--epochs", "2", "--hidden", "16", "--batch-size", "8", "--val-split", "0.1"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    source = Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py"
    path = tmp_path_factory.mktemp("text") / "small.txt"
    path.write_text(source.read_text(encoding="utf-8")[:4000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def char_run(text_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "lstm"
    argv = ["train", "--model", "char_lstm", "--text", str(text_file), *TINY]
    assert main([*argv, "--out", str(out)]) == 0
    return out


def test_train_text_fills_a_run_folder(char_run, text_file):
    for name in (runs.MODEL, runs.CONFIG, runs.METRICS, runs.HISTORY, runs.CURVES):
        assert (char_run / name).is_file(), name
    metrics = json.loads((char_run / runs.METRICS).read_text())
    K = metrics["vocabulary_size"]
    assert 0 < metrics["validation_bits_per_character"] < 8
    assert metrics["epochs_completed"] == 2
    rows = list(csv.DictReader((char_run / runs.HISTORY).open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    model = load_model(char_run / runs.MODEL)
    symbols = model.preprocessing["vocabulary"]
    assert symbols == sorted(set(text_file.read_text(encoding="utf-8")))
    assert len(symbols) == K and model.output_shape == (25, K)
    page = (char_run / runs.REPORT).read_text(encoding="utf-8")  # what it sees
    assert "probability" in page.lower() and "unit" in page.lower()


def test_no_report_writes_no_report(text_file, tmp_path):
    argv = ["train", "--model", "char_rnn", "--text", str(text_file), *TINY[2:]]
    assert main([*argv, "--epochs", "1", "--out", str(tmp_path), "--no-report"]) == 0
    assert (tmp_path / runs.METRICS).is_file()
    assert not (tmp_path / runs.REPORT).exists()


def test_resume_continues_to_the_weights_of_an_uninterrupted_run(text_file, tmp_path):
    base = ["train", "--model", "char_rnn", "--text", str(text_file), *TINY[2:]]
    assert main([*base, "--epochs", "1", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--epochs", "2", "--out", str(tmp_path / "a"), "--resume"]) == 0
    assert main([*base, "--epochs", "2", "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / runs.METRICS).read_text())
    b = json.loads((tmp_path / "b" / runs.METRICS).read_text())
    assert a["epochs_completed"] == 2
    assert a["validation_bits_per_character"] == b["validation_bits_per_character"]


def test_generate_is_reproducible_with_a_seed(char_run, capsys):
    argv = ["generate", str(char_run), "--prime", "def ", "--length", "50"]
    argv += ["--temperature", "0.8", "--seed", "0"]
    capsys.readouterr()
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("def ") and len(first) == len("def ") + 50 + 1


def test_generate_from_the_model_file_alone(char_run, tmp_path, capsys):
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes((char_run / runs.MODEL).read_bytes())
    capsys.readouterr()
    assert main(["generate", str(copy), "--prime", "a", "--length", "5"]) == 0
    assert len(capsys.readouterr().out) == 1 + 5 + 1


def test_summary_counts_the_issue_lstm(capsys):
    assert main(["summary", "--model", "char_lstm"]) == 0
    out = capsys.readouterr().out
    assert "LSTM(100" in out and "66,800" in out  # 4*100*(65+100) + 2*4*100


def _error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--prime", "é"], r"--prime: characters \['é'\] outside the vocabulary"),
        (["--prime", ""], r"--prime: an empty text, not the vocabulary"),
        (["--prime", "a", "--temperature", "-1"], r"--temperature: expected a number"),
        (["--prime", "a", "--temperature", "nan"], r"--temperature: expected a number"),
    ],
)
def test_generate_errors(char_run, capsys, extra, match):
    err = _error(capsys, ["generate", str(char_run), *extra])
    assert len(err.strip().splitlines()) == 1
    assert re.search(match, err), err


def test_generate_refuses_an_image_model(tmp_path, capsys):

    zoo.get("mnist_mlp").save(tmp_path / runs.MODEL)
    err = _error(capsys, ["generate", str(tmp_path), "--prime", "a"])
    assert "not a char model (its model file has no vocabulary)" in err


def test_image_tools_refuse_a_char_run(char_run, tmp_path, capsys):
    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    err = _error(capsys, ["predict", str(char_run), str(tmp_path / "x.png")])
    assert err.startswith("cnnumpy: error: ") and "not grey or RGB images" in err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--model", "char_lstm"], "--model char_lstm reads text: give --text FILE"),
        (["--model", "lenet5"], "--model lenet5 needs --dataset NAME"),
        (
            ["--model", "lenet5", "--text", "stdlib"],
            r"--text is for the char models \(char_rnn, char_lstm\)",
        ),
        (
            ["--model", "char_rnn", "--text", "stdlib", "--dataset", "mnist"],
            "--text: --dataset is not for char models",
        ),
        (
            [
                "--model",
                "char_rnn",
                "--text",
                "stdlib",
                "--limit",
                "1000",
                "--val-split",
                "0",
            ],
            "too few for --batch-size 64 streams of 25",
        ),
    ],
)
def test_train_text_errors(capsys, tmp_path, argv, match):
    err = _error(capsys, ["train", *argv, "--out", str(tmp_path / "run")])
    assert re.search(match, err), err


def test_train_text_refuses_a_missing_file(capsys, tmp_path):
    argv = ["train", "--model", "char_rnn", "--text", str(tmp_path / "none.txt")]
    err = _error(capsys, [*argv, "--out", str(tmp_path / "run")])
    assert "none.txt" in err and len(err.strip().splitlines()) == 1
