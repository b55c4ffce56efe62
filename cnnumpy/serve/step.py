"""The "Inside one step" page's API: one image's forward and backward pass, in numbers.

    POST /api/step?run=NAME[&label=K]            body: an image (PNG or JPEG)
    POST /api/step/layer?run=NAME&layer=L[&label=K]

``/api/step`` is the overview (CNN Explainer's): for every layer its output and the
gradient of the loss of class K (default: the predicted class) with respect to it,
``dL/d(output)``, as maps (``cnnumpy.serve.predict.as_map``), at most
:data:`MAX_CHANNELS` channels a layer (fewer when the whole answer would pass
:data:`MAX_OVERVIEW_NUMBERS`).

``/api/step/layer`` gives every number of one Conv2D or Dense layer for that image,
computed with the book's functions (``cnnumpy.textbook``), as the notes derive them:

    y  = conv2d_forward(x, W, b)         y[f, i, j] = b[f] + sum_{c,u,v} W[f,c,u,v]
                                                     xp[c, i*SH + u, j*SW + v]
    dW = the correlation of the input with dy,   db[f] = sum_{i,j} dy[f, i, j]
    dx = the full convolution of dy with the kernels turned by 180 degrees

(Dense: ``y = x W + b``, ``dW = x^T dy``, ``dx = dy W^T``). ``dy`` itself comes from
the model's own backward pass from the loss down to the layer. The page shows the
kernel sliding and the products it sums; the tests check that the book's numbers are
the engine's.
"""

from __future__ import annotations

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cnnumpy import graph, losses
from cnnumpy.cli.tools import one_hot_targets
from cnnumpy.engine.kernels.parallel import blas_one_thread
from cnnumpy.layers.conv import Conv2D
from cnnumpy.layers.dense import Dense
from cnnumpy.serve.body import read_body
from cnnumpy.serve.errors import ApiError
from cnnumpy.serve.images import read_upload
from cnnumpy.serve.predict import as_map, layer_name
from cnnumpy.serve.query import int_query, run_name
from cnnumpy.textbook.conv import conv2d_backward, conv2d_forward
from cnnumpy.textbook.dense import dense_backward, dense_forward
from cnnumpy.visualize import _checks as ck

MAX_CHANNELS = 32  # maps a layer of the overview shows
MAX_OVERVIEW_NUMBERS = 500_000  # activations and gradients, all layers: ~5 MB
MAX_LAYER_NUMBERS = 2_000_000  # the arrays of one layer's numbers, all together
NUMBER_DIGITS = 6  # of one layer's numbers: float32 holds about 7
LAYER_TYPES = (Conv2D, Dense)


# -- numbers as JSON -------------------------------------------------------------------
def rounded(values, digits: int = NUMBER_DIGITS) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (0 stays 0), as float64;
    NaN and infinities become 0 (JSON has neither)."""
    a = np.nan_to_num(np.asarray(values, dtype=np.float64), posinf=0.0, neginf=0.0)
    nonzero = a != 0
    magnitude = np.floor(np.log10(np.abs(a), where=nonzero, out=np.zeros_like(a)))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.round(a * scale) / scale


def numbers(values) -> list | None:
    """An array as nested lists of :data:`NUMBER_DIGITS` significant digits."""
    return None if values is None else rounded(values).tolist()


def channel_maps(output: np.ndarray, cap: int) -> list[dict]:
    """One example's output as maps (``cnnumpy.serve.predict.as_map``): one per
    channel of ``(C, h, w)``, the first ``cap``; otherwise one map."""
    if output.ndim == 3:
        return [as_map(channel) for channel in output[:cap]]
    return [as_map(output if output.ndim == 2 else output.reshape(-1))]


# -- one image through the model, and back ---------------------------------------------
def loss_of(model, config: dict):
    """The loss the run trained with (the model file's, else config.json's)."""
    if model.loss is not None:
        return model.loss
    return losses.get(config.get("loss", "cross_entropy"))


def gradients(model, x: np.ndarray, label: int | None, loss):
    """One input ``x`` (1, C, H, W) forward in inference mode, then backward from the
    loss of class ``label`` (None: the predicted class).

    Returns:
        ``(values, grads, loss value, label)``: every value by id
        (:func:`cnnumpy.visualize._checks.run_values`), and ``dL/d(value)`` for the
        output of every layer on a path to the scores. The layers run backward in
        reverse order, each value's gradient the sum over the layers reading it
        (``cnnumpy.graph``). The caller keeps the layers' ``grads`` (``grads_kept``).
    """
    n = model.n_inputs
    score = ck.score_value(model)  # the logits, before a final Softmax layer
    values = ck.run_values(model, x, model.output_ids[0])
    scores = values[score]
    label = int(scores[0].argmax()) if label is None else label
    targets = one_hot_targets(
        loss.name, np.array([label]), scores.shape[1], scores.dtype
    )
    value = float(loss.forward(scores, targets))
    pending, grads = {score: loss.backward()}, {}
    for j in range(score - n, -1, -1):
        grad = pending.pop(n + j, None)
        if grad is None:  # not on a path to the scores
            continue
        grads[n + j] = grad
        layer, sources = model.layers[j], model.sources[j]
        if all(s < n for s in sources):
            continue  # it reads the image only: dL/d(image) is not shown
        dxs = layer.backward(grad)
        for s, dx in zip(sources, dxs if layer.multiple_inputs else [dxs], strict=True):
            graph.accumulate(pending, s, dx)
    return values, grads, value, label


def _channel_cap(outputs: list[np.ndarray]) -> int:
    """The most channels a layer may show so that the overview's numbers (outputs
    and gradients) stay within :data:`MAX_OVERVIEW_NUMBERS`."""
    cap = MAX_CHANNELS
    while cap > 1:
        total = sum(2 * a[:cap].size if a.ndim == 3 else 2 * a.size for a in outputs)
        if total <= MAX_OVERVIEW_NUMBERS:
            break
        cap //= 2
    return cap


def overview(model, x: np.ndarray, label: int | None, loss) -> dict:
    """The answer of ``/api/step``: every layer's output and ``dL/d(output)``."""
    n = model.n_inputs
    with ck.grads_kept(model):
        values, grads, value, label = gradients(model, x, label, loss)
    outputs = [values[n + j][0] for j in range(len(model.layers))]
    cap = _channel_cap(outputs)
    layers = []
    for j, (layer, out) in enumerate(zip(model.layers, outputs, strict=True)):
        grad = grads.get(n + j)  # None after the scores (a final Softmax layer)
        layers.append(
            {
                "index": j,
                "name": layer_name(layer, j),
                "type": type(layer).__name__,
                "output_shape": list(out.shape),
                "activations": channel_maps(out, cap),
                "gradients": [] if grad is None else channel_maps(grad[0], cap),
                "truncated": out.ndim == 3 and len(out) > cap,
            }
        )
    return {"label": label, "loss": value, "layers": layers}


def check_layer(model, index: int) -> None:
    """A Conv2D or Dense layer whose numbers fit :data:`MAX_LAYER_NUMBERS`."""
    layer = model.layers[index]
    if not isinstance(layer, LAYER_TYPES):
        raise ApiError(
            400,
            f"layer {index} is {layer!r}; the numbers are shown for the Conv2D and "
            "Dense layers",
        )
    shapes = model.value_shapes()
    x_shape = shapes[model.sources[index][0]]
    y_shape = shapes[model.n_inputs + index]
    count = sum(int(np.prod(p.shape)) for p in layer.params.values())
    count = 2 * (count + int(np.prod(x_shape)) + int(np.prod(y_shape)))
    if count > MAX_LAYER_NUMBERS:
        raise ApiError(
            400,
            f"layer {index} ({layer!r}) has {count:,} numbers for one "
            f"image, more than the {MAX_LAYER_NUMBERS:,} shown; pick a "
            "smaller layer",
        )


def layer_arrays(model, x: np.ndarray, index: int, label: int | None, loss):
    """One layer's numbers for one input ``x`` (1, C, H, W), by the book.

    Returns:
        ``(about, arrays)``: ``about`` the layer's settings, the label and the loss;
        ``arrays`` ``x, weight, bias, y, dy, dW, db, dx`` of the one image (``bias``
        and ``db`` None without a bias), in the model's dtype.
    """
    check_layer(model, index)
    layer, n = model.layers[index], model.n_inputs
    with ck.grads_kept(model):
        values, grads, value, label = gradients(model, x, label, loss)
    x_in = values[model.sources[index][0]]
    dy = grads[n + index]  # from the model's own backward pass
    w, b = layer.params["W"], layer.params.get("b")
    about = {
        "index": index,
        "name": layer_name(layer, index),
        "type": type(layer).__name__,
        "label": label,
        "loss": value,
    }
    if isinstance(layer, Conv2D):
        y, cache = conv2d_forward(
            x_in, w, b, layer.stride, layer.padding, layer.padding_mode
        )
        dx, dw, db = conv2d_backward(dy, cache)
        about.update(
            stride=list(cache["stride"]),
            padding=layer.padding,
            pads=[list(p) for p in cache["pads"]],
            padding_mode=layer.padding_mode,
        )
    else:
        y, cache = dense_forward(x_in, w, b)
        dx, dw, db = dense_backward(dy, cache)
        about.update(stride=None, padding=None, pads=None, padding_mode=None)
    arrays = {"x": x_in[0], "weight": w, "bias": b, "y": y[0], "dy": dy[0]}
    arrays.update({"dW": dw, "db": db, "dx": dx[0]})
    return about, arrays


def layer_numbers(model, x: np.ndarray, index: int, label: int | None, loss) -> dict:
    """The answer of ``/api/step/layer``: :func:`layer_arrays` as JSON."""
    about, arrays = layer_arrays(model, x, index, label, loss)
    return {**about, **{key: numbers(a) for key, a in arrays.items()}}


# -- the routes ------------------------------------------------------------------------
def _run_name(request: Request) -> str:
    """``?run=NAME``, required, and known (404 before the body is read)."""
    name = run_name(request)
    request.app.state.store.folder(name)
    return name


def _input(request: Request, run, body: bytes) -> tuple[np.ndarray, int | None]:
    """The uploaded image as the run's input ``(1, C, H, W)``, and ``&label=K``."""
    label = int_query(request, "label", None, 0, len(run.class_names) - 1, "a class id")
    pixels = read_upload(body, run.input_shape)
    return run.model_input(pixels), label


async def step(request: Request) -> JSONResponse:
    """``POST /api/step?run=NAME[&label=K]``, image bytes."""
    store, name = request.app.state.store, _run_name(request)
    body = await read_body(request)

    def work() -> dict:
        run = store.open(name)
        x, label = _input(request, run, body)
        with run.lock, blas_one_thread():  # (why: cnnumpy.serve.predict)
            answer = overview(run.model, x, label, loss_of(run.model, run.config))
        return {"run": name, **answer}

    return JSONResponse(await run_in_threadpool(work))


async def step_layer(request: Request) -> JSONResponse:
    """``POST /api/step/layer?run=NAME&layer=L[&label=K]``, image bytes."""
    store, name = request.app.state.store, _run_name(request)
    body = await read_body(request)

    def work() -> dict:
        run = store.open(name)
        count = len(run.model.layers)
        index = int_query(request, "layer", None, 0, count - 1, "a layer index")
        if index is None:
            raise ApiError(
                400,
                f"layer: expected a layer index from 0 to {count - 1}, got nothing "
                "(add &layer=L)",
            )
        check_layer(run.model, index)
        x, label = _input(request, run, body)
        with run.lock, blas_one_thread():
            loss = loss_of(run.model, run.config)
            answer = layer_numbers(run.model, x, index, label, loss)
        return {"run": name, **answer}

    return JSONResponse(await run_in_threadpool(work))


routes = [
    Route("/api/step", step, methods=["POST"]),
    Route("/api/step/layer", step_layer, methods=["POST"]),
]
