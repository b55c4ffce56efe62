"""The embedding layer: token ids to vectors, the one-hot row times W (seed 003,
"Réseaux récurrents", slide 218; the math in :mod:`cnnumpy.textbook.embedding`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnumpy import initializers
from cnnumpy.engine import ops
from cnnumpy.layers.base import Layer


def _positive_int(value) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, np.integer))
        and value >= 1
    )


class Embedding(Layer):
    """A learnt vector per symbol: ``out[n, t] = W[ids[n, t]]``.

    The notes' one-hot input times a bias-free dense layer's W, stored as the id
    alone. Backward adds ``dout[n, t]`` into row ``ids[n, t]`` of dW (an id seen twice
    adds twice) and returns None: integer ids have no gradient. An Embedding is
    therefore the first layer of a model, and the model then passes its integer
    inputs through uncast (``input_dtype = "int"``, read by
    :func:`cnnumpy.validation.cast_inputs`).

    Args:
        vocab_size: number of symbols; ids lie in ``[0, vocab_size)``.
        dim: length of each symbol's vector.
        embeddings_initializer: name of the initializer of W
            (``cnnumpy.initializers``).
        name: optional name of the layer.

    Shape:
        input ``(N, T)`` integer ids (any integer dtype; float arrays are refused,
        even holding whole numbers), output ``(N, T, dim)`` of the layer's dtype;
        params ``W`` ``(vocab_size, dim)``.
    """

    input_dtype = "int"  # the model keeps this layer's inputs integer

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        embeddings_initializer: str = "glorot_uniform",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        for arg, value in (("vocab_size", vocab_size), ("dim", dim)):
            if not _positive_int(value):
                raise ValueError(
                    f"Embedding: {arg} must be a positive int, got {value!r}"
                )
        self.vocab_size = int(vocab_size)
        self.dim = int(dim)
        self.embeddings_initializer = embeddings_initializer
        # Resolve now so that a typo fails at construction, not at the first batch.
        self._init = initializers.get(embeddings_initializer)
        self._cache = None
        self._out_shape: tuple[int, ...] | None = None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(T,) -> (T, dim)``; W does not depend on T, so any T is accepted."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 1:
            got = ", ".join(str(d) for d in input_shape)
            raise self._error(f"expected ids (N, T), got (N, {got})")
        return (input_shape[0], self.dim)

    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """W ``(vocab_size, dim)``; validates ``input_shape``."""
        self.output_shape(input_shape)
        return {"W": (self.vocab_size, self.dim)}

    def build(self, input_shape: tuple[int, ...]) -> None:
        shapes = self.param_shapes(input_shape)  # validates before allocating
        self.params = {"W": self._init(shapes["W"], self.rng, self.dtype)}
        super().build(input_shape)

    def _expected_input(self) -> str:
        return "(N, T)"

    def _check_ids(self, ids) -> np.ndarray:
        """Integer ids ``(N, T)`` within the vocabulary, or a clear error."""
        if not isinstance(ids, np.ndarray):
            raise TypeError(
                f"{self!r}: expected a numpy array of ids, got {type(ids).__name__}"
            )
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(
                f"{self!r}: expected integer ids (N, T), got dtype {ids.dtype}; "
                f"convert symbols to ids with an integer dtype (x.astype(np.int64))"
            )
        if ids.ndim != 2:
            raise self._error(f"expected ids (N, T), got shape {ids.shape}")
        if ids.size:
            lo, hi = ids.min(), ids.max()
            bad = lo if lo < 0 else hi if hi >= self.vocab_size else None
            if bad is not None:
                raise self._error(
                    f"id {bad} is outside the vocabulary: expected ids in "
                    f"[0, {self.vocab_size}) for vocab_size={self.vocab_size}"
                )
        return ids

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``out[n, t] = W[x[n, t]]``; keeps the ids (not W) for ``backward``."""
        ids = self._check_ids(x)
        if not self.built:
            self.build(ids.shape[1:])
        out, self._cache = ops.embedding.forward(ids, self.params["W"])
        self._out_shape = out.shape
        return out

    def backward(self, dout: np.ndarray) -> None:
        """Fills ``grads["W"]``; returns None (no gradient to integer ids), whatever
        ``need_input_grad`` says."""
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        dout = np.asarray(dout).astype(self.dtype, copy=False)
        if dout.shape != self._out_shape:
            raise self._error(f"expected dout {self._out_shape}, got {dout.shape}")
        self.grads["W"] = ops.embedding.backward(dout, self._cache)
        return None

    def get_config(self) -> dict[str, Any]:
        return {
            "vocab_size": self.vocab_size,
            "dim": self.dim,
            "embeddings_initializer": self.embeddings_initializer,
            "name": self.name,
        }
