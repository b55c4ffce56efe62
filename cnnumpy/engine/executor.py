"""The executor: how a model's batches are run fast, without changing what they compute.

``Sequential.forward`` and ``Sequential.backward`` are the notes' loops over the layers
(seed 002, ``Network.fit``; seed 000, ``train``), and every layer calls the operation
the engine chooses for it. What a step adds on top of the layers lives here: ``fit``,
``train_on_batch``, ``predict`` and ``evaluate`` hand each batch to the model's
executor (``model.executor``), which runs the same layers with these changes:

1. **One hold on the BLAS threads per step** (:func:`~cnnumpy.engine.kernels.parallel.
   blas_one_thread`): the engine's kernels run their own threads, each calling the BLAS
   on a chunk; a multi-threaded BLAS call among them would fight them for the cores,
   and OpenBLAS's idle threads keep spinning after one. Every kernel holds the BLAS
   itself; one hold around the whole step makes the kernels' holds cost a counter.
2. **A max-pool before the activation it follows** (:func:`execution_order`), when
   the activation is a ReLU or a LeakyReLU with ``alpha >= 0``: the same outputs and
   gradients, and the activation touches a quarter of the values for 2x2 pooling.
3. **No input gradient for the first layer in training**: nobody reads it.
4. **Fused inference** (:mod:`cnnumpy.engine.fusion`): in ``predict`` and ``evaluate``,
   BatchNorm folded into the convolution before it, and the pool and activation after
   a convolution run on each chunk of its output.
5. **Process replicas**: after ``model.use_processes(n)``, :attr:`Executor.replicas`
   splits each batch over ``n`` processes (:mod:`cnnumpy.distributed`), and the
   result is that of one process on the whole batch.

With the engine off (:func:`cnnumpy.engine.off`, ``CNNUMPY_ENGINE=0``), the model
does not call its executor: ``train_step`` and ``predict`` run ``model.forward`` and
``model.backward`` as they are, the notes' loops on the book's code, with no hold on the
BLAS. Outputs and gradients are the same either way, up to float rounding (the fused
inference rounds differently).
"""

from __future__ import annotations

import weakref

import numpy as np

from cnnumpy.engine import dispatch, fusion
from cnnumpy.engine.kernels.parallel import blas_one_thread
from cnnumpy.layers.activations import LeakyReLU, ReLU
from cnnumpy.layers.pooling import MaxPool1D, MaxPool2D
from cnnumpy.validation import cast_inputs


class Executor:
    """Runs one model's training steps and inference batches (see the module).

    Attributes:
        model: the model it runs.
        replicas: the process replicas each batch is split over, or None (set by
            :func:`cnnumpy.distributed.replicas.use_processes`).
    """

    def __init__(self, model) -> None:
        self._model = weakref.ref(model)  # the model owns its executor, not the reverse
        self.replicas = None
        self._order: list[int] | None = None  # of the last forward, for backward

    @property
    def model(self):
        return self._model()

    # -- one training step -------------------------------------------------------------
    def train_step(self, x: np.ndarray, y) -> tuple[float, np.ndarray]:
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

    def gradients(self, x: np.ndarray, y) -> tuple[float, np.ndarray]:
        """Forward, loss and backward in this process, no update: ``(loss, raw
        outputs)``, every layer's ``grads`` filled."""
        model = self.model
        with blas_one_thread():
            out = self.forward(x, training=True)
            loss = float(model.loss(out, y))
            first = model.layers[0]
            first.need_input_grad = False
            try:
                self.backward(model.loss.backward())
            finally:
                first.need_input_grad = True
        return loss, out

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``model.forward(x)`` with the layers in :func:`execution_order`."""
        layers = self.model.layers
        self._order = execution_order(layers)
        out = x
        with blas_one_thread():
            for i in self._order:
                out = layers[i].forward(out, training=training)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """``model.backward(dout)``, in the reverse of the last :meth:`forward`'s
        order."""
        layers = self.model.layers
        order = self._order or range(len(layers))
        with blas_one_thread():
            for i in reversed(order):
                dout = layers[i].backward(dout)
        return dout

    # -- inference ---------------------------------------------------------------------
    def infer(self, x: np.ndarray) -> np.ndarray:
        """Raw inference outputs of a batch of the model's dtype, split over the
        replicas if there are any."""
        with blas_one_thread():
            if self.replicas is not None and self.replicas.splits(len(x)):
                return self.replicas.forward(self.model, x)
            return self.fused_forward(x)

    def fused_forward(self, x: np.ndarray) -> np.ndarray:
        """``model.forward(x)`` in inference, fused (:mod:`cnnumpy.engine.fusion`):
        equal up to float rounding; the layers' caches are not refreshed."""
        layers = self.model.layers
        x = cast_inputs(self.model, x)  # ids stay integer for an Embedding
        with blas_one_thread():
            return fusion.forward(layers, execution_order(layers), x)


def execution_order(layers: list) -> list[int]:
    """The order in which the executor runs the layers (``backward``: reversed).

    A max-pool that directly follows a ReLU or a LeakyReLU (alpha >= 0) runs before it:
    for a non-decreasing f, max(f(x_1), ..., f(x_k)) = f(max(x_1, ..., x_k)), so the
    output is the same, and so are the gradients (the pool routes each window's
    gradient to its first maximum, which f does not move; where f flattens a tie, its
    derivative there is 0 on either side). The activation then touches KH*KW times
    fewer values: a quarter for 2x2 pooling. The first layer is never moved (it
    returns no input gradient). With the engine off, the layers' own order.
    """
    order = list(range(len(layers)))
    if not dispatch.enabled():
        return order
    for i in range(1, len(layers) - 1):
        act, pool = layers[i], layers[i + 1]
        monotone = isinstance(act, ReLU) or (
            isinstance(act, LeakyReLU) and act.alpha >= 0
        )
        if monotone and isinstance(pool, (MaxPool1D, MaxPool2D)) and order[i] == i:
            order[i], order[i + 1] = i + 1, i
    return order
