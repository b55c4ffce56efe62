"""Loss objects for ``Sequential.compile(loss=...)``, over ``textbook.losses``.

A loss is called like a function, ``value = loss(y_pred, y_true)``; it keeps dL/dy_pred,
which ``loss.backward()`` returns to start the backward pass (seed 002: "il suffira de
donner cette valeur à la dernière couche lors de la passe arrière").

The last layer of a classifier outputs raw scores (logits): the softmax or the sigmoid
is fused into the loss. ``loss.output_activation`` names the function that turns those
raw outputs into predictions, and ``to_probabilities(output, loss)`` applies it
(``Sequential.predict`` uses it).
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np

from cnnumpy.textbook import losses as F
from cnnumpy.textbook.activations import sigmoid, softmax
from cnnumpy.validation import part


class Loss:
    """Base class: ``__call__``/``forward`` gives the loss, ``backward`` dL/dy_pred.

    Attributes:
        name: the name ``get`` resolves, e.g. ``"cross_entropy"``.
        output_activation: ``"softmax"``, ``"sigmoid"`` or ``"identity"``: how the
            model's raw outputs become predictions.
    """

    name = "loss"
    output_activation = "identity"

    def __init__(self) -> None:
        self._grad: np.ndarray | None = None

    def _compute(
        self, y_pred: np.ndarray, y_true: np.ndarray
    ) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        """The loss value; dL/dy_pred is kept for ``backward``."""
        value, self._grad = self._compute(y_pred, y_true)
        return value

    def __call__(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        return self.forward(y_pred, y_true)

    def backward(self) -> np.ndarray:
        """dL/dy_pred for the last call, shaped like ``y_pred``."""
        if self._grad is None:
            raise RuntimeError(
                f"{self!r}: backward() called before the loss was computed"
            )
        return self._grad

    def to_probabilities(self, output: np.ndarray) -> np.ndarray:
        """Apply ``output_activation`` to raw network outputs."""
        return _ACTIVATIONS[self.output_activation](np.asarray(output))

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSE(Loss):
    """Mean squared error over all elements, E = mean((y - t)^2) (seed 002).

    Same value and gradient as PyTorch's ``MSELoss(reduction="mean")``.
    """

    name = "mse"
    output_activation = "identity"

    def _compute(self, y_pred, y_true):
        return F.mse(y_pred, y_true)


class CrossEntropy(Loss):
    """Softmax cross-entropy on logits, averaged over the batch.

    Labels are class ids (N,) or one-hot / probability rows (N, K); on sequences,
    logits (N, T, K) and class ids (N, T) (or one-hot (N, T, K)), every step one more
    prediction. Same value and gradient as PyTorch's ``CrossEntropyLoss()``.

    Args:
        ignore_index: a class id marking padding, e.g. ``CrossEntropy(ignore_index=0)``
            when id 0 pads sequences to one length: the mean is over the other
            positions and the gradient is zero at the padded ones (PyTorch's
            ``ignore_index``). None (the default): every position counts.
        label_smoothing: eps in [0, 1]: the targets become
            ``(1 - eps) * t + eps / K`` (Szegedy et al. 2016), as PyTorch's
            ``CrossEntropyLoss(label_smoothing=eps)``; 0 (the default) leaves them.

    Both are saved with the model (``get_config``).
    """

    name = "cross_entropy"
    output_activation = "softmax"

    def __init__(
        self, ignore_index: int | None = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        if ignore_index is not None and (
            isinstance(ignore_index, bool)
            or not isinstance(ignore_index, (int, np.integer))
        ):
            raise TypeError(
                f"CrossEntropy: ignore_index must be an int or None, "
                f"got {ignore_index!r}"
            )
        number = isinstance(label_smoothing, Real) and not isinstance(
            label_smoothing, bool
        )
        if not (number and 0.0 <= label_smoothing <= 1.0):
            raise ValueError(
                f"CrossEntropy: label_smoothing must be a number in [0, 1], "
                f"got {label_smoothing!r}"
            )
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def _compute(self, y_pred, y_true):
        return F.cross_entropy(
            y_pred,
            y_true,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self) -> dict[str, Any]:
        # only the options set: a plain CrossEntropy's config is {}, as older files
        config: dict[str, Any] = {}
        if self.ignore_index is not None:
            config["ignore_index"] = self.ignore_index
        if self.label_smoothing:
            config["label_smoothing"] = self.label_smoothing
        return config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"CrossEntropy({args})"


class BinaryCrossEntropy(Loss):
    """Sigmoid binary cross-entropy on logits, averaged over all elements.

    Labels 0/1 (or probabilities) of shape (N,) or (N, 1). Same value and gradient as
    PyTorch's ``BCEWithLogitsLoss()``.
    """

    name = "binary_cross_entropy"
    output_activation = "sigmoid"

    def _compute(self, y_pred, y_true):
        return F.binary_cross_entropy(y_pred, y_true)


_ACTIVATIONS = {
    "identity": lambda z: z,
    "softmax": lambda z: softmax(z, axis=-1),
    "sigmoid": sigmoid,
}


class PerOutput(Loss):
    """One loss per output, weighted and summed: ``L = sum_k w_k L_k(y_k, t_k)``.

    Args:
        losses: one loss (name, class, config dict or object) per output.
        weights: one number ``w_k`` per output; None: all 1.

    ``forward`` takes the list of outputs and the targets (a list or
    :class:`~cnnumpy.validation.Arrays`); ``backward`` returns the list of
    ``w_k dL_k/dy_k``; ``to_probabilities`` maps each output by its own loss.
    """

    name = "per_output"

    def __init__(self, losses, weights=None) -> None:
        super().__init__()
        if not isinstance(losses, (list, tuple)) or not losses:
            raise TypeError(f"PerOutput: expected a list of losses, got {losses!r}")
        self.losses = [get(loss) for loss in losses]
        if any(isinstance(loss, PerOutput) for loss in self.losses):
            raise TypeError("PerOutput: a loss per output cannot itself be a PerOutput")
        if weights is None:
            weights = [1.0] * len(self.losses)
        ok = isinstance(weights, (list, tuple)) and len(weights) == len(self.losses)
        ok = ok and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
            for w in weights
        )
        if not ok:
            raise ValueError(
                f"PerOutput: loss_weights must be {len(self.losses)} numbers >= 0 "
                f"(one per output), got {weights!r}"
            )
        self.weights = [float(w) for w in weights]

    def forward(self, y_pred, y_true) -> float:
        total, grads = 0.0, []
        for k, (loss, w) in enumerate(zip(self.losses, self.weights, strict=True)):
            total += w * float(loss(y_pred[k], part(y_true, k)))
            grad = loss.backward()
            grads.append(grad if w == 1.0 else grad * grad.dtype.type(w))
        self._grad = grads
        return total

    def to_probabilities(self, output) -> list[np.ndarray]:
        return [
            loss.to_probabilities(o)
            for loss, o in zip(self.losses, output, strict=True)
        ]

    def get_config(self) -> dict[str, Any]:
        return {
            "losses": [serialize(loss) for loss in self.losses],
            "weights": list(self.weights),
        }

    def __repr__(self) -> str:
        return f"PerOutput({self.losses!r}, weights={self.weights})"


LOSSES: dict[str, type[Loss]] = {
    "mse": MSE,
    "mean_squared_error": MSE,
    "cross_entropy": CrossEntropy,
    "categorical_crossentropy": CrossEntropy,
    "sparse_categorical_crossentropy": CrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "binary_crossentropy": BinaryCrossEntropy,
    "bce": BinaryCrossEntropy,
    "per_output": PerOutput,
}


def get(loss: str | Loss | type[Loss] | dict) -> Loss:
    """The loss object for a name, a class, a serialised dict or an instance.

    Names: ``"mse"``, ``"cross_entropy"``, ``"binary_cross_entropy"`` and the aliases in
    ``LOSSES``; dicts are ``{"name": ..., "config": {...}}`` (see ``serialize``); a
    ``Loss`` instance is returned as is.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, dict) and "name" in loss:
        name = loss["name"]
        if not isinstance(name, str) or name.lower() not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
        return LOSSES[name.lower()](**loss.get("config", {}))
    if isinstance(loss, str):
        key = loss.lower()
        if key not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)}")
        if key == "per_output":
            raise ValueError(
                "'per_output' needs its losses: compile a model of several outputs "
                "with loss=[one per output] (or PerOutput([...]))"
            )
        return LOSSES[key]()
    raise TypeError(
        f"expected a loss name, a Loss class or instance, got {type(loss).__name__}"
    )


def serialize(loss: Loss) -> dict[str, Any]:
    """``{"name": ..., "config": ...}``, JSON-serialisable; ``get`` reads it back."""
    return {"name": loss.name, "config": loss.get_config()}


def to_probabilities(output: np.ndarray, loss: str | Loss) -> np.ndarray:
    """Turn raw network outputs into predictions for ``loss``.

    Softmax for cross-entropy, sigmoid for binary cross-entropy, unchanged for MSE.
    """
    return get(loss).to_probabilities(output)
