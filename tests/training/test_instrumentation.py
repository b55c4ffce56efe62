"""Seed 000's measurements as callbacks: LayerTimer, GradientStats, BatchLossHistory.

The timer is checked against layers that sleep a known time (it measures each layer
as the executor, or the notes' loops with the engine off, run it), against the step
(the layers' sum is at most the step and most of it on a CNN), and for leaving nothing
behind: after fit, or an exception in the middle of it, every layer and the model run
their own methods again. The gradient statistics are compared with norms computed by
hand on a float64 twin trained batch by batch; the batch losses with what
``train_on_batch`` returns.
"""

import math
import time

import engine_modes
import numpy as np
import pytest

import cnnumpy
from cnnumpy.callbacks import (
    BatchLossHistory,
    GradientStats,
    LambdaCallback,
    LayerTimer,
)
from cnnumpy.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Tanh,
)
from cnnumpy.optimizers import SGD


@pytest.fixture(params=["engine", "book"])
def engine_mode(request):
    """The engine's executor, then the notes' loops on the book alone."""
    with engine_modes.running(request.param):
        yield request.param


class _Pause(Layer):
    """The identity, sleeping a known time in each pass (``_``: not registered)."""

    def __init__(self, forward_s=0.0, backward_s=0.0, inference_s=0.0, fail=False):
        super().__init__()
        self.forward_s, self.backward_s = forward_s, backward_s
        self.inference_s, self.fail = inference_s, fail

    def forward(self, x, training=False):
        if self.fail:
            raise RuntimeError("a layer failed mid-step")
        time.sleep(self.forward_s if training else self.inference_s)
        return x

    def backward(self, dout):
        time.sleep(self.backward_s)
        return dout


def cnn(*extra, seed=0):
    cnnumpy.seed(seed)
    model = cnnumpy.Sequential(
        [Conv2D(8, 3, padding=1), ReLU(), MaxPool2D(2), *extra, Conv2D(8, 3),
         ReLU(), Flatten(), Dense(4)],
        input_shape=(1, 16, 16),
    )  # fmt: skip
    model.compile(optimizer=SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
    return model


def images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 16, 16)).astype(np.float32)
    return x, rng.integers(0, 4, n)


def wrapped(model) -> set:
    """The methods replaced on the instances (empty when nothing is left wrapped)."""
    found = {("model", "train_step")} & {("model", k) for k in vars(model)}
    for i, layer in enumerate(model.layers):
        found |= {(i, k) for k in ("forward", "backward") if k in vars(layer)}
    return found


# -- LayerTimer ------------------------------------------------------------------------
def lenet_like():
    """Enough work in the convolutions for the step's time to be mostly theirs."""
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [Conv2D(16, 5, padding=2), ReLU(), MaxPool2D(2), Conv2D(16, 3), ReLU(),
         Flatten(), Dense(4)],
        input_shape=(1, 28, 28),
    )  # fmt: skip
    model.compile(optimizer=SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
    return model


def test_timer_reports_every_layer_with_positive_times(engine_mode):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    model, timer = lenet_like(), LayerTimer()
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[timer])
    n = len(model.layers)
    assert [r["epoch"] for r in timer.rows] == [0] * n + [1] * n
    assert [r["layer"] for r in timer.rows] == list(range(n)) * 2
    assert [r["name"] for r in timer.rows[:n]] == [repr(la) for la in model.layers]
    for row in timer.rows:
        assert row["forward_ms"] > 0 and row["backward_ms"] > 0, row
        assert row["total_ms"] == row["forward_ms"] + row["backward_ms"]
    for epoch, step in enumerate(timer.steps):
        rows = timer.rows[n * epoch : n * (epoch + 1)]
        layers_ms = sum(r["total_ms"] for r in rows)
        assert step["steps"] == 2
        # The layers run inside the step, so they add up to at most its time; on
        # this CNN the convolutions dominate: the loss and the update (the rest) take
        # less than half (measured: 1% to 16% with the engine, 0.2% on the book;
        # a few ms of the OS now and then land anywhere, the rest included).
        assert 0.5 * step["step_ms"] < layers_ms <= step["step_ms"]
        assert step["rest_ms"] == pytest.approx(step["step_ms"] - layers_ms)
        assert sum(r["share"] for r in rows) == pytest.approx(
            layers_ms / step["step_ms"]
        )
        # and the steps fit in the epoch that fit timed on its own clock
        assert step["steps"] * step["step_ms"] <= 1e3 * history["time"][epoch]


def test_timer_measures_each_pass_of_each_layer(engine_mode):
    """A layer that sleeps 4 ms forward and 8 ms backward in training (and 60 ms in
    inference, which must not count): the timer sees 4 and 8 ms, at the right index."""
    pause = _Pause(forward_s=0.004, backward_s=0.008, inference_s=0.060)
    model, (x, y), timer = cnn(pause), images(32), LayerTimer()
    model.fit(
        x, y, epochs=1, batch_size=16, verbose=0, callbacks=[timer],
        validation_data=(x[:4], y[:4]),
    )  # fmt: skip
    row = timer.rows[3]
    assert row["name"] == repr(pause)
    # time.sleep sleeps at least that long (and rarely 1 ms more); counting the
    # validation pass would add 60 ms / 2 steps
    assert 4.0 <= row["forward_ms"] < 4.0 + 10.0
    assert 8.0 <= row["backward_ms"] < 8.0 + 10.0
    assert row["share"] > 0.5


def test_timer_does_not_change_training_or_fused_inference():
    """Same weights, same logs, same (fused) predictions with and without it."""
    x, y = images()
    runs = []
    for callbacks in ([], [LayerTimer()]):
        cnnumpy.seed(0)
        # Conv, BatchNorm, ReLU, pool: folded and fused in inference
        layers = [Conv2D(8, 3, padding=1), BatchNorm(), ReLU(), MaxPool2D(2)]
        model = cnnumpy.Sequential(
            [*layers, Flatten(), Dense(4)], input_shape=(1, 16, 16)
        )
        model.compile(optimizer=SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
        history = model.fit(
            x, y, epochs=2, batch_size=16, verbose=0, seed=3,
            validation_data=(x[:16], y[:16]), callbacks=callbacks,
        )  # fmt: skip
        runs.append((model.get_weights(), history.history, model.predict(x)))
    (w0, h0, p0), (w1, h1, p1) = runs
    for a, b in zip(w0, w1, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert {k: v for k, v in h0.items() if k != "time"} == {
        k: v for k, v in h1.items() if k != "time"
    }
    np.testing.assert_array_equal(p0, p1)


def test_timer_table():
    model, (x, y), timer = cnn(), images(32), LayerTimer()
    with pytest.raises(ValueError, match=r"LayerTimer.table: nothing recorded yet"):
        timer.table()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[timer])
    text = timer.table()
    assert text.startswith("epoch 1: 2 steps of ")
    for layer in model.layers:
        assert repr(layer) in text
    assert "loss, update, rest" in text and "%" in text
    assert timer.table(0).startswith("epoch 0: ")
    with pytest.raises(ValueError, match=r"epoch 5 was not recorded; got \[0, 1\]"):
        timer.table(5)


# -- detaching ------------------------------------------------------------------------
def test_timer_wraps_only_while_fit_runs(engine_mode):
    model, (x, y), timer = cnn(), images(32), LayerTimer()
    seen = []
    spy = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(wrapped(model)))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[timer, spy])
    assert len(seen[0]) == 2 * len(model.layers) + 1  # every pass, and the step
    assert wrapped(model) == set() and not timer.attached
    assert type(model.layers[0]).forward is Conv2D.forward
    timer.detach()  # again: nothing to do


@pytest.mark.parametrize("where", ["callback", "layer", "interrupt"])
def test_an_exception_mid_fit_leaves_nothing_wrapped(engine_mode, where):
    pause = _Pause()
    model, (x, y), timer = cnn(pause), images(64), LayerTimer()
    errors = []

    def fail(batch, logs):
        if batch == 2:
            if where == "layer":
                pause.fail = True  # raises inside the next training step
            else:
                raise RuntimeError("stop") if where == "callback" else KeyboardInterrupt

    callbacks = [
        timer,
        LambdaCallback(on_batch_end=fail, on_train_error=errors.append),
    ]
    expected = KeyboardInterrupt if where == "interrupt" else RuntimeError
    with pytest.raises(expected):
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
    assert wrapped(model) == set() and not timer.attached
    assert len(errors) == 1 and isinstance(errors[0], expected)
    pause.fail = False
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)  # runs unwrapped, untimed
    assert timer.steps == []


def test_two_timers_in_one_fit_are_refused():
    model, (x, y) = cnn(), images(32)
    with pytest.raises(ValueError, match=r"already timed by another LayerTimer"):
        model.fit(x, y, verbose=0, callbacks=[LayerTimer(), LayerTimer()])
    assert wrapped(model) == set()


# -- GradientStats ---------------------------------------------------------------------
def tiny_float64(seed=0):
    cnnumpy.seed(seed)
    model = cnnumpy.Sequential([Dense(3), Tanh(), Dense(2)], input_shape=(4,))
    model.astype(np.float64)
    model.compile(optimizer=SGD(lr=0.1), loss="mse", metrics=[])
    return model


def by_hand(x, y, batch_size, epochs):
    """Per epoch and parameter: (norm, mean |g|, max |g|, update ratio), from a twin
    trained with train_on_batch. Plain SGD: W_after - W_before = -lr * g."""
    model, expected = tiny_float64(), []
    for _ in range(epochs):
        per_batch = []
        for lo in range(0, len(x), batch_size):
            before = [la.params[k].copy() for la in model.layers for k in la.params]
            model.train_on_batch(x[lo : lo + batch_size], y[lo : lo + batch_size])
            grads = [la.grads[k] for la in model.layers for k in la.params]
            per_batch.append([
                (np.linalg.norm(g), np.abs(g).mean(), np.abs(g).max(),
                 0.1 * np.linalg.norm(g) / np.linalg.norm(w))
                for g, w in zip(grads, before, strict=True)
            ])  # fmt: skip
        stats = np.array(per_batch)  # (batches, params, 4)
        # a zero bias (its initialisation) has no ratio: left out of the mean
        ratio = [[r for r in column if np.isfinite(r)] for column in stats[..., 3].T]
        expected.append(
            np.stack([stats[..., 0].mean(0), stats[..., 1].mean(0),
                      stats[..., 2].max(0), [np.mean(r) if r else np.nan
                                             for r in ratio]], axis=1)
        )  # fmt: skip
    return np.concatenate(expected), model


@pytest.mark.parametrize("batch_size", [8, 3])
def test_gradient_stats_equal_norms_computed_by_hand(engine_mode, batch_size):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
    stats = GradientStats()
    model = tiny_float64()
    with np.errstate(divide="ignore", invalid="ignore"):
        model.fit(x, y, epochs=2, batch_size=batch_size, shuffle=False, verbose=0,
                  callbacks=[stats])  # fmt: skip
        expected, twin = by_hand(x, y, batch_size, epochs=2)
    assert [(r["epoch"], r["layer"], r["param"]) for r in stats.rows] == [
        (e, i, k) for e in (0, 1) for i in (0, 2) for k in ("W", "b")
    ]
    got = [[r["norm"], r["mean_abs"], r["max_abs"], r["update_ratio"]]
           for r in stats.rows]  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)
    weights = [np.linalg.norm(la.params[k]) for la in twin.layers for k in la.params]
    np.testing.assert_allclose([r["weight_norm"] for r in stats.rows[4:]], weights)


def test_gradient_stats_details():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
    model, stats = tiny_float64(), GradientStats(update_ratio=False)
    model.layers[0].trainable = False  # the optimiser skips it: so do the stats
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[stats])
    assert [(r["layer"], r["param"]) for r in stats.rows] == [(2, "W"), (2, "b")]
    assert all(math.isnan(r["update_ratio"]) for r in stats.rows)
    text = stats.table()
    assert text.startswith("epoch 0\n") and "||dW||/||W||" in text
    assert repr(model.layers[2]) in text and repr(model.layers[0]) not in text
    with pytest.raises(TypeError, match=r"update_ratio must be True or False, got 1"):
        GradientStats(update_ratio=1)
    with pytest.raises(ValueError, match=r"GradientStats.table: nothing recorded"):
        GradientStats().table()


# -- BatchLossHistory ------------------------------------------------------------------
def test_batch_losses_equal_train_on_batch(engine_mode):
    x, y = images(40)
    losses, model = BatchLossHistory(), cnn()
    history = model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
                        callbacks=[losses])  # fmt: skip
    twin = cnn()
    expected = [
        [twin.train_on_batch(x[lo : lo + 16], y[lo : lo + 16]) for lo in (0, 16, 32)]
        for _ in range(2)
    ]
    assert losses.losses == expected and losses.epochs == [0, 1]
    np.testing.assert_array_equal(losses.flat, np.concatenate(expected))
    # History's epoch loss is their mean, weighted by the batch sizes (16, 16, 8)
    weighted = [np.dot(e, [16, 16, 8]) / 40 for e in expected]
    np.testing.assert_allclose(history["loss"], weighted, rtol=1e-12)


def test_measurements_survive_a_resumed_run(tmp_path):
    x, y = images(32)
    first = [BatchLossHistory(), GradientStats(), LayerTimer()]
    cnn().fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=first,
              resume_from=tmp_path)  # fmt: skip
    again = [BatchLossHistory(), GradientStats(), LayerTimer()]
    cnn().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=again,
              resume_from=tmp_path)  # fmt: skip
    losses, stats, timer = again
    assert losses.epochs == [0, 1] and losses.losses[0] == first[0].losses[0]
    assert [r["epoch"] for r in stats.rows] == [0] * 6 + [1] * 6  # 3 W, 3 b
    assert stats.rows[:6] == first[1].rows
    assert [s["epoch"] for s in timer.steps] == [0, 1]
