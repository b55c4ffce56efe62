"""Checks of user data at the model boundary (fit, evaluate, predict, train_on_batch).

Each error names the method and the argument, what was expected and what was received.
Values must be finite and, given the model's ``dtype``, representable in it: 1e300 is
a float64 but becomes inf in a float32 model, and training then yields NaN.
"""

from __future__ import annotations

import numpy as np


def check_inputs(
    x,
    input_shape: tuple[int, ...] | None,
    where: str,
    arg: str = "x",
    dtype: np.dtype | None = None,
) -> np.ndarray:
    """Return ``x`` as an array after checking type, dtype, rank, shape and values.

    Integer images (uint8...) are accepted as they are and cast batch by batch later.
    ``dtype`` is the model's: float values must fit in it (``|x| <= finfo.max``).
    """
    x = _as_array(x, where, arg)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: {arg} must be a numpy array, got {type(x).__name__}")
    if x.dtype == object or not (
        np.issubdtype(x.dtype, np.floating)
        or np.issubdtype(x.dtype, np.integer)
        or x.dtype == np.bool_
    ):
        raise TypeError(
            f"{where}: {arg} must hold numbers (float or integer), got dtype {x.dtype}"
        )
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(
            f"{where}: {arg} is empty (shape {x.shape}); expected at least one example"
        )
    if input_shape is not None:
        expected = (len(x), *input_shape)
        if x.shape != expected:
            raise ValueError(
                f"{where}: {arg} must have shape "
                f"(N, {', '.join(map(str, input_shape))}) "
                f"for this model, got {x.shape}"
            )
    check_values(x, where, arg, dtype)
    return x


def _as_array(x, where: str, arg: str):
    """A list or tuple as an array; other values are returned for the type check."""
    if not isinstance(x, (list, tuple)):
        return x
    try:
        return np.asarray(x)
    except ValueError as exc:
        if "inhomogeneous" not in str(exc):
            raise ValueError(f"{where}: {arg} cannot become an array: {exc}") from None
        raise ValueError(
            f"{where}: {arg} must be a rectangular array of numbers, got a "
            f"{type(x).__name__} whose rows differ in length"
        ) from None


def check_values(a: np.ndarray, where: str, arg: str, dtype=None) -> None:
    """Float values must be finite and, for a model of ``dtype``, within its range.

    The common case costs a min and a max (no temporary array; NaN propagates into
    both); the values are counted only to explain a refusal.
    """
    if not np.issubdtype(a.dtype, np.floating) or a.size == 0:
        return
    limit = np.inf
    if dtype is not None and np.issubdtype(dtype, np.floating):
        limit = min(float(np.finfo(dtype).max), float(np.finfo(a.dtype).max))
    lo, hi = float(a.min()), float(a.max())
    if np.isfinite(lo) and np.isfinite(hi) and -limit <= lo and hi <= limit:
        return
    finite = np.isfinite(a)
    too_large = np.flatnonzero(finite & (np.abs(a) > limit))
    problems = []
    n_bad = int(a.size - np.count_nonzero(finite))
    if n_bad:
        problems.append(f"{n_bad} NaN or infinite value(s)")
    if len(too_large):
        problems.append(
            f"{len(too_large)} value(s) too large for this {np.dtype(dtype)} model "
            f"(|{arg}| > {limit:.2g}), e.g. {a.flat[too_large[0]]:g}"
        )
    raise ValueError(f"{where}: {arg} contains {' and '.join(problems)}")


def check_targets(
    y,
    n: int,
    output_shape: tuple[int, ...],
    loss_name: str,
    where: str,
    arg: str = "y",
    dtype: np.dtype | None = None,
    ignore_index: int | None = None,
) -> np.ndarray:
    """Check labels or regression targets.

    They must match the number of examples and the model output; float values must be
    finite and fit in the model's ``dtype``. For cross-entropy on outputs ``(K,)``
    the labels are class ids ``(N,)`` or one-hot ``(N, K)``; on sequence outputs
    ``(T, K)``, class ids ``(N, T)`` or one-hot ``(N, T, K)``. Ids equal to
    ``ignore_index`` (the loss's padding id) may lie outside ``[0, K)``.
    """
    y = _as_array(y, where, arg)
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{where}: {arg} must be a numpy array, got {type(y).__name__}")
    if y.dtype == object or not (
        np.issubdtype(y.dtype, np.integer)
        or np.issubdtype(y.dtype, np.floating)
        or y.dtype == np.bool_
    ):
        raise TypeError(f"{where}: {arg} must hold real numbers, got dtype {y.dtype}")
    if y.ndim == 0 or len(y) != n:
        got = "a scalar" if y.ndim == 0 else f"{len(y)}"
        raise ValueError(
            f"{where}: {arg} must have one entry per example ({n}), got {got}"
        )
    check_values(y, where, arg, dtype)
    if loss_name == "cross_entropy":
        _check_class_targets(y, tuple(output_shape), ignore_index, where, arg)
    elif loss_name == "mse" and y.shape[1:] != tuple(output_shape):
        if not (y.ndim == 1 and tuple(output_shape) == (1,)):
            raise ValueError(
                f"{where}: {arg} must have shape "
                f"(N, {', '.join(map(str, output_shape))}) "
                f"like the model output, got {y.shape}"
            )
    return y


def _check_class_targets(
    y: np.ndarray, output_shape: tuple, ignore_index, where: str, arg: str
) -> None:
    """Class ids or one-hot rows for outputs ``(K,)`` or, per step, ``(T, K)``."""
    if len(output_shape) == 2:  # a class per step of a sequence
        T, num_classes = output_shape
        ids_shape, rows_shape = f"(N, {T})", f"(N, {T}, {num_classes})"
        steps = (T,)
    else:
        num_classes = int(np.prod(output_shape))
        ids_shape, rows_shape, steps = "(N,)", f"(N, {num_classes})", ()
    if y.shape[1:] == steps:
        _check_class_ids(y, num_classes, where, arg, ignore_index)
    elif y.shape[1:] != (*steps, num_classes):
        raise ValueError(
            f"{where}: {arg} must be class ids {ids_shape} or one-hot {rows_shape}, "
            f"got shape {y.shape}"
        )


def _check_class_ids(
    y: np.ndarray, num_classes: int, where: str, arg: str, ignore_index=None
) -> None:
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(y == np.round(y)):
            raise ValueError(
                f"{where}: {arg} class ids must be whole numbers, got {y[:5]}..."
            )
    if ignore_index is not None:
        y = y[y != ignore_index]  # padding: any value, it is not a class
        if y.size == 0:
            return
    lo, hi = y.min(), y.max()
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"{where}: {arg} class ids must lie in [0, {num_classes - 1}] "
            f"for a model with "
            f"{num_classes} outputs, got values from {lo} to {hi}"
        )


class Arrays:
    """Several arrays with one batch axis, indexed together: the inputs of a model of
    several inputs, or the targets of one of several outputs. ``len(a)`` is the
    number of examples, ``a[idx]`` takes the same examples of every array, and
    ``a.arrays[k]`` is the ``k``-th array."""

    def __init__(self, arrays) -> None:
        self.arrays = list(arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index) -> Arrays:
        return Arrays([a[index] for a in self.arrays])

    def __repr__(self) -> str:
        return f"Arrays({[a.shape for a in self.arrays]})"


def part(data, k: int):
    """Array ``k`` of :class:`Arrays` or of a list of arrays."""
    return data.arrays[k] if isinstance(data, Arrays) else data[k]


def takes_ids(model, k: int = 0) -> bool:
    """Whether ``model``'s input ``k`` holds integer ids kept as they are (an
    Embedding reads it, a layer class declaring ``input_dtype = "int"``) rather than
    values."""
    flags = getattr(model, "input_takes_ids", None)
    if flags is not None:
        return bool(flags[k])
    layers = getattr(model, "layers", None)
    return bool(layers) and layers[0].input_dtype == "int"


def cast_inputs(model, x):
    """A batch as ``model`` reads it: the model's dtype, or unchanged when an
    Embedding reads it as integer ids (the one rule every cast of model inputs
    follows: ``forward``, ``fit``, ``train_on_batch``, ``evaluate``, ``predict`` and
    the executor). A float batch then reaches the Embedding, which refuses it.
    :class:`Arrays` (several inputs) are cast array by array."""
    if isinstance(x, Arrays):
        return Arrays([_cast(model, a, k) for k, a in enumerate(x.arrays)])
    return _cast(model, x, 0)


def _cast(model, x: np.ndarray, k: int) -> np.ndarray:
    if takes_ids(model, k) or x.dtype == model.dtype:
        return x
    return x.astype(model.dtype)


def check_model_inputs(model, x, where: str, arg: str = "x"):
    """:func:`check_inputs` against ``model``; an input that an Embedding reads must
    also be integers. A model of several inputs takes a list (or :class:`Arrays`)
    of one array per input, all with the same number of examples."""
    n_inputs = getattr(model, "n_inputs", 1)
    if n_inputs == 1:
        return _check_input(model, x, model.input_shape, 0, where, arg)
    arrays = x.arrays if isinstance(x, Arrays) else x
    if not isinstance(arrays, (list, tuple)) or len(arrays) != n_inputs:
        got = len(arrays) if isinstance(arrays, (list, tuple)) else type(x).__name__
        raise TypeError(
            f"{where}: {arg} must be a list of {n_inputs} arrays, one per model "
            f"input, got {got}"
        )
    checked = [
        _check_input(model, a, shape, k, where, f"{arg}[{k}]")
        for k, (a, shape) in enumerate(zip(arrays, model.input_shapes, strict=True))
    ]
    sizes = [len(a) for a in checked]
    if len(set(sizes)) != 1:
        raise ValueError(
            f"{where}: the arrays of {arg} must have one number of examples, got "
            f"{sizes}"
        )
    return Arrays(checked)


def _check_input(model, x, shape, k: int, where: str, arg: str) -> np.ndarray:
    x = check_inputs(x, shape, where, arg, dtype=model.dtype)
    if takes_ids(model, k) and not np.issubdtype(x.dtype, np.integer):
        readers = [
            layer
            for layer, srcs in zip(model.layers, model.sources, strict=True)
            if k in srcs
        ]
        where_read = f"the first layer {readers[0]!r}" if readers else "the model"
        raise TypeError(
            f"{where}: {arg} must be integer ids for {where_read}, got dtype {x.dtype}"
        )
    return x


def check_batch_size(batch_size, where: str) -> None:
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(
            f"{where}: batch_size must be a positive integer, got {batch_size!r}"
        )


def check_data(model, x, y, where: str) -> tuple:
    """``(x, y)`` checked against ``model`` as ``fit``, ``evaluate`` and
    ``train_on_batch`` take them (``y`` may be None), the model built from ``x``'s
    shape if it was not; a clear error naming ``where`` otherwise. Bool labels become
    0/1 integers, what every loss reads them as (``int(True) == 1``): cross-entropy
    would otherwise refuse bool class ids at the first batch."""
    x = check_model_inputs(model, x, where)
    if model.input_shape is None:
        model.build(x.shape[1:])
    if y is None:
        return x, y
    if getattr(model, "multiple_outputs", False):
        return x, _check_several_targets(model, y, len(x), where)
    return x, _check_one_target(model, model.loss, y, len(x), model.output_shape, where)


def _check_one_target(model, loss, y, n: int, output_shape, where: str, arg="y"):
    y = check_targets(
        _bools_as_ints(y),  # first, so that errors show 0 and 1
        n,
        output_shape,
        loss.name,
        where,
        arg,
        dtype=model.dtype,
        ignore_index=getattr(loss, "ignore_index", None),
    )
    return _bools_as_ints(y)  # a list of bools is an array only now


def _check_several_targets(model, y, n: int, where: str) -> Arrays:
    """One target array per output, each checked against its output and loss."""
    shapes = model.output_shape
    arrays = y.arrays if isinstance(y, Arrays) else y
    if not isinstance(arrays, (list, tuple)) or len(arrays) != len(shapes):
        got = len(arrays) if isinstance(arrays, (list, tuple)) else type(y).__name__
        raise TypeError(
            f"{where}: y must be a list of {len(shapes)} target arrays, one per "
            f"model output, got {got}"
        )
    losses = model.loss.losses
    return Arrays(
        _check_one_target(model, loss, t, n, shape, where, f"y[{k}]")
        for k, (loss, t, shape) in enumerate(zip(losses, arrays, shapes, strict=True))
    )


def _bools_as_ints(y):
    """Bool labels as int64 0/1; anything else unchanged."""
    if isinstance(y, np.ndarray) and y.dtype == np.bool_:
        return y.astype(np.int64)
    return y
