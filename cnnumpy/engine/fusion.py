"""Fused inference: what ``predict`` and ``evaluate`` run instead of layer by layer.

In inference a layer needs no cache for a backward pass, so a convolution and the
layers that run right after it (in ``execution_steps``) can merge into one pass over
each chunk of images while the chunk is in the core's cache:

- **BatchNorm folded into the convolution.** With the running statistics, BatchNorm
  is a fixed affine map per channel, ``y = s * (z - mean) + beta`` with
  ``s = gamma / sqrt(running_var + eps)``. Applied to a convolution's output
  ``z = W * x + b`` it is the convolution with kernels ``s[f] * W[f]`` and bias
  ``s * (b - mean) + beta``: the BatchNorm layer costs nothing (it made three passes
  over the activations, the largest arrays of the network).
- **A max-pool over tiles** (2x2 stride 2, or any pool whose stride is its size and
  whose windows tile the map) taken on each chunk of the convolution's output: the
  full-size output is never written to memory and read back.
- **ReLU or LeakyReLU** run on each chunk (after the pool, when there is one:
  ``execution_steps`` already runs a max-pool before a monotone activation).
- **An activation then an average pool over tiles** (LeNet's tanh and 2x2 average
  pooling): the activation runs on the chunk, then the mean over the tiles; the
  full-size activations are never written. Tanh alone does not merge: its cost is
  arithmetic, and on the chunk it would also run on the wide grid's junk columns.
  In float32 the fused tanh is ``1 - 2/(exp(2x) + 1)`` (faster than NumPy's tanh
  here, absolute error at most 1.8e-7: :func:`~cnnumpy.engine.kernels.activations.
  tanh_inplace`).

The merged convolution runs the engine kernel the ``conv2d`` table chooses, with the
pool and the activation as its epilogue; with the engine off (or the book forced),
nothing merges and every layer runs its own forward, the book's code. Everything
else runs layer by layer, in the executor's order (:func:`~cnnumpy.engine.executor.
execution_steps`); in a graph, a layer merges only into the one before it when it
alone reads that one's output. The
outputs are those of ``model.forward(x)`` up to float rounding (the folded kernels
round differently: about 1e-6 relative in float32, and the float32 tanh above
differs by up to 2e-7; tests compare the two); the
layers' caches are not refreshed. Only layers of exactly cnnumpy's classes merge,
and only when their ``forward`` is not replaced on the instance: anything else runs
as it is.
Measured (``predict`` at batch 256 on two threads, fused against layer by layer,
alternated in one run): ``vgg_cifar`` 1.37x faster, Melpy's model 1.22x,
``seed_cifar`` 1.05x (1.10x on one core at batch 128).
"""

from __future__ import annotations

import numpy as np

from cnnumpy import graph
from cnnumpy.engine import dispatch, ops
from cnnumpy.engine.kernels import activations as engine_act
from cnnumpy.engine.kernels.epilogue import Tiles
from cnnumpy.layers.activations import LeakyReLU, ReLU, Tanh
from cnnumpy.layers.conv import Conv1D, Conv2D
from cnnumpy.layers.normalization import BatchNorm
from cnnumpy.layers.pooling import AvgPool2D, MaxPool2D

_CONVS = (Conv1D, Conv2D)
_ACTIVATIONS = (ReLU, LeakyReLU)
# activations that merge when an average pool follows them
_BEFORE_MEAN = (ReLU, LeakyReLU, Tanh)


def in_place(layer):
    """The activation ``layer`` as a function run in place on a chunk, no cache."""
    if type(layer) is ReLU:
        return engine_act.relu_inplace
    if type(layer) is LeakyReLU:
        return lambda a: engine_act.leaky_relu_inplace(a, layer.alpha)
    return engine_act.tanh_inplace


def _own(layer, classes) -> bool:
    """``layer`` is exactly one of ``classes`` (no subclass, which may compute
    something else) and its ``forward`` is not replaced on the instance."""
    return type(layer) in classes and "forward" not in vars(layer)


def tiles(pool) -> Tiles | None:
    """A max- or average pool's :class:`Tiles` if its windows tile the input (stride
    = size, no padding), else None; the caller checks that the tiles divide the map."""
    if _own(pool, (MaxPool2D, AvgPool2D)) and pool.stride == pool.pool_size:
        if pool.padding == (0, 0):
            return Tiles(*pool.pool_size, mean=type(pool) is AvgPool2D)
    return None


def _pool_tiles(conv, layer, mean: bool) -> bool:
    """Whether ``layer`` is a tiling pool (an average one if ``mean``, else a max)
    that can merge into ``conv``."""
    tile = tiles(layer)
    return conv.rank == 2 and tile is not None and tile.mean == mean


def _links(steps) -> list[bool]:
    """``links[p]``: step ``p`` reads the output of step ``p - 1`` and nothing else,
    and no other step reads that output (a chain, where a layer may merge into the
    one before it)."""
    readers: dict[int, int] = {}
    for step in steps:
        for s in step.sources:
            readers[s] = readers.get(s, 0) + 1
    links = [False]
    for before, step in zip(steps, steps[1:], strict=False):
        links.append(step.sources == (before.dest,) and readers[before.dest] == 1)
    return links


def plan(layers, steps, outputs=()) -> list[tuple]:
    """Groups ``(i, bn, pool, act)`` of the execution ``steps``
    (:func:`~cnnumpy.engine.executor.execution_steps`): layer ``i``, with the
    indices of the BatchNorm folded into it, of the pool and of the activation run
    on its chunks (``None`` for each one that is not there). A layer merges only with
    the ones that run right after it on its output alone (no other layer reads it,
    and it is not a model output in ``outputs``): a BatchNorm, then a max-pool and a
    ReLU or LeakyReLU, or an activation and an average pool, in that order."""
    groups, p = [], 0
    links = _links(steps)
    kept = set(outputs)

    def ahead(k: int = 0):
        """The layer ``k`` steps after the current one, if the chain reaches it."""
        q = p + k
        chained = q < len(steps) and all(links[p - 1 + 1 : q + 1])
        if not chained or any(steps[r].dest in kept for r in range(p - 1, q)):
            return None
        return layers[steps[q].index]

    while p < len(steps):
        i, bn, pool, act = steps[p].index, None, None, None
        p += 1
        conv = layers[i]
        if _own(conv, _CONVS):
            if _own(ahead(), (BatchNorm,)):
                bn, p = steps[p].index, p + 1
            if _own(ahead(), _BEFORE_MEAN) and _pool_tiles(conv, ahead(1), mean=True):
                act, pool, p = steps[p].index, steps[p + 1].index, p + 2
            else:
                if _pool_tiles(conv, ahead(), mean=False):
                    pool, p = steps[p].index, p + 1
                if _own(ahead(), _ACTIVATIONS):
                    act, p = steps[p].index, p + 1
        groups.append((i, bn, pool, act))
    return groups


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


def convolve(conv, x: np.ndarray, w, b, post=None, tile: Tiles | None = None):
    """``conv``'s output for the kernels ``w`` and bias ``b`` (a BatchNorm folded
    in), by the engine kernel the ``conv2d`` table chooses, each chunk max- or
    mean-pooled over ``tile`` and then ``post`` run on it in place."""
    conv.output_shape(x.shape[1:])  # checks the channels and the sizes
    x2, w2, stride, pads = conv.as_2d(x, w)
    args = (x2, w2, b, stride, pads, conv.padding_mode)
    kernel = ops.conv2d.choose(*args)
    out, _cache = kernel.forward(*args, post=post, pool=tile)
    return out[:, :, 0, :] if conv.rank == 1 else out


def forward(layers, steps, inputs: list, outputs: list[int]) -> list:
    """Inference outputs (one per value id in ``outputs``) of ``inputs`` (one array
    per model input, already of the layers' dtype) through ``layers`` run in
    ``steps``, fused as above (layer by layer when the engine is off)."""
    values = dict(enumerate(inputs))
    # what each step lets go: values no later step reads (inference keeps no cache)
    freed = graph.last_uses([step.sources for step in steps], outputs)
    if not dispatch.enabled() or dispatch.forced("conv2d") == dispatch.BOOK:
        for step, done in zip(steps, freed, strict=True):
            layer = layers[step.index]
            values[step.dest] = layer.forward(
                graph.arguments(layer, values, step.sources), training=False
            )
            _let_go(values, done)
        return [values[k] for k in outputs]
    position = {step.index: p for p, step in enumerate(steps)}
    for group in plan(layers, steps, outputs):
        members = sorted((j for j in group if j is not None), key=position.get)
        first, last = steps[position[group[0]]], steps[position[members[-1]]]
        out = graph.arguments(layers[group[0]], values, first.sources)
        values[last.dest] = _run_group(layers, group, out, members)
        for j in members:
            _let_go(values, freed[position[j]])
    return [values[k] for k in outputs]


def _let_go(values: dict, done: list[int]) -> None:
    """Drop the values no later step reads (a fused group never stored some)."""
    for value in done:
        values.pop(value, None)


def _run_group(layers, group, out, members: list[int]):
    """The output of one group ``(i, bn, pool, act)`` of :func:`plan` on ``out``
    (``members``: its layers in execution order)."""
    i, bn, pool, act = group
    layer = layers[i]
    if bn is None and pool is None and act is None:
        return layer.forward(out, training=False)
    w, b = folded(layer, None if bn is None else layers[bn])
    tile = None if pool is None else tiles(layers[pool])
    _F, *size = layer.output_shape(out.shape[1:])
    if tile is not None and (size[0] % tile.KH or size[1] % tile.KW):
        # the tiles leave rows over at this input size: run the pool and the
        # activation as they are, in their order
        out = convolve(layer, out, w, b)
        for j in members:
            if j in (pool, act):
                out = layers[j].forward(out, training=False)
        return out
    post = None if act is None else in_place(layers[act])
    return convolve(layer, out, w, b, post, tile)
