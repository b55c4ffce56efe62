"""Sequential: building, passes, fit/evaluate/predict and callbacks.

Also reproducibility and errors.
"""

import numpy as np
import pytest

import cnnumpy
from cnnumpy.callbacks import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from cnnumpy.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from cnnumpy.optimizers import SGD, Adam
from cnnumpy.schedules import StepDecay


def small_cnn(seed=0):
    cnnumpy.seed(seed)
    return cnnumpy.Sequential(
        [Conv2D(4, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(3)],
        input_shape=(1, 8, 8),
    )


def blobs(n=96, seed=0):
    """Three classes of 8x8 images, each with a bright quadrant of its own."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    for k, (r, c) in enumerate([(0, 0), (0, 4), (4, 0)]):
        x[y == k, 0, r : r + 4, c : c + 4] += 1.5
    return x, y


def test_xor_network_of_seed_002():
    """Seed 002: Dense 3 tanh, Dense 1 tanh, MSE, lr 0.1.

    1000 epochs, one sample at a time.
    """
    cnnumpy.seed(0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    model = cnnumpy.Sequential(
        [
            Dense(3, kernel_initializer="glorot_uniform"),
            Tanh(),
            Dense(1, kernel_initializer="glorot_uniform"),
            Tanh(),
        ],
        input_shape=(2,),
    )
    model.compile(optimizer=SGD(lr=0.1), loss="mse", metrics=[])
    history = model.fit(x, y, epochs=1000, batch_size=1, verbose=0, seed=0)
    assert len(history["loss"]) == 1000 and history["loss"][-1] < history["loss"][0]
    np.testing.assert_allclose(model.predict(x), y, atol=0.1)


def test_fit_learns_and_reports_history():
    x, y = blobs()
    model = small_cnn()
    model.compile(optimizer=Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(
        x[:64],
        y[:64],
        epochs=8,
        batch_size=16,
        verbose=0,
        seed=1,
        validation_data=(x[64:], y[64:]),
    )
    assert set(history.history) >= {
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
    }
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] >= 0.9
    probs = model.predict(x[64:])
    assert probs.shape == (32, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    result = model.evaluate(x[64:], y[64:])
    assert result["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y[64:]))


def test_one_hot_and_ids_give_the_same_training():
    x, y = blobs()
    runs = []
    for labels in (y, np.eye(3, dtype=np.float32)[y]):
        model = small_cnn(3)
        model.compile(optimizer=SGD(lr=0.1, momentum=0.9), loss="cross_entropy")
        model.fit(x, labels, epochs=2, batch_size=32, verbose=0, seed=5)
        runs.append(model.get_weights())
    for a, b in zip(*runs, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_seeded_runs_are_bit_identical():
    x, y = blobs()
    weights = []
    for _ in range(2):
        model = small_cnn(7)
        model.compile(optimizer=SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
        model.fit(x, y, epochs=2, batch_size=10, verbose=0, seed=11)
        weights.append(model.get_weights())
    for a, b in zip(*weights, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_predict_is_batched_and_matches_forward():
    x, _ = blobs(50)
    model = small_cnn()
    model.compile(loss="cross_entropy")
    full = model.predict(x, batch_size=7)
    logits = model.forward(x)
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(full, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_float64_model():
    model = small_cnn().astype(np.float64)
    x, y = blobs(8)
    model.compile(optimizer="sgd", loss="cross_entropy")
    model.train_on_batch(x, y)
    assert all(
        p.dtype == np.float64 for layer in model.layers for p in layer.params.values()
    )
    assert model.predict(x).dtype == np.float64


def test_uint8_images_are_cast_not_refused():
    model = small_cnn()
    model.compile(loss="cross_entropy")
    x = np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8), dtype=np.uint8)
    assert model.predict(x).shape == (4, 3)


def test_early_stopping_restores_best_weights():
    x, y = blobs()
    model = small_cnn()
    model.compile(optimizer=SGD(lr=0.05), loss="cross_entropy")
    # a metric that improves at epoch 1, then gets worse: stop after `patience` bad
    # epochs
    fake = iter([3.0, 1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0])
    seen = {}

    def inject(epoch, logs):
        logs["val_loss"] = next(fake)
        if epoch == 1:
            seen["best"] = model.get_weights()

    stopper = EarlyStopping(monitor="val_loss", patience=2)
    history = model.fit(
        x,
        y,
        epochs=8,
        batch_size=32,
        verbose=0,
        seed=0,
        callbacks=[LambdaCallback(on_epoch_end=inject), stopper],
    )
    assert (
        len(history["loss"]) == 4
        and stopper.stopped_epoch == 3
        and stopper.best_epoch == 1
    )
    for a, b in zip(model.get_weights(), seen["best"], strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_reduce_lr_on_plateau_divides_by_ten():
    x, y = blobs(32)
    model = small_cnn()
    model.compile(optimizer=SGD(lr=0.1), loss="cross_entropy")
    flat = LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(val_loss=1.0))
    plateau = ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.1, min_delta=0)
    history = model.fit(
        x, y, epochs=5, batch_size=32, verbose=0, callbacks=[flat, plateau]
    )
    # PyTorch's rule: reduce when the number of bad epochs exceeds the patience. Epoch 0
    # sets the best, epochs 1 and 2 are bad (2 > 1): 0.1 -> 0.01 after epoch 2; then
    # after epoch 4 -> 0.001. The history records the rate each epoch was trained with.
    np.testing.assert_allclose(history["lr"], [0.1, 0.1, 0.1, 0.01, 0.01])
    assert model.optimizer.lr == pytest.approx(0.001)


def test_schedule_and_csv_logger(tmp_path):
    x, y = blobs(32)
    model = small_cnn()
    model.compile(optimizer=SGD(lr=0.1), loss="cross_entropy")
    path = tmp_path / "log.csv"
    model.fit(
        x,
        y,
        epochs=3,
        batch_size=16,
        verbose=0,
        callbacks=[
            LearningRateScheduler(StepDecay(0.1, step_size=1, gamma=0.5)),
            CSVLogger(path),
        ],
    )
    lines = path.read_text().strip().splitlines()
    assert lines[0].startswith("epoch,loss,accuracy")
    lrs = [
        float(line.split(",")[lines[0].split(",").index("lr")]) for line in lines[1:]
    ]
    np.testing.assert_allclose(lrs, [0.1, 0.05, 0.025])


def test_terminate_on_nan_stops_at_once():
    x, y = blobs(64)
    model = small_cnn()
    model.compile(optimizer=SGD(lr=1e30), loss="cross_entropy")
    stop = TerminateOnNaN()
    with np.errstate(all="ignore"):
        history = model.fit(
            x * 1e10, y, epochs=5, batch_size=8, verbose=0, callbacks=[stop]
        )
    assert stop.terminated_at is not None and len(history.epoch) == 1


def test_own_callback_sees_every_batch():
    x, y = blobs(40)
    model = small_cnn()
    model.compile(loss="cross_entropy")
    batches = []
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=16,
        verbose=0,
        callbacks=[LambdaCallback(on_batch_end=lambda b, logs: batches.append(b))],
    )
    assert batches == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            np.zeros((4, 1, 9, 8)),
            r"fit: x must have shape \(N, 1, 8, 8\) for this model, got \(4, 1, 9, 8\)",
        ),
        (np.zeros((4, 8, 8)), r"fit: x must have shape \(N, 1, 8, 8\)"),
        (np.zeros((0, 1, 8, 8)), "fit: x is empty"),
        (np.array([["a"] * 64] * 4).reshape(4, 1, 8, 8), "fit: x must hold numbers"),
        (np.full((4, 1, 8, 8), np.nan), r"fit: x contains 256 NaN or infinite"),
    ],
)
def test_fit_rejects_bad_inputs(bad, message):
    model = small_cnn()
    model.compile(loss="cross_entropy")
    with pytest.raises((ValueError, TypeError), match=message):
        model.fit(bad, np.zeros(len(bad), dtype=int), verbose=0)


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            np.array([0, 1, 3, 2]),
            r"fit: y class ids must lie in \[0, 2\] .* from 0 to 3",
        ),
        (np.array([0, 1, -1, 2]), r"fit: y class ids must lie in \[0, 2\]"),
        (np.array([0, 1, 2]), r"fit: y must have one entry per example \(4\), got 3"),
        (
            np.zeros((4, 5)),
            r"fit: y must be class ids \(N,\) or one-hot \(N, 3\), got shape \(4, 5\)",
        ),
        (np.array([0.5, 1, 2, 0]), "fit: y class ids must be whole numbers"),
    ],
)
def test_fit_rejects_bad_labels(labels, message):
    model = small_cnn()
    model.compile(loss="cross_entropy")
    with pytest.raises(ValueError, match=message):
        model.fit(np.zeros((4, 1, 8, 8)), labels, verbose=0)


def test_other_boundary_errors():
    model = small_cnn()
    with pytest.raises(ValueError, match="fit: call model.compile"):
        model.fit(np.zeros((2, 1, 8, 8)), np.zeros(2, int))
    model.compile(loss="cross_entropy")
    with pytest.raises(ValueError, match="predict: x must have shape"):
        model.predict(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="evaluate: y must have one entry per example"):
        model.evaluate(np.zeros((2, 1, 8, 8)), np.zeros(3, int))
    with pytest.raises(ValueError, match="train_on_batch: x contains 1 NaN"):
        x = np.zeros((2, 1, 8, 8))
        x[0, 0, 0, 0] = np.inf
        model.train_on_batch(x, np.zeros(2, int))
    with pytest.raises(
        ValueError, match="fit: batch_size must be a positive integer, got 0"
    ):
        model.fit(np.zeros((2, 1, 8, 8)), np.zeros(2, int), batch_size=0)
    with pytest.raises(TypeError, match="Sequential.add: expected a cnnumpy Layer"):
        model.add("relu")


def test_user_subclass_does_not_shadow_a_builtin_layer_for_loading():
    from cnnumpy.layers import LAYERS

    class Dense(cnnumpy.layers.Dense):  # noqa: F811 - a user's own variant
        pass

    assert LAYERS["Dense"] is cnnumpy.layers.Dense


def test_bad_input_shape_and_tiny_last_batch_with_batchnorm():
    from cnnumpy.layers import BatchNorm

    with pytest.raises(ValueError, match=r"input_shape must be positive sizes"):
        cnnumpy.Sequential([Dense(2)], input_shape=(3, 0, 8))
    model = cnnumpy.Sequential(
        [Dense(4), BatchNorm(), ReLU(), Dense(2)], input_shape=(3,)
    )
    model.compile(loss="cross_entropy")
    x, y = np.zeros((65, 3), np.float32), np.zeros(65, int)
    with pytest.raises(ValueError, match="leave a last batch of 1"):
        model.fit(x, y, batch_size=64, verbose=0)
    model.fit(x, y, batch_size=13, verbose=0)  # 5 batches of 13: fine


def test_a_dropped_model_is_freed_at_once():
    """The model owns its executor, which holds it weakly: no reference cycle, so
    ``del model`` frees it (and would stop its replicas) without the cycle collector."""
    import gc
    import weakref

    gc.disable()
    try:
        model = cnnumpy.Sequential([Dense(2)], input_shape=(3,))
        model.compile("sgd", "mse", metrics=[])
        model.train_on_batch(np.ones((2, 3)), np.ones((2, 2)))
        alive = weakref.ref(model)
        del model
        assert alive() is None
    finally:
        gc.enable()
