"""Graph models the tests of tests/graph share, and finite differences over a model.

Every builder names its layers (``conv1``, ``bn1``, ...) so that the PyTorch twins of
``test_graph_blocks_torch.py`` can copy the weights by name. The models are float64
(finite differences and the PyTorch comparisons need double precision).
"""

from __future__ import annotations

import numpy as np

import cnnumpy
from cnnumpy import layers as L
from gradcheck import numerical_gradient


def residual(shortcut: str = "conv", C: int = 3, F: int = 4, K: int = 5, seed=0):
    """Conv-BN-ReLU-Conv-BN plus the input (``identity``, needs ``C == F``) or its
    1x1 convolution (``conv``), added, ReLU, global average pool, Dense(K)."""
    cnnumpy.seed(seed)
    x = cnnumpy.Input((C, 6, 6))
    h = L.Conv2D(F, 3, padding=1, name="conv1")(x)
    h = L.ReLU()(L.BatchNorm(name="bn1")(h))
    h = L.BatchNorm(name="bn2")(L.Conv2D(F, 3, padding=1, name="conv2")(h))
    s = x if shortcut == "identity" else L.Conv2D(F, 1, name="short")(x)
    y = L.ReLU()(L.Add()([h, s]))
    out = L.Dense(K, name="fc")(L.GlobalAvgPool2D()(y))
    return cnnumpy.Model(x, out).astype("float64")


def inception(C: int = 3, K: int = 5, seed=0):
    """Four branches: 1x1; 1x1-BN-ReLU-3x3; 1x1-ReLU-5x5; 3x3 max-pool (stride 1,
    padding 1)-1x1; each ending in a ReLU, concatenated on the channels, then a
    global average pool and Dense(K)."""
    cnnumpy.seed(seed)
    x = cnnumpy.Input((C, 7, 7))
    b1 = L.ReLU()(L.Conv2D(2, 1, name="b1")(x))
    b2 = L.ReLU()(L.BatchNorm(name="b2_bn")(L.Conv2D(3, 1, name="b2_reduce")(x)))
    b2 = L.ReLU()(L.Conv2D(4, 3, padding=1, name="b2")(b2))
    b3 = L.ReLU()(L.Conv2D(2, 1, name="b3_reduce")(x))
    b3 = L.ReLU()(L.Conv2D(3, 5, padding=2, name="b3")(b3))
    b4 = L.MaxPool2D(3, stride=1, padding=1)(x)
    b4 = L.ReLU()(L.Conv2D(2, 1, name="b4")(b4))
    y = L.Concatenate(axis=1)([b1, b2, b3, b4])
    out = L.Dense(K, name="fc")(L.GlobalAvgPool2D()(y))
    return cnnumpy.Model(x, out).astype("float64")


def resnet_like(C: int = 2, K: int = 3, dropout: float = 0.0, seed=0):
    """A stem (Conv-BN-ReLU-MaxPool), a residual block whose branch holds a
    ReLU-MaxPool chain (shortcut: a 2x2 convolution of stride 2), optional Dropout,
    then global average pool and Dense(K). Input (C, 12, 12)."""
    cnnumpy.seed(seed)
    x = cnnumpy.Input((C, 12, 12))
    h = L.BatchNorm(name="stem_bn")(L.Conv2D(4, 3, padding=1, name="stem")(x))
    h = L.MaxPool2D(2)(L.ReLU()(h))  # (4, 6, 6)
    b = L.BatchNorm(name="bn1")(L.Conv2D(6, 3, padding=1, name="conv1")(h))
    b = L.MaxPool2D(2)(L.ReLU()(b))  # (6, 3, 3): a ReLU-MaxPool pair in a branch
    b = L.BatchNorm(name="bn2")(L.Conv2D(6, 3, padding=1, name="conv2")(b))
    s = L.Conv2D(6, 2, stride=2, name="short")(h)
    y = L.ReLU()(L.Add()([b, s]))
    if dropout:
        y = L.Dropout(dropout, seed=7)(y)
    out = L.Dense(K, name="fc")(L.GlobalAvgPool2D()(y))
    return cnnumpy.Model(x, out).astype("float64")


def randomise(model, seed: int = 1) -> None:
    """Every parameter and BatchNorm statistic away from its initial value (biases
    0, gamma 1, running statistics 0 and 1), so that no term of a pass vanishes."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for key, value in layer.params.items():
            scale = 0.5 if key in ("gamma", "beta", "b") else 1.0
            value[...] += scale * rng.standard_normal(value.shape)
        if "running_var" in layer.state:
            C = layer.state["running_var"].shape
            layer.state["running_mean"][...] = rng.normal(size=C)
            layer.state["running_var"][...] = rng.uniform(0.5, 2.0, size=C)


def model_gradients(model, x, dout, training: bool = True, h: float = 1e-6):
    """``(dx, {(layer index, key): dparam})`` of ``sum(dout * model.forward(x))`` by
    centred finite differences, in float64. ``x`` is an array or a list of arrays."""
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    douts = list(dout) if isinstance(dout, (list, tuple)) else [dout]

    def run():
        out = model.forward(xs if len(xs) > 1 else xs[0], training=training)
        outs = out if isinstance(out, list) else [out]
        return np.concatenate([o.ravel() for o in outs])

    flat = np.concatenate([d.ravel() for d in douts])
    dxs = [numerical_gradient(run, a, flat, h) for a in xs]
    params = {
        (j, key): numerical_gradient(run, value, flat, h)
        for j, layer in enumerate(model.layers)
        for key, value in layer.params.items()
    }
    return (dxs if len(xs) > 1 else dxs[0]), params
