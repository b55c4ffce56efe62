"""curves.png of a char run: bits per character; an image run: loss and accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from cnnumpy.callbacks import History
from cnnumpy.visualize import plots, training_curves

LOSS = [3.0, 2.4, 2.1]  # nats per character, as train_text logs them
VAL_BPC = [3.9, 3.3, 3.1]


def char_history(with_bpc: bool = True) -> History:
    """What ``cnnumpy train --text`` records: loss, bpc, val_loss, val_bpc."""
    history = History()
    for epoch, (loss, val_bpc) in enumerate(zip(LOSS, VAL_BPC, strict=True)):
        logs = {"loss": loss, "val_loss": val_bpc * math.log(2), "val_bpc": val_bpc}
        if with_bpc:
            logs["bpc"] = loss / math.log(2)
        history.on_epoch_end(epoch, logs)
    return history


def image_history() -> dict[str, list[float]]:
    return {
        "loss": [1.0, 0.6, 0.4],
        "accuracy": [0.5, 0.7, 0.8],
        "val_loss": [1.1, 0.7, 0.5],
        "val_accuracy": [0.4, 0.6, 0.7],
    }


def lines_by_label(ax) -> dict[str, np.ndarray]:
    return {line.get_label(): np.asarray(line.get_ydata()) for line in ax.lines}


@pytest.mark.parametrize("with_bpc", [True, False])
def test_a_char_run_is_drawn_in_bits_per_character(with_bpc):
    fig = plots.curves_figure(char_history(with_bpc).history)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "bits per character"
    assert ax.get_xlabel() == "epoch"
    lines = lines_by_label(ax)
    assert len(lines) == 2
    train = next(v for k, v in lines.items() if k.startswith("training"))
    val = next(v for k, v in lines.items() if k.startswith("validation"))
    # training bpc = training loss / ln 2, recorded or not
    np.testing.assert_allclose(train, np.asarray(LOSS) / math.log(2))
    np.testing.assert_allclose(val, VAL_BPC)
    assert "3.100" in next(k for k in lines if k.startswith("validation"))


def test_a_char_run_without_validation_draws_the_training_curve():
    history = {"loss": LOSS, "bpc": [v / math.log(2) for v in LOSS]}
    (ax,) = plots.curves_figure(history).axes
    assert [label.split()[0] for label in lines_by_label(ax)] == ["training"]
    assert ax.get_ylabel() == "bits per character"


def test_the_char_curves_png_is_written(tmp_path):
    path = tmp_path / "curves.png"
    curves = training_curves(char_history(), save=path)
    assert set(curves) == {"loss", "bpc", "val_loss", "val_bpc"}
    np.testing.assert_allclose(curves["val_bpc"], VAL_BPC)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1000, 400)


def test_an_image_run_keeps_the_loss_and_accuracy_panels():
    fig = plots.curves_figure(image_history())
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["", ""]
    loss, accuracy = (lines_by_label(ax) for ax in fig.axes)
    assert list(loss) == ["loss", "val_loss"]
    assert list(accuracy) == ["accuracy", "val_accuracy"]
    np.testing.assert_allclose(loss["val_loss"], [1.1, 0.7, 0.5])
    assert plots.curves_png(image_history())[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_loss_only_history_is_not_taken_for_a_char_run():
    fig = plots.curves_figure({"loss": LOSS})
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert not plots.is_char_history({"loss": LOSS, "val_loss": LOSS})
