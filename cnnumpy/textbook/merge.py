"""Where branches of a network meet: sum, channel concatenation and product.

A graph model (``cnnumpy.Model``) lets one tensor feed several layers and one layer
read several tensors. The layers that read several are these three; each backward
pass hands every input its own gradient (the graph then adds the gradients of a tensor
that fed several layers, the chain rule for a sum of paths).

- **Sum** (He et al. 2016's residual connection ``y = F(x) + x``)::

      y = x_1 + x_2 + ... + x_k            dL/dx_i = dL/dy

  the gradient reaches every branch unchanged: through the identity branch of a
  residual block it skips the block's layers, which is why very deep residual
  networks still train.
- **Concatenation** along the channels (Szegedy et al. 2015's Inception block stacks
  its branches' maps)::

      y = [x_1; x_2; ...; x_k]             dL/dx_i = the channels of dL/dy x_i gave

- **Product**, element by element (gates, squeeze-and-excitation)::

      y = x_1 * x_2 * ... * x_k            dL/dx_i = dL/dy * prod_{j != i} x_j

Sum and product broadcast like NumPy along size-1 axes (a ``(N, C, 1, 1)`` gate times
``(N, C, H, W)`` maps): an input that was broadcast along an axis gets the gradient
summed over that axis (:func:`unbroadcast`), since each of its values fed every
position there.
"""

from __future__ import annotations

import numpy as np


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``grad`` summed back to ``shape``, the shape of an input that NumPy broadcast
    to ``grad.shape``: over the leading axes it lacked and the axes where it had 1.
    """
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(a for a, size in enumerate(shape) if size == 1 < grad.shape[a])
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def add_forward(xs: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """``y = x_1 + ... + x_k``; the cache is the inputs' shapes.

    Shape:
        ``xs``: arrays of one rank that broadcast together, e.g. ``(N, C, H, W)``
        each; ``y``: their broadcast shape.
    """
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out = out + x
    return out, [x.shape for x in xs]


def add_backward(dout: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """``dL/dx_i = dL/dy`` for every input (summed over its broadcast axes)."""
    return [unbroadcast(dout, shape) for shape in shapes]


def concat_forward(
    xs: list[np.ndarray], axis: int = 1
) -> tuple[np.ndarray, tuple[list[int], int]]:
    """``y = [x_1; ...; x_k]`` along ``axis`` (1: the channels of ``(N, C, H, W)``);
    the cache is each input's size along it.

    Shape:
        ``xs``: ``(N, C_i, H, W)``; ``y``: ``(N, C_1 + ... + C_k, H, W)``.
    """
    sizes = [x.shape[axis] for x in xs]
    return np.concatenate(xs, axis=axis), (sizes, axis)


def concat_backward(dout: np.ndarray, cache: tuple[list[int], int]) -> list[np.ndarray]:
    """Each input gets the slice of ``dL/dy`` its values went to."""
    sizes, axis = cache
    bounds = np.cumsum(sizes)[:-1]
    return np.split(dout, bounds, axis=axis)


def multiply_forward(xs: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """``y = x_1 * ... * x_k``; the cache is the inputs (each gradient needs the
    others).

    Shape:
        ``xs``: arrays of one rank that broadcast together (a gate ``(N, C, 1, 1)``
        and maps ``(N, C, H, W)``); ``y``: their broadcast shape.
    """
    out = xs[0] * xs[1]
    for x in xs[2:]:
        out = out * x
    return out, list(xs)


def multiply_backward(dout: np.ndarray, xs: list[np.ndarray]) -> list[np.ndarray]:
    """``dL/dx_i = dL/dy * prod_{j != i} x_j`` (summed over ``x_i``'s broadcast
    axes). The product of the others is taken directly, never as ``y / x_i``, which
    fails where ``x_i`` is 0."""
    grads = []
    for i, x in enumerate(xs):
        others = dout
        for j, other in enumerate(xs):
            if j != i:
                others = others * other
        grads.append(unbroadcast(others, x.shape))
    return grads
