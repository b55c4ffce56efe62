"""The executor: how a model's batches are run fast, without changing what they compute.

``Model.forward`` and ``Model.backward`` are the notes' loops over the layers (seed 002,
``Network.fit``; seed 000, ``train``; in a graph each layer reads the values it is
connected to), and every layer calls the operation the engine chooses for it. What a
step adds on top of the layers lives here: ``fit``, ``train_on_batch``, ``predict``
and ``evaluate`` hand each batch to the model's executor (``model.executor``),
which runs the same layers with these changes:

1. **One hold on the BLAS threads per step** (:func:`~cnnumpy.engine.kernels.parallel.
   blas_one_thread`): the engine's kernels run their own threads, each calling the BLAS
   on a chunk; a multi-threaded BLAS call among them would fight them for the cores,
   and OpenBLAS's idle threads keep spinning after one. Every kernel holds the BLAS
   itself; one hold around the whole step makes the kernels' holds cost a counter.
2. **A max-pool before the activation it follows** (:func:`execution_steps`), when
   the activation is a ReLU or a LeakyReLU with ``alpha >= 0``: the same outputs and
   gradients, and the activation touches a quarter of the values for 2x2 pooling.
3. **No input gradient for the layers that read the model's inputs in training**:
   nobody reads it.
4. **Fused inference** (:mod:`cnnumpy.engine.fusion`): in ``predict`` and ``evaluate``,
   BatchNorm folded into the convolution before it, and the pool and activation after
   a convolution run on each chunk of its output.
5. **Process replicas**: after ``model.use_processes(n)``, :attr:`Executor.replicas`
   splits each batch over ``n`` processes (:mod:`cnnumpy.distributed`), and the
   result is that of one process on the whole batch. A ``fit`` over MPI ranks
   attaches its group there for the run in the same way
   (:mod:`cnnumpy.distributed.data_parallel`).

With the engine off (:func:`cnnumpy.engine.off`, ``CNNUMPY_ENGINE=0``), the model
does not call its executor: ``train_step`` and ``predict`` run ``model.forward`` and
``model.backward`` as they are, the notes' loops on the book's code, with no hold on the
BLAS. Outputs and gradients are the same either way, up to float rounding (the fused
inference rounds differently).
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import numpy as np

from cnnumpy import graph
from cnnumpy.engine import dispatch, fusion
from cnnumpy.engine.kernels.parallel import blas_one_thread
from cnnumpy.layers.activations import LeakyReLU, ReLU
from cnnumpy.layers.pooling import MaxPool1D, MaxPool2D
from cnnumpy.validation import Arrays, cast_inputs


class Step(NamedTuple):
    """One layer call of a pass: layer ``index`` reads the values ``sources`` and
    writes value ``dest`` (value ids as in :mod:`cnnumpy.graph`)."""

    index: int
    sources: tuple[int, ...]
    dest: int


class Executor:
    """Runs one model's training steps and inference batches (see the module).

    Attributes:
        model: the model it runs.
        replicas: the process replicas each batch is split over, or None (set by
            :func:`cnnumpy.distributed.replicas.use_processes`; or the MPI ranks'
            :class:`~cnnumpy.distributed.data_parallel.DataParallel` during a
            distributed ``fit``).
    """

    def __init__(self, model) -> None:
        self._model = weakref.ref(model)  # the model owns its executor, not the reverse
        self.replicas = None
        self._steps: list[Step] | None = None  # of the last forward, for backward

    @property
    def model(self):
        return self._model()

    # -- one training step -------------------------------------------------------------
    def train_step(self, x, y) -> tuple[float, np.ndarray]:
        """Forward, loss, backward and one optimiser update on a batch of checked
        inputs of the model's dtype: ``(loss, raw outputs)``."""
        model = self.model
        # a loss that ignores positions (padding) averages over the kept ones: slices
        # weighted by their rows would not add up to the batch's mean, so no split
        whole = getattr(model.loss, "ignore_index", None) is None
        with blas_one_thread():
            if self.replicas is not None and whole and self.replicas.splits(len(x)):
                return self.replicas.train_step(model, x, y)  # updates once, here
            loss, out = self.gradients(x, y)
            model.optimizer.step(model.layers)
        return loss, out

    def gradients(self, x, y) -> tuple[float, np.ndarray]:
        """Forward, loss and backward in this process, no update: ``(loss, raw
        outputs)``, every layer's ``grads`` filled."""
        model = self.model
        with blas_one_thread():
            out = self.forward(x, training=True)
            loss = float(model.loss(out, y))
            n_inputs = model.n_inputs
            # nobody reads the gradient of the model's inputs
            first = [
                model.layers[step.index]
                for step in self._steps
                if all(s < n_inputs for s in step.sources)
            ]
            for layer in first:
                layer.need_input_grad = False
            try:
                self.backward(model.loss.backward())
            finally:
                for layer in first:
                    layer.need_input_grad = True
        return loss, out

    def forward(self, x, training: bool = False):
        """``model.forward(x)`` with the layers in :func:`execution_steps`."""
        model = self.model
        layers = model.layers
        steps = self._steps = execution_steps(model)
        values = dict(enumerate(_input_list(model, x)))
        freed = graph.last_uses([s.sources for s in steps], model.output_ids)
        with blas_one_thread():
            for step, done in zip(steps, freed, strict=True):
                layer = layers[step.index]
                args = graph.arguments(layer, values, step.sources)
                values[step.dest] = layer.forward(args, training=training)
                for value in done:
                    del values[value]
        outs = [values[k] for k in model.output_ids]
        return outs if model.multiple_outputs else outs[0]

    def backward(self, dout):
        """``model.backward(dout)``, in the reverse of the last :meth:`forward`'s
        steps; the gradient of a value read by several layers is their sum."""
        model = self.model
        steps = self._steps or execution_steps(model)
        grads: dict = {}
        douts = dout if model.multiple_outputs else [dout]
        for k, d in zip(model.output_ids, douts, strict=True):
            graph.accumulate(grads, k, d)
        with blas_one_thread():
            for step in reversed(steps):
                layer = model.layers[step.index]
                dxs = layer.backward(grads.pop(step.dest))
                if not layer.multiple_inputs:
                    dxs = [dxs]
                for s, dx in zip(step.sources, dxs, strict=True):
                    graph.accumulate(grads, s, dx)
        dxs = [grads.get(k) for k in range(model.n_inputs)]
        return dxs if model.multiple_inputs else dxs[0]

    # -- inference ---------------------------------------------------------------------
    def infer(self, x):
        """Raw inference outputs of a batch of the model's dtype, split over the
        replicas if there are any."""
        with blas_one_thread():
            if self.replicas is not None and self.replicas.splits(len(x)):
                return self.replicas.forward(self.model, x)
            return self.fused_forward(x)

    def fused_forward(self, x):
        """``model.forward(x)`` in inference, fused (:mod:`cnnumpy.engine.fusion`):
        equal up to float rounding; the layers' caches are not refreshed."""
        model = self.model
        xs = _input_list(model, x)  # ids stay integer for an Embedding
        with blas_one_thread():
            outs = fusion.forward(
                model.layers, execution_steps(model), xs, model.output_ids
            )
        return outs if model.multiple_outputs else outs[0]


def _input_list(model, x) -> list:
    """The batch as one array per model input, cast to the model's dtype (ids
    stay integers)."""
    if isinstance(x, (list, tuple)):
        x = Arrays(x)
    x = cast_inputs(model, x)
    return list(x.arrays) if isinstance(x, Arrays) else [x]


def _monotone(layer) -> bool:
    leaky = isinstance(layer, LeakyReLU) and layer.alpha >= 0
    return isinstance(layer, ReLU) or leaky


def execution_steps(model) -> list[Step]:
    """The steps in which the executor runs ``model``'s layers (``backward``: in
    reverse): the model's own order, except that a max-pool that directly follows a
    ReLU or a LeakyReLU (alpha >= 0) runs before it (see :func:`execution_order`).
    In a graph this holds where the activation's output goes to the pool alone; the
    pool then reads what the activation read, and the activation the pool's output.
    """
    layers, sources, n = model.layers, model.sources, model.n_inputs
    steps = [Step(j, tuple(srcs), n + j) for j, srcs in enumerate(sources)]
    if not dispatch.enabled():
        return steps
    readers: dict[int, int] = {}
    for srcs in sources:
        for s in srcs:
            readers[s] = readers.get(s, 0) + 1
    outputs = set(model.output_ids)
    j = 0
    while j < len(steps) - 1:
        act, pool = steps[j], steps[j + 1]
        swap = (
            _monotone(layers[act.index])
            and isinstance(layers[pool.index], (MaxPool1D, MaxPool2D))
            and pool.sources == (act.dest,)
            and readers.get(act.dest) == 1
            and act.dest not in outputs
            and all(s >= n for s in act.sources)  # never the first layer
        )
        if swap:
            steps[j] = Step(pool.index, act.sources, act.dest)
            steps[j + 1] = Step(act.index, (act.dest,), pool.dest)
            j += 2
        else:
            j += 1
    return steps


def execution_order(layers: list) -> list[int]:
    """The order in which the executor runs a stack of layers (``backward``:
    reversed): :func:`execution_steps` of the chain.

    A max-pool that directly follows a ReLU or a LeakyReLU (alpha >= 0) runs before it:
    for a non-decreasing f, max(f(x_1), ..., f(x_k)) = f(max(x_1, ..., x_k)), so the
    output is the same, and so are the gradients (the pool routes each window's
    gradient to its first maximum, which f does not move; where f flattens a tie, its
    derivative there is 0 on either side). The activation then touches KH*KW times
    fewer values: a quarter for 2x2 pooling. The first layer is never moved (it
    returns no input gradient). With the engine off, the layers' own order.
    """
    return [step.index for step in execution_steps(_Chain(layers))]


class _Chain:
    """The graph of a stack of layers, as :func:`execution_steps` reads a model."""

    def __init__(self, layers: list) -> None:
        self.layers = layers
        self.sources = [[j] for j in range(len(layers))]
        self.n_inputs = 1
        self.output_ids = [len(layers)]
