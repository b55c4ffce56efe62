"""Graph models of several inputs and several outputs through the public API:
compile (one loss per output, loss_weights), fit, evaluate (per-output metric
names), predict (lists), train_on_batch, clear TypeErrors for the wrong number of
arrays, save / load, and ``fit(resume_from=...)``.
"""

import graph_blocks
import numpy as np
import pytest

import cnnumpy
from cnnumpy import layers as L
from cnnumpy.losses import MSE, CrossEntropy
from cnnumpy.saving.loading import load_model


def two_inputs(seed=0):
    """An image (1, 6, 6) and a vector (3,), joined by Concatenate after Flatten and
    Dense: one output of 3 classes."""
    cnnumpy.seed(seed)
    image, vector = cnnumpy.Input((1, 6, 6), name="image"), cnnumpy.Input((3,))
    h = L.Flatten()(L.ReLU()(L.Conv2D(2, 3)(image)))  # (32,)
    v = L.ReLU()(L.Dense(4)(vector))
    out = L.Dense(3)(L.Concatenate()([h, v]))
    model = cnnumpy.Model([image, vector], out).astype("float64")
    model.compile(cnnumpy.optimizers.Adam(0.01), "cross_entropy", ["accuracy"])
    return model


def two_outputs(seed=0, weights=(1.0, 0.5)):
    """One input (5,), a shared Dense, two heads: 3 classes (``digit``) and 2 numbers
    (unnamed: ``output_1``)."""
    cnnumpy.seed(seed)
    x = cnnumpy.Input((5,))
    h = L.Tanh()(L.Dense(8)(x))
    heads = [L.Dense(3, name="digit")(h), L.Dense(2)(h)]
    model = cnnumpy.Model(x, heads).astype("float64")
    model.compile(
        cnnumpy.optimizers.Adam(0.01),
        ["cross_entropy", "mse"],
        metrics=["accuracy"],
        loss_weights=list(weights),
    )
    return model


def data_two_inputs(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = [rng.standard_normal((n, 1, 6, 6)), rng.standard_normal((n, 3))]
    return x, rng.integers(0, 3, n)


def data_two_outputs(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)), [rng.integers(0, 3, n), rng.normal(size=(n, 2))]


def test_two_inputs_fit_evaluate_predict():
    model = two_inputs()
    x, y = data_two_inputs()
    history = model.fit(x, y, epochs=6, batch_size=8, verbose=0, seed=0)
    losses = history.history["loss"]
    assert len(losses) == 6 and losses[-1] < 0.9 * losses[0]
    scores = model.evaluate(x, y)
    assert set(scores) == {"loss", "accuracy"}
    probs = model.predict(x, batch_size=5)
    assert isinstance(probs, np.ndarray) and probs.shape == (24, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    raw = model.forward(x)
    assert scores["loss"] == pytest.approx(CrossEntropy()(raw, y), rel=1e-12)
    assert isinstance(model.train_on_batch(x, y), float)


def test_two_outputs_loss_is_the_weighted_sum_and_metrics_are_per_output():
    model = two_outputs(weights=(1.0, 0.5))
    x, y = data_two_outputs()
    history = model.fit(x, y, epochs=8, batch_size=8, verbose=0, seed=0)
    assert history.history["loss"][-1] < 0.9 * history.history["loss"][0]
    assert {"digit_accuracy", "output_1_accuracy"} <= set(history.history)
    scores = model.evaluate(x, y)
    assert set(scores) == {"loss", "digit_accuracy", "output_1_accuracy"}
    logits, numbers = model.forward(x)
    want = CrossEntropy()(logits, y[0]) + 0.5 * MSE()(numbers, y[1])
    assert scores["loss"] == pytest.approx(want, rel=1e-12)
    accuracy = np.mean(logits.argmax(axis=1) == y[0])
    assert scores["digit_accuracy"] == pytest.approx(accuracy)
    probs, values = model.predict(x, batch_size=7)
    assert probs.shape == (24, 3) and values.shape == (24, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(values, numbers, rtol=1e-12)  # mse: unchanged


def test_loss_weights_scale_each_outputs_gradient():
    """A weight of 0 on the mse head: its Dense gets a zero gradient and stays; the
    shared Dense still learns from the other head."""
    model = two_outputs(weights=(1.0, 0.0))
    x, y = data_two_outputs(8)
    head = model.layers[model.output_ids[1] - model.n_inputs]
    shared = model.layers[0]
    before_head, before_shared = head.params["W"].copy(), shared.params["W"].copy()
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(head.grads["W"], 0.0)
    np.testing.assert_array_equal(head.params["W"], before_head)
    assert np.abs(shared.params["W"] - before_shared).max() > 1e-4


def test_compile_checks_losses_and_weights():
    model = two_outputs()
    with pytest.raises(ValueError, match="compile: expected 2 losses .*got 3"):
        model.compile("sgd", ["mse", "mse", "mse"])
    with pytest.raises(ValueError, match=r"loss_weights must be 2 numbers >= 0"):
        model.compile("sgd", "mse", loss_weights=[1.0])
    with pytest.raises(ValueError, match=r"loss_weights must be 2 numbers >= 0"):
        model.compile("sgd", "mse", loss_weights=[1.0, -1.0])
    single = two_inputs()
    with pytest.raises(ValueError, match="loss_weights is for models of several"):
        single.compile("sgd", "cross_entropy", loss_weights=[1.0])


ONE_PER_INPUT = "arrays, one per model input, got"
WRONG_INPUTS = {  # call -> (what is called, the message)
    "predict": (lambda m, x, y: m.predict(x[0]), f"predict: x must be a list of 2 "
                f"{ONE_PER_INPUT} ndarray"),
    "fit": (lambda m, x, y: m.fit([x[0]], y, verbose=0), f"fit: x must be a list "
            f"of 2 {ONE_PER_INPUT} 1"),
    "evaluate": (lambda m, x, y: m.evaluate([*x, x[1]], y), f"evaluate: x must be a "
                 f"list of 2 {ONE_PER_INPUT} 3"),
    "train_on_batch": (lambda m, x, y: m.train_on_batch(x[1], y), "train_on_batch: x"
                       " must be a list of 2 arrays"),
    "forward": (lambda m, x, y: m.forward(x[0]), "Model: expected a list of 2 input "
                "arrays, got ndarray"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(WRONG_INPUTS))
def test_wrong_number_of_input_arrays_is_a_type_error(case):
    call, message = WRONG_INPUTS[case]
    model = two_inputs()
    x, y = data_two_inputs(4)
    with pytest.raises(TypeError, match=message):
        call(model, x, y)


def test_inputs_of_different_sizes_are_refused():
    model = two_inputs()
    x, y = data_two_inputs(4)
    message = r"fit: the arrays of x must have one number of examples, got \[4, 3\]"
    with pytest.raises(ValueError, match=message):
        model.fit([x[0], x[1][:3]], y, verbose=0)


ONE_PER_OUTPUT = "fit: y must be a list of 2 target arrays, one per model output, got"


@pytest.mark.parametrize(
    "targets, got",
    [(lambda y: y[0], "ndarray"), (lambda y: [y[0]], "1"), (lambda y: [*y, y[0]], "3")],
    ids=["array", "one", "three"],
)
def test_wrong_number_of_targets_is_a_type_error(targets, got):
    model = two_outputs()
    x, y = data_two_outputs(4)
    with pytest.raises(TypeError, match=f"{ONE_PER_OUTPUT} {got}$"):
        model.fit(x, targets(y), verbose=0)


def test_a_target_of_the_wrong_shape_names_its_output():
    model = two_outputs()
    x, y = data_two_outputs(4)
    with pytest.raises(ValueError, match=r"evaluate: y\[1\] must have shape \(N, 2\)"):
        model.evaluate(x, [y[0], y[1][:, :1]])


def test_validation_data_and_split_with_several_inputs():
    model = two_inputs()
    x, y = data_two_inputs()
    history = model.fit(
        x, y, epochs=2, batch_size=8, verbose=0, seed=0, validation_split=0.25
    )
    assert len(history.history["val_loss"]) == 2
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(x, y)["loss"], rel=1e-12
    )


def test_save_load_round_trip_of_a_two_input_model(tmp_path):
    model = two_inputs()
    x, y = data_two_inputs()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    model.save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert type(loaded) is cnnumpy.Model and loaded.input_names == ["image", None]
    assert loaded.input_shapes == [(1, 6, 6), (3,)] and loaded.sources == model.sources
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_save_load_round_trip_of_a_two_output_model(tmp_path):
    """The loss of a model of several outputs (a PerOutput, saved as
    ``{"name": "per_output", ...}``) and its per-output metrics are read back: the
    loaded model predicts probabilities, not logits (a regression)."""
    model = two_outputs()
    x, y = data_two_outputs()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    model.save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.loss is not None, "the model of two outputs was loaded uncompiled"
    for a, b in zip(loaded.predict(x), model.predict(x), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def _fit_residual(folder, epochs):
    model = graph_blocks.residual("conv")
    model.compile(cnnumpy.optimizers.SGD(0.05, momentum=0.9), "cross_entropy")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 3, 6, 6)), rng.integers(0, 5, 16)
    model.fit(x, y, epochs=epochs, batch_size=4, verbose=0, seed=1, resume_from=folder)
    return model


def _assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        for key in wa:
            np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def test_resume_of_a_graph_model_is_bit_identical(tmp_path):
    straight = _fit_residual(tmp_path / "a", 4)
    _fit_residual(tmp_path / "b", 2)  # "killed" after epoch 1
    resumed = _fit_residual(tmp_path / "b", 4)
    assert resumed.history.epoch == straight.history.epoch == [0, 1, 2, 3]
    assert resumed.history.history["loss"] == straight.history.history["loss"]
    _assert_same_weights(straight, resumed)


@pytest.mark.parametrize("kind", ["two_inputs", "two_outputs"])
def test_resume_of_a_model_of_several_inputs_or_outputs(tmp_path, kind):
    """fit(resume_from=...) fingerprints several inputs or targets array by array
    (a regression: np.asarray on them once raised)."""
    make, data = {
        "two_inputs": (two_inputs, data_two_inputs),
        "two_outputs": (two_outputs, data_two_outputs),
    }[kind]
    x, y = data()

    def run(folder, epochs):
        model = make()
        model.fit(
            x, y, epochs=epochs, batch_size=8, verbose=0, seed=2, resume_from=folder
        )
        return model

    straight = run(tmp_path / "a", 3)
    run(tmp_path / "b", 1)
    resumed = run(tmp_path / "b", 3)
    assert resumed.history.epoch == [0, 1, 2]
    _assert_same_weights(straight, resumed)


@pytest.mark.parametrize("same", ["name", "tensor"])
def test_every_output_keeps_its_metrics_when_output_names_repeat(same):
    """The metric names are ``<output layer name>_<metric>``; two outputs of one
    name (two heads both named "head", or one tensor given twice as outputs) fall
    back to ``output_<k>``, so every output keeps its metric (a regression)."""
    cnnumpy.seed(0)
    x = cnnumpy.Input((4,))
    head = L.Dense(2, name="head")(x)
    other = L.Dense(2, name="head")(x) if same == "name" else head
    model = cnnumpy.Model(x, [head, other])
    try:
        model.compile("sgd", ["cross_entropy", "mse"], metrics=["accuracy"])
    except ValueError:
        return  # refused: a fix
    assert len(model.metrics) == 2, sorted(model.metrics)
