"""``cnnumpy train``'s recipe options (docs/recipes.md), one tiny training each on the
tiny MNIST of test_cli.py: ``--cutout``, ``--label-smoothing``, ``--warmup`` with the
per-step ``--schedule onecycle`` or ``cosine``, ``--no-decay-biases``, ``--ema`` and
``--tta-flip``."""

import csv
import json
import warnings

import numpy as np
import pytest
from safetensors.numpy import load_file

# the tiny MNIST of test_cli.py, and its fixtures (tiny_sizes is autouse)
from test_cli import N_TEST, N_TRAIN, data_dir, tiny_sizes  # noqa: F401

from cnnumpy import load_model, schedules
from cnnumpy.cli import main, runs
from cnnumpy.data import ChecksumWarning, sources

TINY = [
    "train",
    "--model",
    "lenet1",
    "--dataset",
    "mnist",
    "--epochs",
    "2",
    "--batch-size",
    "16",  # 48 training images: 3 steps an epoch, 6 in all
    "--lr",
    "0.1",
    "--val-split",
    "0.25",
    "--seed",
    "0",
    "--quiet",
    "--no-report",
]
STEPS = 6


def train(data_dir, out, capsys, *options) -> tuple[int, str, str]:
    argv = [*TINY, "--data-dir", data_dir, "--out", out, *options]
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def history(out, key) -> list[float]:
    with open(out / runs.HISTORY, newline="") as f:
        return [float(row[key]) for row in csv.DictReader(f)]


def config(out) -> dict:
    return json.loads((out / runs.CONFIG).read_text())


@pytest.fixture(scope="module")
def plain(data_dir, tmp_path_factory):
    """The same tiny run without any recipe: the losses to differ from."""
    out = tmp_path_factory.mktemp("plain") / "run"
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        mp.setitem(sources.MNIST.sizes, "train", N_TRAIN)  # tiny_sizes is too late
        mp.setitem(sources.MNIST.sizes, "test", N_TEST)  # for a module fixture
        warnings.simplefilter("ignore", ChecksumWarning)
        assert main([*TINY, "--data-dir", str(data_dir), "--out", str(out)]) == 0
    return history(out, "loss")


def test_cutout_changes_the_training_images(data_dir, tmp_path, capsys, plain):
    out = tmp_path / "run"
    code, stdout, _ = train(data_dir, out, capsys, "--cutout", 8)
    assert code == 0 and "recipes: cutout 8" in stdout
    assert config(out)["cutout"] == 8
    assert history(out, "loss") != plain


def test_label_smoothing_trains_and_is_saved_with_the_model(
    data_dir, tmp_path, capsys, plain
):
    out = tmp_path / "run"
    code, stdout, _ = train(data_dir, out, capsys, "--label-smoothing", 0.1)
    assert code == 0 and "label smoothing 0.1" in stdout
    assert load_model(out / runs.MODEL).loss.label_smoothing == 0.1
    assert history(out, "loss") != plain
    code, _, err = train(
        data_dir, tmp_path / "mse", capsys, "--label-smoothing", 0.1, "--loss", "mse"
    )
    assert code == 2 and "--label-smoothing needs --loss cross_entropy" in err


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("onecycle", schedules.OneCycle(0.1, STEPS, warmup_steps=3)),
        ("cosine", schedules.WarmupCosine(0.1, STEPS, warmup_steps=3)),
    ],
)
def test_warmup_sets_the_rate_of_every_step(
    schedule, expected, data_dir, tmp_path, capsys
):
    """history.csv's lr is the rate of each epoch's last step: steps 2 and 5."""
    out = tmp_path / "run"
    options = ("--schedule", schedule, "--warmup", 1)
    code, stdout, _ = train(data_dir, out, capsys, *options)
    assert code == 0 and "warm-up 1 epochs" in stdout
    np.testing.assert_allclose(
        history(out, "lr"), [expected(2), expected(5)], rtol=1e-12
    )
    code, _, err = train(data_dir, tmp_path / "bad", capsys, "--warmup", 1)
    assert code == 2 and "--warmup needs --schedule cosine or onecycle" in err


def test_onecycle_without_warmup_rises_over_30_percent(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, _ = train(data_dir, out, capsys, "--schedule", "onecycle")
    expected = schedules.OneCycle(0.1, STEPS)
    assert code == 0
    np.testing.assert_allclose(
        history(out, "lr"), [expected(2), expected(5)], rtol=1e-12
    )


def test_no_decay_biases_reaches_the_optimizer(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    options = ("--weight-decay", 0.01, "--no-decay-biases")
    code, stdout, _ = train(data_dir, out, capsys, *options)
    assert code == 0 and "decay_biases=False" in stdout
    assert config(out)["decay_biases"] is False
    checkpoint = load_model(out / runs.CHECKPOINT_DIR / runs.CHECKPOINT)
    assert checkpoint.optimizer.decay_biases is False
    code, _, err = train(data_dir, out, capsys, *options[:2], "--resume")
    assert code == 2 and "decay_biases: False -> True" in err


def test_ema_saves_and_tests_the_averaged_weights(data_dir, tmp_path, capsys):
    """The checkpoint keeps the last weights and the average beside them; the
    saved model is the average."""
    out = tmp_path / "run"
    code, stdout, _ = train(data_dir, out, capsys, "--ema", 0.9)
    assert code == 0 and "EMA 0.9" in stdout
    checkpoint_file = out / runs.CHECKPOINT_DIR / runs.CHECKPOINT
    tensors = load_file(checkpoint_file)
    averaged = {k: v for k, v in tensors.items() if ".EMA." in k}
    assert averaged, sorted(tensors)
    final = load_model(out / runs.MODEL).get_weights()
    last = load_model(checkpoint_file).get_weights()
    assert not np.allclose(final[0]["W"], last[0]["W"])
    (conv_w,) = [v for k, v in averaged.items() if k.endswith(".0.W")]
    np.testing.assert_array_equal(final[0]["W"], conv_w)
    options = ("--ema", 0.9, "--epochs", 3, "--resume")
    code, stdout, _ = train(data_dir, out, capsys, *options)
    assert code == 0 and "epoch 3/3" in stdout


def test_tta_flip_adds_the_flip_averaged_test(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = train(data_dir, out, capsys, "--tta-flip")
    assert code == 0 and "with flip TTA:" in stdout
    metrics = json.loads((out / runs.METRICS).read_text())
    assert 0 <= metrics["tta_flip_test_accuracy"] <= 1
    assert metrics["tta_flip_test_loss"] > 0
    assert metrics["tta_flip_test_loss"] != metrics["test_loss"]


def test_char_models_refuse_the_image_recipes(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("abcd" * 200)
    argv = ["train", "--model", "char_rnn", "--text", text, "--out", tmp_path / "r"]
    code = main([str(a) for a in [*argv, "--ema", "0.9", "--cutout", "4"]])
    err = capsys.readouterr().err
    assert code == 2 and "--cutout, --ema is not for char models" in err


def test_nesterov_trains_and_is_saved_with_the_optimizer(
    data_dir, tmp_path, capsys, plain
):
    out = tmp_path / "run"
    code, stdout, _ = train(data_dir, out, capsys, "--nesterov")
    assert code == 0 and "Nesterov momentum" in stdout
    assert config(out)["nesterov"] is True
    assert "SGD(lr=0.1, momentum=0.9, nesterov=True" in stdout
    assert history(out, "loss") != plain
    code, _, err = train(
        data_dir, tmp_path / "adam", capsys, "--nesterov", "--optimizer", "adam"
    )
    assert code == 2 and "--nesterov needs --optimizer sgd" in err
