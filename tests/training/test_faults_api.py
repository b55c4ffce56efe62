"""Faults at the API's edges: checkpoint path templates, a monitor that needs validation
data, bool labels, and a ``resume_from`` that is a FIFO.

Each check must fail before the first epoch (no batch is run) with a message that says
what was expected and what was received. The FIFO test never opens the FIFO: the call
runs in a thread joined with a timeout, and a writer is given if it hangs anyway.
"""

import os
import threading
from pathlib import Path

import numpy as np
import pytest

import cnnumpy
from cnnumpy.callbacks import (
    EarlyStopping,
    LambdaCallback,
    ModelCheckpoint,
    ReduceLROnPlateau,
)
from cnnumpy.layers import Dense, Flatten, ReLU
from cnnumpy.optimizers import SGD

HANG = 10.0  # seconds before a call counts as hung


def tiny_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 4, 4)).astype(np.float32)
    return x, rng.integers(0, 2, n)


def tiny_model(outputs=2, loss="cross_entropy"):
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [Flatten(), Dense(8), ReLU(), Dense(outputs)], input_shape=(1, 4, 4)
    )
    model.compile(optimizer=SGD(lr=0.1), loss=loss)
    return model


def batch_counter(batches: list) -> LambdaCallback:
    return LambdaCallback(on_batch_begin=lambda batch, logs: batches.append(batch))


# -- 1. ModelCheckpoint path templates -------------------------------------------------
@pytest.mark.parametrize(
    "path, field",
    [
        ("ckpt-{epoch.__class__}.npz", "epoch.__class__"),
        ("{epoch.__init__.__globals__}", "epoch.__init__.__globals__"),
        ("m-{loss[0]}.st", "loss[0]"),
        ("m-{epoch:{epoch.__class__}}.st", "epoch.__class__"),  # in a format spec
    ],
)
def test_model_checkpoint_refuses_attribute_and_index_fields(tmp_path, path, field):
    with pytest.raises(ValueError) as caught:
        ModelCheckpoint(tmp_path / path)
    message = str(caught.value)
    assert message.startswith("ModelCheckpoint: ")
    assert repr(field) in message
    assert "val_loss" in message and "epoch" in message  # the allowed keys


@pytest.mark.parametrize(
    "path",
    ["m-{epoch:02d}-{val_loss:.3f}.st", "m-{epoch!r}.st", "m-{{literal}}.st", "m.st"],
)
def test_model_checkpoint_accepts_plain_fields(tmp_path, path):
    assert ModelCheckpoint(tmp_path / path).path == str(tmp_path / path)


def test_model_checkpoint_refuses_unbalanced_braces_at_construction(tmp_path):
    with pytest.raises(ValueError, match=r"ModelCheckpoint: .*m-\{epoch\.st"):
        ModelCheckpoint(tmp_path / "m-{epoch.st")


# -- 2. a monitor that needs validation data -------------------------------------------
def test_early_stopping_on_val_loss_without_validation_data_fails_before_training():
    batches = []
    x, y = tiny_data()
    message = (
        "EarlyStopping: monitor='val_loss' needs validation data "
        "(validation_data= or validation_split=); got none"
    )
    with pytest.raises(ValueError) as caught:
        tiny_model().fit(
            x,
            y,
            epochs=2,
            verbose=0,
            callbacks=[batch_counter(batches), EarlyStopping(monitor="val_loss")],
        )
    assert str(caught.value) == message
    assert batches == []


def test_reduce_lr_on_plateau_on_val_accuracy_without_validation_fails_at_once():
    batches = []
    x, y = tiny_data()
    model = tiny_model()
    model.compile(optimizer=SGD(lr=0.1), loss="cross_entropy", metrics=["accuracy"])
    plateau = ReduceLROnPlateau(monitor="val_accuracy")
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau: monitor='val_acc"):
        model.fit(
            x, y, epochs=2, verbose=0, callbacks=[plateau, batch_counter(batches)]
        )
    assert batches == []


@pytest.mark.parametrize("validation", ["data", "split"])
def test_early_stopping_on_val_loss_with_validation_data_trains(validation):
    x, y = tiny_data()
    options = (
        {"validation_data": (x, y)}
        if validation == "data"
        else {"validation_split": 0.25}
    )
    stopper = EarlyStopping(monitor="val_loss", patience=10)
    history = tiny_model().fit(
        x, y, epochs=2, verbose=0, callbacks=[stopper], **options
    )
    assert len(history["val_loss"]) == 2 and stopper.best_epoch >= 0


def test_early_stopping_on_a_key_an_earlier_callback_adds_still_works():
    """A callback of the user's listed before it may put val_loss in the logs."""
    x, y = tiny_data()
    scores = iter([3.0, 1.0, 2.0, 2.5])
    fake = LambdaCallback(
        on_epoch_end=lambda epoch, logs: logs.update(val_loss=next(scores))
    )
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    tiny_model().fit(x, y, epochs=4, verbose=0, callbacks=[fake, stopper])
    assert stopper.stopped_epoch == 3 and stopper.best_epoch == 1


# -- 3. bool labels --------------------------------------------------------------------
@pytest.mark.parametrize(
    "outputs, loss, shape",
    [
        (2, "cross_entropy", (32,)),  # class ids: False is 0, True is 1
        (2, "cross_entropy", (32, 2)),  # one-hot rows
        (1, "binary_cross_entropy", (32,)),
        (1, "binary_cross_entropy", (32, 1)),
    ],
)
def test_bool_labels_train_and_evaluate_as_zeros_and_ones(outputs, loss, shape):
    x, ids = tiny_data()
    as_ints = ids if shape == (32,) or outputs == 1 else np.eye(2, dtype=int)[ids]
    as_ints = as_ints.reshape(shape)
    as_bools = as_ints.astype(bool)
    results = []
    for labels in (as_ints, as_bools):
        model = tiny_model(outputs, loss)
        history = model.fit(x, labels, epochs=2, batch_size=8, verbose=0, seed=0)
        results.append((history["loss"], model.evaluate(x, labels)))
    assert results[0] == results[1]


def test_bool_class_ids_beyond_the_outputs_are_refused_at_fit_entry():
    x, ids = tiny_data()
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 0\] .* 0 to 1"):
        tiny_model(1, "cross_entropy").fit(x, ids.astype(bool), verbose=0)


def test_bool_validation_labels_are_read_as_zeros_and_ones():
    x, ids = tiny_data()
    history = tiny_model().fit(
        x, ids, epochs=1, verbose=0, validation_data=(x, ids.astype(bool))
    )
    assert np.isfinite(history["val_loss"][0])


# -- 4. resume_from is a FIFO ----------------------------------------------------------
def _no_hang(function, fifo: Path):
    """Run ``function()`` in a thread; fail (after unblocking it) if it hangs."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG)
    if thread.is_alive():
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer ends the wait
        os.close(fd)
        thread.join(HANG)
        pytest.fail(f"hung on the FIFO {fifo}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_resume_from_a_fifo_names_what_it_is(tmp_path):
    fifo = tmp_path / "run"
    os.mkfifo(fifo)
    x, y = tiny_data()

    def fit():
        return tiny_model().fit(x, y, epochs=1, verbose=0, resume_from=fifo)

    with pytest.raises(ValueError) as caught:
        _no_hang(fit, fifo)
    assert str(caught.value) == (
        f"fit: resume_from must be a folder, got {fifo}, which is a FIFO"
    )
    assert fifo.is_fifo()


def test_resume_from_a_regular_file_says_so(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not a folder")
    x, y = tiny_data()
    with pytest.raises(ValueError, match=r"which is a regular file$"):
        tiny_model().fit(x, y, epochs=1, verbose=0, resume_from=path)
