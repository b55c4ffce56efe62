"""How a replica mirrors the caller's model: what it can rebuild, and what crosses over.

A replica rebuilds the model from its config (``Sequential.get_config``), so only
cnnumpy's own layers and losses qualify (:func:`check_replicable`,
:func:`loss_config`; replicas run on POSIX systems only). Then, every step:

- the caller writes every weight and state array into one shared block
  (:meth:`SharedWeights.publish`), which the replica's layers use in place
  (:func:`attach`): nothing is sent twice, nothing is copied back;
- the caller sends what else a layer draws or reads in training (:func:`step_state`:
  Dropout's generator states, BatchNorm's epsilon), which the replica sets
  (:func:`set_step_state`);
- each replica writes its gradients, weighted by its share of the batch, at the start
  of its own block (offsets :attr:`SharedWeights.g_offsets`), and the caller adds them
  to its own (:meth:`SharedWeights.add_gradients`).
"""

from __future__ import annotations

import os

import numpy as np

from cnnumpy.distributed.process import ReplicaError
from cnnumpy.distributed.transport import SharedBlock, align
from cnnumpy.layers import LAYERS
from cnnumpy.losses import LOSSES, serialize
from cnnumpy.rng import generator_from_state, generator_state

__all__ = [
    "SharedWeights",
    "attach",
    "check_replicable",
    "grad_arrays",
    "layout",
    "loss_config",
    "set_step_state",
    "step_state",
    "weight_arrays",
]


# -- what replicas can run -------------------------------------------------------------
def check_replicable(model) -> None:
    """A ValueError if ``model`` is not built; a ReplicaError off POSIX systems or if
    a layer is not one of cnnumpy's own (a replica rebuilds it from its config)."""
    if model.input_shape is None:
        raise ValueError("use_processes: the model is not built; pass input_shape=")
    if os.name != "posix":
        raise ReplicaError("process replicas need a POSIX system (Linux, macOS)")
    if model.n_inputs != 1 or model.multiple_outputs:
        raise ReplicaError(
            "use_processes: process replicas split models of one input and one "
            f"output; this one has {model.n_inputs} input(s) and "
            f"{len(model.output_ids)} output(s) (train it in one process)"
        )
    for i, layer in enumerate(model.layers):
        cls = type(layer)
        if LAYERS.get(cls.__name__) is not cls or not cls.__module__.startswith(
            "cnnumpy.layers."
        ):
            raise ReplicaError(
                f"use_processes: layer {i} ({layer!r}) is not one of cnnumpy's "
                "own layers; replicas rebuild the model from its config"
            )


def loss_config(model) -> dict:
    """The loss as the replicas rebuild it; only cnnumpy's own losses qualify."""
    loss = model.loss
    if LOSSES.get(loss.name) is not type(loss):
        raise ReplicaError(
            f"{type(loss).__name__} is not one of cnnumpy's own losses; replicas "
            "rebuild the loss from its config (train without use_processes)"
        )
    return serialize(loss)


# -- what a training step sends besides the slice --------------------------------------
def step_state(model, dropouts: list[int], batchnorms: list[int]) -> dict:
    """The loss, layers ``dropouts``' rates and generator states and layers
    ``batchnorms``' epsilons: what a replica needs to train as the caller does."""
    layers = model.layers
    return {
        "loss": loss_config(model),  # sent with the step: a recompile is seen
        # every process draws the whole batch's dropout masks from the same
        # generator state (read only when it draws: a rate-0 layer spawns none)
        "dropout": {
            str(i): [
                layers[i].rate,
                generator_state(layers[i].rng) if layers[i].rate > 0 else None,
            ]
            for i in dropouts
        },
        "eps": {str(i): layers[i].eps for i in batchnorms},
    }


def set_step_state(model, message: dict) -> None:
    """The replica's side of :func:`step_state` (the loss excepted)."""
    for i, (rate, state) in message["dropout"].items():
        layer = model.layers[int(i)]
        layer.rate = rate
        if state is not None:
            layer.rng = generator_from_state(state)
    for i, eps in message["eps"].items():
        model.layers[int(i)].eps = eps


# -- the model's arrays in shared memory -----------------------------------------------
def weight_arrays(model) -> list[np.ndarray]:
    """Every parameter and state array, in a fixed order."""
    return [
        store[key]
        for layer in model.layers
        for store in (layer.params, layer.state)
        for key in sorted(store)
    ]


def grad_arrays(model) -> list[tuple[object, str]]:
    """``(layer, key)`` of every parameter's gradient, in a fixed order."""
    return [(layer, key) for layer in model.layers for key in sorted(layer.params)]


def layout(arrays, start: int = 0) -> tuple[list[int], int]:
    """The aligned offset of each of ``arrays`` from ``start``, and the end."""
    offsets, at = [], start
    for a in arrays:
        offsets.append(at)
        at = align(at + a.nbytes)
    return offsets, at


class SharedWeights:
    """The caller's shared block of weights, and where the gradients go.

    Attributes:
        block: the weights' block; every replica maps it (:func:`attach`).
        w_offsets: where each of :func:`weight_arrays` sits in ``block``.
        g_offsets: where each of :func:`grad_arrays` sits in a replica's block.
        g_bytes: the bytes the gradients take there (its slice follows them).
    """

    def __init__(self, model) -> None:
        weights = weight_arrays(model)
        self.shapes = [(a.shape, a.dtype) for a in weights]
        self.w_offsets, size = layout(weights)
        self.grads = grad_arrays(model)
        grads = [layer.params[key] for layer, key in self.grads]
        self.g_offsets, self.g_bytes = layout(grads)
        self.block = SharedBlock(size)

    def publish(self, model) -> None:
        """Copy the model's weights into the block, for the replicas' next step."""
        weights = weight_arrays(model)
        if [(a.shape, a.dtype) for a in weights] != self.shapes:
            raise ReplicaError(
                "the model's layers, shapes or dtype changed after use_processes; "
                "call model.use_processes again"
            )
        for a, offset in zip(weights, self.w_offsets, strict=True):
            self.block.array(offset, a.shape, a.dtype)[...] = a

    def add_gradients(self, own_share: float, blocks: list[SharedBlock]) -> None:
        """The caller's gradients times ``own_share``, plus those in ``blocks`` (the
        replicas', already weighted by their share): the whole batch's gradients."""
        for (layer, key), offset in zip(self.grads, self.g_offsets, strict=True):
            g = layer.grads[key]
            g *= own_share
            for block in blocks:
                g += block.array(offset, g.shape, g.dtype)


def attach(model, fd: int, nbytes: int, offsets: list[int]) -> SharedBlock:
    """Point the replica's weights at the shared block (read live every step)."""
    block = SharedBlock(nbytes, fd)
    k = 0
    for layer in model.layers:
        for store in (layer.params, layer.state):
            for key in sorted(store):
                a = store[key]
                store[key] = block.array(offsets[k], a.shape, a.dtype)
                k += 1
    return block
