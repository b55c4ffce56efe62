"""``POST /api/step`` and ``/api/step/layer``: one image's forward and backward pass.

The layer's numbers come from the book (``cnnumpy.textbook``); here they are compared
with what the model's layers compute (the engine), and the gradients with centred
finite differences in float64 (``tests/gradcheck.py``).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx2")

from starlette.testclient import TestClient  # noqa: E402

from cnnumpy import losses, zoo  # noqa: E402
from cnnumpy.cli import main as cli_main  # noqa: E402
from cnnumpy.cli import runs  # noqa: E402
from cnnumpy.serve import make_app, step  # noqa: E402
from cnnumpy.visualize import _checks as ck  # noqa: E402
from tests.gradcheck import numerical_gradient  # noqa: E402

RUN = "lenet"
CONV_FIRST, POOL, CONV_SECOND, DENSE_LAST = 0, 2, 3, 11  # lenet5's layers


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """A LeNet-5 trained one short epoch on the offline MNIST sample."""
    root = tmp_path_factory.mktemp("runs")
    argv = ["train", "--model", "lenet5", "--dataset", "mnist-sample", "--epochs",
            "1", "--limit", "128", "--batch-size", "32", "--no-report", "--quiet",
            "--out", str(root / RUN)]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli_main(argv) == 0
    return root


@pytest.fixture(scope="module")
def client(runs_dir):
    with TestClient(make_app(runs_dir)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def seven() -> bytes:
    """A PNG of a white "7" on black, as the page's canvas sends it."""
    from PIL import Image

    pixels = np.zeros((28, 28), np.uint8)
    pixels[5:8, 7:21] = 255
    for row in range(8, 23):
        col = 20 - (row - 8) // 2
        pixels[row, col - 1 : col + 2] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def opened(runs_dir, dtype):
    """The run's model in ``dtype``, its loss and the "7"'s input for it."""
    model, config, _ = runs.open_run(str(runs_dir / RUN))
    model.astype(np.dtype(dtype))
    return model, config


def model_input(model, config, png: bytes) -> np.ndarray:
    from cnnumpy.serve.images import read_upload

    pixels = read_upload(png, tuple(model.input_shape))
    return runs.model_input(pixels[None], model, config, RUN)


# -- the overview ----------------------------------------------------------------------
def test_overview_has_every_layer_s_output_and_gradient(client, runs_dir, seven):
    answer = client.post(f"/api/step?run={RUN}", content=seven)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    model, config = opened(runs_dir, "float32")
    shapes = model.value_shapes()[model.n_inputs :]
    assert [layer["index"] for layer in body["layers"]] == list(range(12))
    for layer, shape in zip(body["layers"], shapes, strict=True):
        assert layer["output_shape"] == list(shape)
        expected = min(shape[0], step.MAX_CHANNELS) if len(shape) == 3 else 1
        assert len(layer["activations"]) == len(layer["gradients"]) == expected
        first = layer["activations"][0]
        assert first["shape"] == (list(shape[1:]) if len(shape) == 3 else [1, shape[0]])
        assert len(first["data"]) == np.prod(first["shape"])
    x = model_input(model, config, seven)
    scores = ck.run_to(model, x, None)
    assert body["label"] == int(scores.argmax())
    conv = ck.run_to(model, x, model.n_inputs + CONV_FIRST)[0, 0]
    shown = np.array(body["layers"][CONV_FIRST]["activations"][0]["data"])
    np.testing.assert_allclose(shown, conv.ravel(), rtol=1e-3, atol=1e-6)


def test_overview_gradients_follow_the_label(client, seven):
    first = client.post(f"/api/step?run={RUN}&label=3", content=seven).json()
    second = client.post(f"/api/step?run={RUN}&label=8", content=seven).json()
    assert (first["label"], second["label"]) == (3, 8)
    last = [first["layers"][-1]["gradients"][0], second["layers"][-1]["gradients"][0]]
    # dL/dz = softmax(z) - onehot(label): the one negative entry is the label's
    assert [int(np.argmin(g["data"])) for g in last] == [3, 8]


def test_overview_keeps_within_its_numbers(client, seven, monkeypatch):
    monkeypatch.setattr(step, "MAX_OVERVIEW_NUMBERS", 5000)
    body = client.post(f"/api/step?run={RUN}", content=seven).json()
    conv = body["layers"][CONV_FIRST]
    assert conv["truncated"] and len(conv["activations"]) < 6


def test_gradients_of_a_graph_are_backward_between_s():
    """In a residual network (values read by two layers), the gradient of every
    layer's output is what ``backward_between`` computes for it alone."""
    model = zoo.get("resnet8", input_shape=(3, 16, 16), num_classes=10)
    x = np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(model.dtype)
    loss = losses.get("cross_entropy")
    values, grads, _, label = step.gradients(model, x, None, loss)
    n, score = model.n_inputs, ck.score_value(model)
    loss.forward(values[score], np.array([label]))
    dscores = loss.backward()
    assert sorted(grads) == list(range(n, score + 1))
    for value in range(n, score + 1):
        ck.run_values(model, x, score)  # backward_between needs a fresh forward
        alone = ck.backward_between(model, dscores, score, value)
        np.testing.assert_allclose(grads[value], alone, rtol=1e-5, atol=1e-6)


# -- one layer's numbers ---------------------------------------------------------------
@pytest.mark.parametrize("index", [CONV_FIRST, CONV_SECOND, 7, DENSE_LAST])
def test_book_numbers_are_the_engine_s(runs_dir, seven, index, engine_on):
    model, config = opened(runs_dir, "float32")
    x = model_input(model, config, seven)
    loss = step.loss_of(model, config)
    about, book = step.layer_arrays(model, x, index, 5, loss)
    assert about["label"] == 5
    layer, n = model.layers[index], model.n_inputs
    values = ck.run_values(model, x, model.output_ids[0])  # the engine's forward
    x_in = values[model.sources[index][0]]
    np.testing.assert_allclose(book["x"], x_in[0])
    np.testing.assert_allclose(book["y"], values[n + index][0], rtol=1e-4, atol=1e-5)
    layer.need_input_grad = True
    dx = layer.backward(book["dy"][None])  # the engine's backward of this layer
    for key, engine in (("dW", layer.grads["W"]), ("db", layer.grads["b"])):
        assert book[key].shape == engine.shape
        np.testing.assert_allclose(book[key], engine, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(book["dx"], dx[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("index", [CONV_FIRST, CONV_SECOND, DENSE_LAST])
def test_layer_gradients_are_finite_differences(runs_dir, seven, index):
    """dW, db and dx of the loss of one image, float64, against centred differences
    of that loss (the layers from ``index`` on, in inference mode)."""
    model, config = opened(runs_dir, "float64")
    x = model_input(model, config, seven)
    loss = losses.get("cross_entropy")
    _, book = step.layer_arrays(model, x, index, 7, loss)
    layer_input = book["x"][None].copy()

    def loss_value():
        h = layer_input
        for layer in model.layers[index:]:
            h = layer.forward(h, training=False)
        return loss.forward(h, np.array([7]))

    layer = model.layers[index]
    one = np.ones(())
    for key, array in (("dW", layer.params["W"]), ("db", layer.params["b"])):
        numeric = numerical_gradient(loss_value, array, one)
        np.testing.assert_allclose(book[key], numeric, rtol=1e-5, atol=1e-8)
    numeric = numerical_gradient(loss_value, layer_input, one)
    np.testing.assert_allclose(book["dx"], numeric[0], rtol=1e-5, atol=1e-8)


def test_layer_answer_has_the_numbers_of_the_formula_view(client, runs_dir, seven):
    answer = client.post(
        f"/api/step/layer?run={RUN}&layer={CONV_SECOND}", content=seven
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["type"] == "Conv2D" and body["stride"] == [1, 1]
    assert body["pads"] == [[0, 0], [0, 0]] and body["padding_mode"] == "zeros"
    shapes = {key: np.shape(body[key]) for key in ("x", "weight", "bias", "y", "dy")}
    shapes.update({key: np.shape(body[key]) for key in ("dW", "db", "dx")})
    assert shapes == {
        "x": (6, 12, 12), "weight": (16, 6, 5, 5), "bias": (16,), "y": (16, 8, 8),
        "dy": (16, 8, 8), "dW": (16, 6, 5, 5), "db": (16,), "dx": (6, 12, 12),
    }  # fmt: skip
    # the formula view's dot product: y[f, i, j] = b[f] + sum W[f] * x[:, i:i+5, j:j+5]
    x, w, b = (np.array(body[key]) for key in ("x", "weight", "bias"))
    f, i, j = 4, 2, 3
    product = b[f] + np.sum(w[f] * x[:, i : i + 5, j : j + 5])
    assert product == pytest.approx(body["y"][f][i][j], rel=1e-4, abs=1e-5)


def test_dense_layer_answer(client, seven):
    body = client.post(f"/api/step/layer?run={RUN}&layer={DENSE_LAST}", content=seven)
    body = body.json()
    assert body["type"] == "Dense" and body["stride"] is None
    assert np.shape(body["weight"]) == (84, 10) and np.shape(body["dx"]) == (84,)


# -- refusals --------------------------------------------------------------------------
def test_a_pooling_layer_is_400(client, seven):
    answer = client.post(f"/api/step/layer?run={RUN}&layer={POOL}", content=seven)
    assert answer.status_code == 400
    assert "AvgPool2D" in answer.json()["error"]
    assert "Conv2D and Dense" in answer.json()["error"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("layer=12", "layer"),
        ("layer=-1", "layer"),
        ("layer=x", "layer"),
        ("", "layer"),
        ("layer=0&label=10", "label"),
    ],
)
def test_bad_layer_or_label_is_400(client, seven, query, named):
    answer = client.post(f"/api/step/layer?run={RUN}&{query}", content=seven)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(named)


def test_too_many_numbers_is_400(client, seven, monkeypatch):
    monkeypatch.setattr(step, "MAX_LAYER_NUMBERS", 1000)
    answer = client.post(f"/api/step/layer?run={RUN}&layer=0", content=seven)
    assert answer.status_code == 400
    assert "numbers" in answer.json()["error"]


@pytest.mark.parametrize("path", ["/api/step", "/api/step/layer"])
def test_unknown_run_is_404(client, seven, path):
    answer = client.post(f"{path}?run=nothere&layer=0", content=seven)
    assert answer.status_code == 404
    assert "nothere" in answer.json()["error"]


def test_not_an_image_is_400(client):
    answer = client.post(f"/api/step?run={RUN}", content=b"hello, world")
    assert answer.status_code == 400
