"""``model.summary()``: the notes' count of parameters, neurons and memory per example,
and an estimate of what a training step keeps for the backward pass.

Seed 003 counts, for each layer, its trainable parameters (weights and biases) and its
"neurons", the values of its output for one example. Activations, Flatten, Dropout and
BatchNorm act on the neurons of the layer before them and add none
(``Layer.adds_neurons``). Memory is given in MB of 10^6 bytes at the model's dtype (4
bytes each in float32), as the notes give VGG16's ~60 MB of neurons and ~552 MB of
parameters.

Training needs more than the forward pass: every layer keeps, until its backward pass,
what that pass reads (its cache). :func:`cache_bytes` estimates it for a batch of ``N``
examples from the book's code (:mod:`cnnumpy.textbook`), layer by layer:

- Conv1D / Conv2D: the columns ``[x_cols; 1]``, ``(C*KH*KW + 1) x N*H_out*W_out``
  values (no row of ones without a bias);
- Dense: its input, ``N * features`` values (``N * T * features`` on sequences);
- ReLU, LeakyReLU: the mask ``x > 0``, one byte per value; Sigmoid, Tanh, Softmax:
  their output; ELU the mask and its output; Arctan its input;
- MaxPool: the mask of each window's maximum, ``KH*KW`` bytes per output value;
  AvgPool, GlobalAvgPool2D and Flatten keep shapes only;
- Dropout: the scaled mask, one value per input (nothing at rate 0);
- BatchNorm: the normalised input ``x_hat`` plus ``1/std``, the mean and the variance
  (``C`` values each); LocalResponseNorm: ``a``, ``s`` and ``s^-beta``;
- Embedding: the ids, ``N * T`` int64;
- Add and Concatenate: shapes only; Multiply: every input (each gradient needs the
  others);
- SimpleRNN: x, h0 and every h_t, ``N (T F + U + T U)``; LSTM: x, h0, c0, every h_t,
  c_t, tanh(c_t) and the four gates, ``N (T F + 2U + 7 T U)``; GRU: x, h0, every h_t,
  the three gates and ``v_n``, ``N (T F + U + 5 T U)``.

The weights a cache refers to are the parameters and are not counted again; an array
two caches share (a Tanh's output is the next Dense's input) counts in both. A layer
type not listed (a user's own) is unknown (None) and left out of the total. This is an
estimate of what the book keeps, exact for it (a test compares it with the arrays the
caches hold after a training step), not a measurement of the engine: its kernels keep
other arrays (a fast convolution the padded input, about KH*KW times smaller than the
columns; max-pooling over tiles its input and output; the executor runs a max-pool
before the ReLU it follows, whose mask then shrinks), from about a fifth of the
estimate (``seed_cifar``, ``lenet5``) to about as much (``melpy_mnist``), measured
in float64 on batches of 8.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.layers import (
    ELU,
    GRU,
    LSTM,
    Add,
    Arctan,
    AvgPool1D,
    AvgPool2D,
    BatchNorm,
    Concatenate,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    LocalResponseNorm,
    MaxPool1D,
    MaxPool2D,
    Multiply,
    ReLU,
    Sigmoid,
    SimpleRNN,
    Softmax,
    Tanh,
)

TRAINING_BATCH = 32  # Sequential.fit's default batch size
BOOL, IDS = 1, np.dtype(np.int64).itemsize  # bytes of a mask entry and of an id


def layer_rows(model) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(layer repr, output shape, parameters, neurons) for every layer.

    The model must be built.
    """
    if model.input_shape is None:
        raise ValueError(
            "summary: the model is not built; pass input_shape= to Sequential"
        )
    rows = []
    shapes = model.value_shapes()[model.n_inputs :]
    for layer, shape in zip(model.layers, shapes, strict=True):
        neurons = int(np.prod(shape)) if layer.adds_neurons else 0
        rows.append((repr(layer), shape, layer.count_params(), neurons))
    return rows


def is_chain(model) -> bool:
    """Whether each layer of ``model`` reads the one before (a Sequential's graph)."""
    n = len(model.layers)
    chain = all(srcs == [j] for j, srcs in enumerate(model.sources))
    return model.n_inputs == 1 and chain and list(model.output_ids) == [n]


def connections(model) -> list[str]:
    """For each layer, what it reads: ``input`` (``input k`` of several), or the
    row numbers ``#j`` of the layers whose outputs it reads."""
    n = model.n_inputs

    def name(value: int) -> str:
        if value >= n:
            return f"#{value - n}"
        return "input" if n == 1 else f"input {value}"

    return [", ".join(map(name, srcs)) for srcs in model.sources]


# -- what each layer's backward keeps --------------------------------------------------
def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _columns(layer, shape_in, shape_out, n, item):
    rows = shape_in[0] * _size(layer.kernel_size) + int(layer.use_bias)
    return rows * n * _size(shape_out[1:]) * item


def _window_mask(layer, shape_in, shape_out, n, item):
    return n * _size(shape_out) * _size(layer.pool_size) * BOOL


def _recurrent(layer, shape_in, shape_out, n, item):
    T, F = shape_in
    U = layer.units
    states, per_step = {SimpleRNN: (1, 1), LSTM: (2, 7), GRU: (1, 5)}[type(layer)]
    return n * (T * F + states * U + per_step * T * U) * item


_CACHES = {  # (layer, shape in, shape out, N, itemsize) -> bytes; see the module
    Conv1D: _columns,
    Conv2D: _columns,
    Dense: lambda layer, s_in, s_out, n, item: n * _size(s_in) * item,
    ReLU: lambda layer, s_in, s_out, n, item: n * _size(s_in) * BOOL,
    LeakyReLU: lambda layer, s_in, s_out, n, item: n * _size(s_in) * BOOL,
    Sigmoid: lambda layer, s_in, s_out, n, item: n * _size(s_out) * item,
    Tanh: lambda layer, s_in, s_out, n, item: n * _size(s_out) * item,
    Softmax: lambda layer, s_in, s_out, n, item: n * _size(s_out) * item,
    ELU: lambda layer, s_in, s_out, n, item: n * _size(s_out) * (BOOL + item),
    Arctan: lambda layer, s_in, s_out, n, item: n * _size(s_in) * item,
    MaxPool1D: _window_mask,
    MaxPool2D: _window_mask,
    AvgPool1D: lambda *args: 0,
    AvgPool2D: lambda *args: 0,
    GlobalAvgPool2D: lambda *args: 0,
    Flatten: lambda *args: 0,
    Dropout: lambda layer, s_in, s_out, n, item: (
        n * _size(s_in) * item if layer.rate > 0 else 0
    ),
    BatchNorm: lambda layer, s_in, s_out, n, item: (
        (n * _size(s_in) + 3 * s_in[0]) * item
    ),
    LocalResponseNorm: lambda layer, s_in, s_out, n, item: 3 * n * _size(s_in) * item,
    Embedding: lambda layer, s_in, s_out, n, item: n * _size(s_in) * IDS,
    SimpleRNN: _recurrent,
    LSTM: _recurrent,
    GRU: _recurrent,
    Add: lambda *args: 0,  # the inputs' shapes only
    Concatenate: lambda *args: 0,  # the sizes only
    Multiply: lambda layer, s_in, s_out, n, item: (  # every input
        n * sum(_size(s) for s in s_in) * item
    ),
}


def cache_bytes(model, batch_size: int = TRAINING_BATCH) -> list[int | None]:
    """Bytes each layer keeps for its backward pass in a training step on
    ``batch_size`` examples, by the book (see the module); None for a layer type
    whose cache is unknown. An estimate: the engine's kernels keep a little more or
    less.

    Raises:
        ValueError: the model is not built, or ``batch_size`` is not a positive int.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(
            f"summary: batch_size must be a positive int, got {batch_size!r}"
        )
    rows = layer_rows(model)  # raises if not built
    item = np.dtype(model.dtype).itemsize
    shapes_in = model.layer_input_shapes()
    found = []
    for layer, shape_in, row in zip(model.layers, shapes_in, rows, strict=True):
        estimate = _CACHES.get(type(layer))  # exact type: a subclass may keep more
        found.append(
            None
            if estimate is None
            else int(estimate(layer, shape_in, row[1], int(batch_size), item))
        )
    return found


def totals(model, batch_size: int = TRAINING_BATCH) -> dict[str, float]:
    """Total parameters and neurons, memory per example in MB at the model dtype, and
    the estimated bytes kept for backward in a training step on ``batch_size``
    examples (``backward_bytes``, ``backward_mb``; unknown layers left out)."""
    rows = layer_rows(model)
    params = sum(r[2] for r in rows)
    neurons = sum(r[3] for r in rows)
    itemsize = np.dtype(model.dtype).itemsize
    kept = sum(b for b in cache_bytes(model, batch_size) if b is not None)
    return {
        "params": params,
        "neurons": neurons,
        "params_mb": params * itemsize / 1e6,
        "activations_mb": neurons * itemsize / 1e6,
        "forward_mb": (params + neurons) * itemsize / 1e6,
        "batch_size": int(batch_size),
        "backward_bytes": kept,
        "backward_mb": kept / 1e6,
    }


def _bytes(n: int | None) -> str:
    """``1.5 MB``, ``820 kB``, ``96 B`` (powers of ten, as the notes' MB)."""
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B" if n else "-"


def summary_text(model, batch_size: int = TRAINING_BATCH) -> str:
    """The table ``model.summary()`` prints; the backward column and total are for a
    training step on ``batch_size`` examples. A graph model's table numbers its rows
    and says what each layer reads (:func:`connections`)."""
    kept = cache_bytes(model, batch_size)
    header = ["Layer", "Output shape", "Params", "Neurons", f"Cache (N={batch_size})"]
    body = [
        [
            name,
            "(" + ", ".join(map(str, shape)) + ")",
            f"{p:,}",
            f"{n:,}" if n else "-",
            _bytes(k),
        ]
        for (name, shape, p, n), k in zip(layer_rows(model), kept, strict=True)
    ]
    graph = not is_chain(model)
    if graph:
        header = ["#", *header, "Reads"]
        body = [
            [str(j), *row, reads]
            for j, (row, reads) in enumerate(zip(body, connections(model), strict=True))
        ]
    left = 3 if graph else 2  # columns aligned left: (#,) layer, shape
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def fmt(row):
        cells = []
        for i, (cell, width) in enumerate(zip(row, widths, strict=True)):
            aligned_left = i < left or (graph and i == len(row) - 1)
            cells.append(cell.ljust(width) if aligned_left else cell.rjust(width))
        return "  ".join(cells).rstrip()

    rule = "-" * len(fmt(header))
    shapes = [model.input_shape] if model.n_inputs == 1 else model.input_shapes
    inputs = " ".join("(" + ", ".join(map(str, s)) + ")" for s in shapes)
    title = (
        f"Model: {model.name or type(model).__name__}   input {inputs}   "
        f"dtype {np.dtype(model.dtype).name}"
    )
    table = [title, rule, fmt(header), rule, *map(fmt, body), rule]
    return "\n".join(table + _total_lines(model, batch_size, None in kept))


def _total_lines(model, batch_size: int, unknown: bool) -> list[str]:
    t = totals(model, batch_size)
    left_out = " (layers marked ? not counted)" if unknown else ""
    return [
        f"Total parameters: {t['params']:,}  ({t['params_mb']:.1f} MB)",
        (
            f"Total neurons:    {t['neurons']:,}  "
            f"({t['activations_mb']:.1f} MB per example)"
        ),
        f"Forward pass of one example: ~{t['forward_mb']:.1f} MB",
        (
            f"Training step on {batch_size} examples: ~{t['backward_mb']:.1f} MB kept "
            f"for the backward pass (estimate of the book's caches){left_out}"
        ),
    ]
