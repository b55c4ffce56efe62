"""Mini-batches for training, and a reproducible train/validation split.

Shuffling draws one permutation of the indices per epoch and takes each batch with fancy
indexing (``x[idx]``): only the batch is copied, never the whole data set. The generator
drives both the permutation and the augmentation, so saving ``state`` before an epoch
and restoring it replays that epoch exactly (the same batches, the same crops and
flips).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cnnumpy.rng import as_rng

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class BatchIterator:
    """Iterate over ``(x_batch, y_batch)`` pairs, one pass per ``for`` loop (an epoch).

    Args:
        x: inputs ``(N, ...)``.
        y: targets ``(N, ...)`` (class ids or one-hot rows).
        batch_size: examples per batch; the last batch may be smaller.
        shuffle: draw a new order every epoch; otherwise keep the data order (and yield
            views, no copy).
        rng: Generator, int seed, or None (spawned from the global generator).
        augment: ``augment(x_batch, rng) -> x_batch`` applied to every batch, e.g.
            ``cifar_augment``.
        drop_last: skip the last batch when it is smaller than ``batch_size``.

    Example:
        >>> batches = BatchIterator(x, y, batch_size=64, rng=0, augment=cifar_augment)
        >>> for epoch in range(10):
        ...     for xb, yb in batches:
        ...         model.train_on_batch(xb, yb)
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int = 32,
        shuffle: bool = True,
        rng: np.random.Generator | int | None = None,
        augment: Augment | None = None,
        drop_last: bool = False,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(
                f"BatchIterator: x and y must hold as many examples, got {len(x)} "
                f"and {len(y)}"
            )
        if isinstance(batch_size, bool) or not isinstance(
            batch_size, (int, np.integer)
        ):
            raise TypeError(
                f"BatchIterator: batch_size must be an int, got {batch_size!r}"
            )
        if batch_size < 1:
            raise ValueError(
                f"BatchIterator: expected batch_size >= 1, got {batch_size}"
            )
        if augment is not None and not callable(augment):
            raise TypeError(f"BatchIterator: augment must be callable, got {augment!r}")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.rng = as_rng(rng)
        self.augment = augment
        self.drop_last = drop_last

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n, size = len(self.x), self.batch_size
        order = self.rng.permutation(n) if self.shuffle else None
        for start in range(0, size * len(self), size):
            stop = min(start + size, n)
            if order is None:
                xb, yb = self.x[start:stop], self.y[start:stop]
            else:
                idx = order[start:stop]
                xb, yb = self.x[idx], self.y[idx]
            if self.augment is not None:
                xb = self.augment(xb, self.rng)
            yield xb, yb

    @property
    def state(self) -> dict[str, Any]:
        """The generator's ``bit_generator.state``, to save with a checkpoint."""
        return self.rng.bit_generator.state

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        self.rng.bit_generator.state = value


def train_val_split(
    x: np.ndarray,
    y: np.ndarray,
    fraction: float = 0.1,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out a random ``fraction`` of the examples for validation.

    Returns:
        ``(x_train, y_train, x_val, y_val)``; ``round(N * fraction)`` validation
        examples, at least one in each part.
    """
    if len(x) != len(y):
        raise ValueError(
            "train_val_split: x and y must hold as many examples, "
            f"got {len(x)} and {len(y)}"
        )
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"train_val_split: expected 0 < fraction < 1, got {fraction}")
    n = len(x)
    n_val = round(n * fraction)
    if not 0 < n_val < n:
        raise ValueError(
            f"train_val_split: fraction {fraction} of {n} examples leaves an empty part"
        )
    order = as_rng(rng).permutation(n)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return x[train], y[train], x[val], y[val]
