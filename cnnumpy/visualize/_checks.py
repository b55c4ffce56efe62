"""Argument checks and small model helpers shared by the visualisations (NumPy only).

Every error names the function, what it expected and what it received, e.g.
``saliency: expected one image (C, H, W) = (1, 28, 28), got (5, 1, 28, 28)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from cnnumpy import graph
from cnnumpy.layers.activations import (
    ELU,
    Arctan,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from cnnumpy.layers.base import Layer
from cnnumpy.layers.conv import Conv2D
from cnnumpy.validation import check_values

#: Layers that Grad-CAM and ``filters`` treat as "the activation of the conv before".
ACTIVATIONS = (ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Arctan)


def check_built(model, where: str) -> tuple[int, ...]:
    """The model's input shape; raises if the model was never built."""
    if getattr(model, "layers", None) is None:
        raise TypeError(
            f"{where}: expected a cnnumpy model, got {type(model).__name__}"
        )
    if model.input_shape is None:
        raise ValueError(
            f"{where}: the model is not built; pass input_shape= to Sequential"
        )
    if model.n_inputs != 1 or model.multiple_outputs:
        raise ValueError(
            f"{where}: expected a model of one input and one output, got "
            f"{model.n_inputs} inputs and {len(model.output_ids)} outputs"
        )
    return tuple(model.input_shape)


def check_image(model, x, where: str) -> np.ndarray:
    """One image ``(C, H, W)`` matching the model input, cast to the model dtype."""
    shape = check_built(model, where)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: x must be a numpy array, got {type(x).__name__}")
    if len(shape) != 3:
        raise ValueError(
            f"{where}: needs a model on images (C, H, W), this one takes {shape}"
        )
    if x.shape != shape:
        raise ValueError(
            f"{where}: expected one image (C, H, W) = {shape}, got {x.shape}"
        )
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{where}: x must hold numbers, got dtype {x.dtype}")
    check_values(x, where, "x", model.dtype)  # finite, and within the model's dtype
    return x.astype(model.dtype, copy=False)


def num_classes(model) -> int:
    """Number of classes: the output width (2 for a single-output binary classifier)."""
    out = model.output_shape
    if len(out) != 1:
        raise ValueError(
            f"expected a classifier with outputs (K,), this model gives {out}"
        )
    return max(int(out[0]), 2)


def check_label(model, label, where: str) -> int:
    """A class id in ``[0, K)``."""
    k = num_classes(model)
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise TypeError(f"{where}: label must be an int class id, got {label!r}")
    if not 0 <= int(label) < k:
        raise ValueError(f"{where}: label must be in [0, {k}), got {int(label)}")
    return int(label)


def layer_index(model, layer, where: str) -> int:
    """Resolve ``layer`` (an index, possibly negative, a layer object, or a name)."""
    layers = model.layers
    if isinstance(layer, Layer):
        for i, candidate in enumerate(layers):
            if candidate is layer:
                return i
        raise ValueError(f"{where}: {layer!r} is not a layer of this model")
    if isinstance(layer, str):
        names = [i for i, candidate in enumerate(layers) if candidate.name == layer]
        if not names:
            raise ValueError(f"{where}: no layer named {layer!r}")
        return names[0]
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise TypeError(
            f"{where}: layer must be an index, a Layer or a name, got {layer!r}"
        )
    if not -len(layers) <= int(layer) < len(layers):
        raise ValueError(
            f"{where}: layer index must be in [-{len(layers)}, {len(layers)}), "
            f"got {layer}"
        )
    return int(layer) % len(layers)


def conv_index(model, layer, where: str) -> int:
    """The chosen Conv2D layer, or the last one of the model when ``layer`` is None."""
    if layer is None:
        convs = [i for i, lay in enumerate(model.layers) if isinstance(lay, Conv2D)]
        if not convs:
            raise ValueError(f"{where}: the model has no Conv2D layer")
        return convs[-1]
    index = layer_index(model, layer, where)
    if not isinstance(model.layers[index], Conv2D):
        raise TypeError(
            f"{where}: layer {index} must be a Conv2D layer, "
            f"got {model.layers[index]!r}"
        )
    return index


def first_conv_index(model, layer, where: str) -> int:
    """The chosen Conv2D layer, or the first one when ``layer`` is None."""
    if layer is None:
        for i, lay in enumerate(model.layers):
            if isinstance(lay, Conv2D):
                return i
        raise ValueError(f"{where}: the model has no Conv2D layer")
    return conv_index(model, layer, where)


def score_value(model) -> int:
    """The value id of the class scores: the model's (first) output, or what a final
    Softmax layer reads."""
    k = model.output_ids[0]
    j = k - model.n_inputs
    if j >= 0 and isinstance(model.layers[j], Softmax):
        return model.sources[j][0]
    return k


def layer_value(model, index: int) -> int:
    """The value id of layer ``index``'s output."""
    return model.n_inputs + index


def run_values(model, x: np.ndarray, stop: int) -> dict:
    """Inference pass (no dropout, BN running statistics) on one input ``x`` up to
    value ``stop``: every value computed on the way, by id (:mod:`cnnumpy.graph`)."""
    values = {0: x}
    n = model.n_inputs
    for j, (layer, srcs) in enumerate(model.nodes):
        if n + j > stop:
            break
        values[n + j] = layer.forward(
            graph.arguments(layer, values, srcs), training=False
        )
    return values


def run_to(model, x: np.ndarray, stop: int | None) -> np.ndarray:
    """Value ``stop`` (None: the model's output) of an inference pass on ``x``."""
    stop = model.output_ids[0] if stop is None else stop
    return run_values(model, x, stop)[stop]


def backward_between(model, dout: np.ndarray, start: int, stop: int) -> np.ndarray:
    """d (value ``start``) / d (value ``stop``) times ``dout``, after a
    :func:`run_values` that reached ``start``: the layers between them run backward
    in reverse order, each value's gradient the sum over the layers reading it."""
    grads = {start: dout}
    n = model.n_inputs
    for j in range(start - n, stop - n, -1):
        layer, srcs = model.layers[j], model.sources[j]
        grad = grads.pop(n + j, None)
        if grad is None:  # not on a path to ``start``
            continue
        dxs = layer.backward(grad)
        for s, dx in zip(srcs, dxs if layer.multiple_inputs else [dxs], strict=True):
            graph.accumulate(grads, s, dx)
    return grads[stop]


def score_gradient(scores: np.ndarray, label: int) -> np.ndarray:
    """d score / d outputs: one-hot at ``label``; for one output z (binary), +1 or -1.

    A single sigmoid output z is the logit of class 1; the logit of class 0 is -z.
    """
    dout = np.zeros_like(scores)
    if scores.shape[1] == 1:
        dout[:, 0] = 1.0 if label == 1 else -1.0
    else:
        dout[:, label] = 1.0
    return dout


@contextlib.contextmanager
def grads_kept(model) -> Iterator[None]:
    """The layers' ``grads`` are the same after the ``with`` block as before.

    Explaining a prediction backpropagates through the model, which overwrites each
    layer's ``grads``; a visualisation called between two training steps must not.
    """
    saved = [dict(layer.grads) for layer in model.layers]
    try:
        yield
    finally:
        for layer, grads in zip(model.layers, saved, strict=True):
            layer.grads = grads


def normalise_max(values: np.ndarray) -> np.ndarray:
    """Divide non-negative values by their maximum (all zeros stays zeros)."""
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)
