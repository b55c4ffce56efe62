"""Fused inference: what ``predict`` and ``evaluate`` run instead of layer by layer.

In inference a layer needs no cache for a backward pass, so neighbours can merge:

- **BatchNorm folded into the convolution before it.** With the running statistics,
  BatchNorm is a fixed affine map per channel, ``y = s * (z - mean) + beta`` with
  ``s = gamma / sqrt(running_var + eps)``. Applied to a convolution's output
  ``z = W * x + b`` it is the convolution with kernels ``s[f] * W[f]`` and bias
  ``s * (b - mean) + beta``: the BatchNorm layer costs nothing (it made three passes
  over the activations, the largest arrays of the network).
- **ReLU or LeakyReLU run inside the convolution** (right after it, or after its
  folded BatchNorm), on each chunk of the output while the chunk is still in the
  core's cache, instead of one more pass over the whole batch in memory. Not when a
  max-pool follows: the pool then runs first (``execution_order``) and the activation
  touches a quarter of the values. Not tanh or sigmoid: measured slower fused (their
  cost is arithmetic, not memory, and the chunks also hold the wide grid's junk).

Everything else runs as in :meth:`Sequential.forward`, in the same order. The
outputs are those of ``model.forward(x)`` up to float rounding (the folded kernels
round differently: about 1e-6 relative in float32; tests compare the two). Only
cnnumpy's own layer classes are fused; a subclass that overrides ``forward`` runs as
it is. Measured (``predict`` at batch 256, fused against layer by layer, same run):
``vgg_cifar`` 1.2-1.3x faster; networks without BatchNorm about the same.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.layers.activations import LeakyReLU, ReLU
from cnnumpy.layers.conv import Conv1D, Conv2D
from cnnumpy.layers.normalization import BatchNorm

_CONVS = (Conv1D, Conv2D)
_ACTIVATIONS = (ReLU, LeakyReLU)


def _own(layer, classes) -> bool:
    """``layer`` is one of ``classes`` and keeps their ``forward``."""
    return any(
        isinstance(layer, cls) and type(layer).forward is cls.forward for cls in classes
    )


def plan(layers, order: list[int]) -> list[tuple[int, int | None, int | None]]:
    """Steps ``(i, bn, act)`` in execution ``order``: layer ``i``, with the index of
    the BatchNorm folded into it and of the activation run inside it (``None`` when
    there is none). A layer merges only with the ones that run right after it."""
    steps, p = [], 0
    while p < len(order):
        i, bn, act = order[p], None, None
        p += 1
        if _own(layers[i], _CONVS):
            if (
                p < len(order)
                and order[p] == i + 1
                and _own(layers[i + 1], (BatchNorm,))
            ):
                bn, p = i + 1, p + 1
            nxt = order[p] if p < len(order) else None
            if nxt == order[p - 1] + 1 and _own(layers[nxt], _ACTIVATIONS):
                act, p = nxt, p + 1
        steps.append((i, bn, act))
    return steps


def folded(conv, bn) -> tuple[np.ndarray, np.ndarray | None]:
    """``(W, b)`` of ``conv``, with ``bn`` (inference mode) folded in if given."""
    w, b = conv.params["W"], conv.params.get("b")
    if bn is None:
        return w, b
    gamma, beta = bn.params["gamma"], bn.params["beta"]
    mean, var = bn.state["running_mean"], bn.state["running_var"]
    s = gamma / np.sqrt(var + w.dtype.type(bn.eps))
    w = w * s.reshape(-1, *([1] * (w.ndim - 1)))
    b = beta - s * mean if b is None else beta + s * (b - mean)
    return w.astype(conv.dtype, copy=False), b.astype(conv.dtype, copy=False)


def forward(layers, order: list[int], x: np.ndarray) -> np.ndarray:
    """Inference outputs of ``x`` (already of the layers' dtype) through ``layers``
    run in ``order``, fused as above."""
    out = x
    for i, bn, act in plan(layers, order):
        layer = layers[i]
        if bn is None and act is None:
            out = layer.forward(out, training=False)
            continue
        w, b = folded(layer, None if bn is None else layers[bn])
        post = None if act is None else layers[act].apply_inplace
        out = layer.fused_forward(out, w, b, post)
    return out
