"""``cnnumpy train --loss``: MSE (seed 002 trains its MLP, ``zoo.mnist_mlp``, so) and
binary cross-entropy train on the one-hot rows of the integer labels; the run's
``config.json`` records the loss and ``--resume`` continues only with the same one."""

import csv
import json
import math
import re

import numpy as np
import pytest

# the tiny MNIST of test_cli.py, and its fixtures (tiny_sizes is autouse)
from test_cli import data_dir, tiny_sizes  # noqa: F401

from cnnumpy import load_model, losses
from cnnumpy.cli import main, runs
from cnnumpy.cli.tools import one_hot_targets
from cnnumpy.cli.train_options import LOSSES

MLP = [
    "train",
    "--model",
    "mnist_mlp",
    "--dataset",
    "mnist",
    "--batch-size",
    "16",
    "--lr",
    "0.5",
    "--val-split",
    "0.25",
    "--seed",
    "0",
    "--quiet",
    "--no-report",
]


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def history_losses(out) -> list[float]:
    with open(out / runs.HISTORY, newline="") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy"])
def test_a_one_hot_loss_trains_and_resumes(loss, data_dir, tmp_path, capsys):
    out = tmp_path / loss
    argv = [*MLP, "--loss", loss, "--data-dir", data_dir, "--out", out]
    code, stdout, _ = run([*argv, "--epochs", "2"], capsys)
    assert code == 0 and f"loss {loss};" in stdout
    assert json.loads((out / runs.CONFIG).read_text())["loss"] == loss
    code, stdout, _ = run([*argv, "--epochs", "4", "--resume"], capsys)
    assert code == 0 and "epoch 3/4" in stdout and "epoch 1/4" not in stdout
    seen = history_losses(out)
    assert len(seen) == 4 and seen[-1] < seen[0]  # the loss falls
    assert load_model(out / runs.MODEL).loss.name == loss  # plain, on one-hot rows
    metrics = json.loads((out / runs.METRICS).read_text())
    assert math.isfinite(metrics["test_loss"]) and 0 <= metrics["test_accuracy"] <= 1
    # evaluate compares the outputs with one-hot rows too, as training did
    code, stdout, _ = run(["evaluate", out, "--data-dir", data_dir], capsys)
    assert code == 0 and re.search(r"loss \d+\.\d+  accuracy", stdout)


def test_resume_refuses_another_loss(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*MLP, "--data-dir", data_dir, "--out", out, "--epochs", "1"]
    assert run([*argv, "--loss", "cross_entropy"], capsys)[0] == 0
    code, _, err = run([*argv, "--epochs", "2", "--resume"], capsys)  # mlp's own: mse
    assert code == 2 and "loss: 'cross_entropy' -> 'mse'" in err


def test_each_model_has_its_own_default_loss(data_dir, tmp_path, capsys):
    """No --loss: mnist_mlp trains its tanh outputs with the MSE of seed 002, the
    others with cross-entropy; config.json records the loss used."""
    out = tmp_path / "mlp"
    code, stdout, _ = run([*MLP, "--data-dir", data_dir, "--out", out], capsys)
    assert code == 0 and "loss mse;" in stdout
    assert json.loads((out / runs.CONFIG).read_text())["loss"] == "mse"
    lenet = [a if a != "mnist_mlp" else "lenet1" for a in MLP]
    code, stdout, _ = run(
        [*lenet, "--data-dir", data_dir, "--out", tmp_path / "l"], capsys
    )
    assert code == 0 and "loss cross_entropy;" in stdout


def test_a_run_saved_before_loss_existed_resumes_as_cross_entropy(
    data_dir, tmp_path, capsys
):
    out = tmp_path / "old"
    argv = [*MLP, "--data-dir", data_dir, "--out", out]
    assert run([*argv, "--epochs", "1", "--loss", "cross_entropy"], capsys)[0] == 0
    config = json.loads((out / runs.CONFIG).read_text())
    assert config.pop("loss") == "cross_entropy"
    (out / runs.CONFIG).write_text(json.dumps(config))
    code, _, err = run([*argv, "--epochs", "2", "--resume", "--loss", "mse"], capsys)
    assert code == 2 and "loss: 'cross_entropy' -> 'mse'" in err
    again = [*argv, "--epochs", "2", "--resume", "--loss", "cross_entropy"]
    code, stdout, _ = run(again, capsys)
    assert code == 0 and "epoch 2/2" in stdout


def test_char_models_keep_cross_entropy(tmp_path, capsys):
    argv = ["train", "--model", "char_rnn", "--text", "stdlib", "--loss", "mse"]
    code, _, err = run([*argv, "--out", tmp_path / "r"], capsys)
    assert code == 2 and "--loss mse: char models train with cross_entropy" in err


def test_an_unknown_loss_is_refused(tmp_path, capsys):
    code, _, err = run([*MLP, "--loss", "hinge", "--out", tmp_path / "r"], capsys)
    assert code == 2 and "invalid choice: 'hinge'" in err


def test_the_choices_are_the_library_losses_and_the_help_says_one_hot(capsys):
    # every loss of one output (PerOutput is for models of several outputs)
    single = {cls.name for cls in losses.LOSSES.values()} - {"per_output"}
    assert set(LOSSES) == single
    assert LOSSES[0] == "cross_entropy"  # listed first: every model's but mnist_mlp's
    code, stdout, _ = run(["train", "--help"], capsys)
    help_text = " ".join(stdout.split())
    assert code == 0 and "--loss" in help_text and "each integer label" in help_text


def test_one_hot_targets():
    ids = np.array([2, 0, 1, 2])
    for loss in ("mse", "binary_cross_entropy"):
        rows = one_hot_targets(loss, ids, 3, np.float32)
        assert rows.dtype == np.float32
        np.testing.assert_array_equal(rows, np.eye(3)[ids])
    assert one_hot_targets("cross_entropy", ids, 3, np.float32) is ids
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], got values"):
        one_hot_targets("mse", np.array([0, 3, 1, 1]), 3, np.float32)
