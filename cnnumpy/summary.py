"""``model.summary()``: the notes' count of parameters, neurons and memory per example.

Seed 003 counts, for each layer, its trainable parameters (weights and biases) and its
"neurons", the values of its output for one example. Activations, Flatten, Dropout and
BatchNorm act on the neurons of the layer before them and add none
(``Layer.adds_neurons``). Memory is given in MB of 10^6 bytes at the model's dtype (4
bytes each in float32), as the notes give VGG16's ~60 MB of neurons and ~552 MB of
parameters.
"""

from __future__ import annotations

import numpy as np


def layer_rows(model) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(layer repr, output shape, parameters, neurons) for every layer.

    The model must be built.
    """
    if model.input_shape is None:
        raise ValueError(
            "summary: the model is not built; pass input_shape= to Sequential"
        )
    rows, shape = [], model.input_shape
    for layer in model.layers:
        shape = layer.output_shape(shape)
        neurons = int(np.prod(shape)) if layer.adds_neurons else 0
        rows.append((repr(layer), shape, layer.count_params(), neurons))
    return rows


def totals(model) -> dict[str, float]:
    """Total parameters and neurons, and memory per example in MB at the model dtype."""
    rows = layer_rows(model)
    params = sum(r[2] for r in rows)
    neurons = sum(r[3] for r in rows)
    itemsize = np.dtype(model.dtype).itemsize
    return {
        "params": params,
        "neurons": neurons,
        "params_mb": params * itemsize / 1e6,
        "activations_mb": neurons * itemsize / 1e6,
        "forward_mb": (params + neurons) * itemsize / 1e6,
    }


def summary_text(model) -> str:
    rows = layer_rows(model)
    header = ("Layer", "Output shape", "Params", "Neurons")
    body = [
        (name, "(" + ", ".join(map(str, shape)) + ")", f"{p:,}", f"{n:,}" if n else "-")
        for name, shape, p, n in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(4)]

    def fmt(row):
        return "  ".join(
            [
                row[0].ljust(widths[0]),
                row[1].ljust(widths[1]),
                row[2].rjust(widths[2]),
                row[3].rjust(widths[3]),
            ]
        )

    rule = "-" * len(fmt(header))
    t = totals(model)
    title = (
        f"Model: {model.name or 'Sequential'}   input ("
        + ", ".join(map(str, model.input_shape))
        + f")   dtype {np.dtype(model.dtype).name}"
    )
    lines = [
        title,
        rule,
        fmt(header),
        rule,
        *map(fmt, body),
        rule,
        f"Total parameters: {t['params']:,}  ({t['params_mb']:.1f} MB)",
        (
            f"Total neurons:    {t['neurons']:,}  "
            f"({t['activations_mb']:.1f} MB per example)"
        ),
        f"Forward pass of one example: ~{t['forward_mb']:.1f} MB",
    ]
    return "\n".join(lines)
