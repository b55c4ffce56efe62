"""What the notes watch inside a training run: the loss of every batch, and the
gradients of every parameter (the time of each layer:
:mod:`~cnnumpy.callbacks.timing`).

Seed 000's ``train`` prints each ``batch_loss`` and appends it to ``self.loss``, then
plots the curve over all batches (``print_error``); while hunting an exploding or
vanishing gradient it prints, layer after layer, the max and min of ``delta`` and
``delta_bias``. ``BatchLossHistory`` keeps the first, ``GradientStats`` the second.
"""

from __future__ import annotations

import math

import numpy as np

from cnnumpy.callbacks.base import Callback
from cnnumpy.callbacks.tables import chosen_epoch, last_block, text_table


class BatchLossHistory(Callback):
    """The loss of every training batch, epoch by epoch.

    The loss of a batch is the one ``train_on_batch`` would return: the mean loss of
    the batch before its update (``History`` keeps the epoch's mean of them).

    Attributes:
        losses: one list per epoch, the batches' losses in order.
        epochs: the epoch (0-based) of each list.

    Example::

        losses = BatchLossHistory()
        model.fit(x, y, epochs=3, callbacks=[losses])
        plt.plot(losses.flat)  # seed 000's curve over every batch
    """

    def __init__(self) -> None:
        self.losses: list[list[float]] = []
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.losses.append([])

    def on_batch_end(self, batch, logs=None):
        self.losses[-1].append(float(logs["loss"]))  # fit logs the batch's own loss

    @property
    def flat(self) -> np.ndarray:
        """Every batch's loss, all epochs end to end: shape ``(batches,)``."""
        return np.array([loss for epoch in self.losses for loss in epoch])

    def state_dict(self) -> dict:
        return {"losses": self.losses, "epochs": self.epochs}

    def load_state_dict(self, state: dict) -> None:
        self.losses = [[float(v) for v in epoch] for epoch in state["losses"]]
        self.epochs = [int(e) for e in state["epochs"]]

    def __repr__(self) -> str:
        return f"BatchLossHistory(epochs={len(self.epochs)}, batches={len(self.flat)})"


class GradientStats(Callback):
    """Statistics of every parameter's gradient, per epoch.

    After each training step, for every parameter ``W`` of a trainable layer and its
    gradient ``g = dL/dW`` on the batch (``layer.grads``, which the optimiser never
    changes: clipping and weight decay work on copies)::

        norm       = ||g||_2 = sqrt(sum g_k^2)
        mean_abs   = mean_k |g_k|
        max_abs    = max_k |g_k|
        update     = ||W_after - W_before||_2 / ||W_before||_2

    ``update`` is the relative size of the step the optimiser took (a common rule of
    thumb wants it near 1e-3); it needs a copy of the parameters before each step,
    which ``update_ratio=False`` spares. A batch where ``||W_before|| = 0`` (biases
    at their zero initialisation) has no ratio and is left out of its mean.

    Per epoch, ``norm``, ``mean_abs`` and ``update_ratio`` are the means over the
    epoch's batches, ``max_abs`` the largest of the epoch, ``weight_norm`` is
    ``||W||_2`` at the end of the epoch.

    Attributes:
        rows: one dict per epoch and parameter: ``epoch``, ``layer`` (index in
            ``model.layers``), ``name`` (the layer's name, else its repr), ``param``
            (its key in ``layer.params``), ``norm``, ``mean_abs``, ``max_abs``,
            ``update_ratio`` (NaN if not computed), ``weight_norm``.
    """

    def __init__(self, update_ratio: bool = True) -> None:
        if not isinstance(update_ratio, bool):
            raise TypeError(
                "GradientStats: update_ratio must be True or False, "
                f"got {update_ratio!r}"
            )
        self.update_ratio = update_ratio
        self.rows: list[dict] = []
        self._sums: dict[tuple, list[float]] = {}
        self._before: dict[tuple, np.ndarray] = {}

    def on_epoch_begin(self, epoch, logs=None):
        # per parameter: sum of norms, sum of mean |g|, max |g|, sum of ratios,
        # batches with a ratio, batches
        self._sums = {key: [0.0, 0.0, 0.0, 0.0, 0, 0] for key, *_ in self._params()}

    def on_batch_begin(self, batch, logs=None):
        if self.update_ratio:
            self._before = {key: p.copy() for key, p, _ in self._params()}

    def on_batch_end(self, batch, logs=None):
        for key, p, layer in self._params():
            g = layer.grads[key[1]]
            sums = self._sums[key]
            sums[0] += _norm(g)
            sums[1] += float(np.mean(np.abs(g), dtype=np.float64))
            sums[2] = max(sums[2], float(np.max(np.abs(g))))
            sums[5] += 1
            before = self._before.get(key)
            if before is not None and _norm(before) > 0:
                sums[3] += _norm(p - before) / _norm(before)
                sums[4] += 1
        self._before = {}

    def on_epoch_end(self, epoch, logs=None):
        layers = self.model.layers
        for (i, name), p, _ in self._params():
            total_norm, total_mean, max_abs, ratios, n_ratios, n = self._sums[(i, name)]
            if n == 0:  # stopped before its first step
                continue
            self.rows.append({
                "epoch": epoch, "layer": i, "name": layers[i].name or repr(layers[i]),
                "param": name, "norm": total_norm / n, "mean_abs": total_mean / n,
                "max_abs": max_abs,
                "update_ratio": ratios / n_ratios if n_ratios else math.nan,
                "weight_norm": _norm(p),
            })  # fmt: skip

    def _params(self):
        """``((layer index, key), W, layer)`` for every parameter the optimiser
        updates (the parameters of the trainable layers)."""
        for i, layer in enumerate(self.model.layers):
            if getattr(layer, "trainable", True):
                for name, p in layer.params.items():
                    yield (i, name), p, layer

    def table(self, epoch: int | None = None) -> str:
        """The statistics of ``epoch`` (default: the last one) as a text table."""
        epoch = chosen_epoch(self.rows, epoch, "GradientStats.table")
        body = [
            [str(r["layer"]), r["name"], r["param"], f"{r['norm']:.4g}",
             f"{r['mean_abs']:.4g}", f"{r['max_abs']:.4g}",
             f"{r['update_ratio']:.3g}", f"{r['weight_norm']:.4g}"]
            for r in last_block(self.rows, epoch)
        ]  # fmt: skip
        header = ["#", "layer", "param", "||g||", "mean |g|", "max |g|",
                  "||dW||/||W||", "||W||"]  # fmt: skip
        return f"epoch {epoch}\n" + text_table(header, body, right=(3, 4, 5, 6, 7))

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])


def _norm(a: np.ndarray) -> float:
    """``||a||_2``, summed in float64 (a float32 sum of squares loses digits)."""
    return math.sqrt(float(np.sum(np.square(a, dtype=np.float64))))
