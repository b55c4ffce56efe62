"""``cnnumpy train --text tiny-shakespeare``: the corpus downloaded, verified, trained.

The fake corpus of ``test_text_download`` is served from 127.0.0.1 and pinned as the
official one; a tiny LSTM (16 units) trains one epoch on it in about half a second.
"""

from __future__ import annotations

import json

from test_data import isolated  # noqa: F401
from test_data_download import server  # noqa: F401
from test_text_download import FAKE, dead_url, pin, served  # noqa: F401

from cnnumpy.cli import main, runs

TRAIN = ["train", "--model", "char_lstm", "--text", "tiny-shakespeare"]
TINY = ["--epochs", "1", "--hidden", "16", "--batch-size", "8", "--val-split", "0.1"]


def test_train_on_tiny_shakespeare_downloads_it_once(served, tmp_path):
    assert main([*TRAIN, *TINY, "--out", str(tmp_path / "run")]) == 0
    assert served.hits == ["/input.txt"]
    config = json.loads((tmp_path / "run" / runs.CONFIG).read_text())
    assert config["text"] == "tiny-shakespeare"
    assert config["data"]["text"] == f"{len(FAKE):,} characters from tiny Shakespeare"
    assert config["vocabulary"] == sorted(set(FAKE.decode("utf-8")))
    metrics = json.loads((tmp_path / "run" / runs.METRICS).read_text())
    assert metrics["epochs_completed"] == 1
    assert 0 < metrics["validation_bits_per_character"] < 8
    assert main([*TRAIN, *TINY, "--out", str(tmp_path / "again")]) == 0
    assert served.hits == ["/input.txt"]  # the second run reads the cache


def test_data_dir_holds_a_copy_put_by_hand(isolated, monkeypatch):
    pin(monkeypatch, dead_url())  # offline
    (isolated / "data").mkdir()
    (isolated / "data" / "input.txt").write_bytes(FAKE)
    argv = [*TRAIN, *TINY, "--data-dir", str(isolated / "data")]
    assert main([*argv, "--out", str(isolated / "run")]) == 0


def test_offline_is_one_line_naming_the_url(isolated, monkeypatch, capsys):
    url = dead_url()
    pin(monkeypatch, url)
    assert main([*TRAIN, *TINY, "--out", str(isolated / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnumpy: error: tiny_shakespeare: could not find")
    assert len(err.strip().splitlines()) == 1
    assert f"{url}: network error" in err and f"By hand: save {url}" in err
