"""A graph model's config (``Model.get_config``), checked before anything is built.

A model file describes its graph as data: the inputs' shapes, the layers, where each
reads from (value ids, as in :mod:`cnnumpy.graph`) and the outputs. These checks run
before a layer is built, so that a corrupted or hostile file is refused with a clear
error rather than half-built.
"""

from __future__ import annotations


def _is_size_list(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(type(d) is int and d >= 1 for d in value)
    )


def _count(value) -> str:
    return f"{len(value)} entries" if isinstance(value, list) else repr(value)


def check_config(config) -> tuple[list[dict], list[list[int]], list[int]]:
    """``(inputs, sources, outputs)`` of a graph model's config (``Model.get_config``),
    checked: every input a positive shape, every layer reading only inputs or layers
    before it, every output an existing value. A ValueError says what is wrong."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        got = type(config).__name__ if not isinstance(config, dict) else sorted(config)
        raise ValueError(f"Model.from_config: expected a dict with 'layers', got {got}")
    inputs, sources, outputs = (config.get(k) for k in ("inputs", "sources", "outputs"))
    if not isinstance(inputs, list) or not inputs:
        raise ValueError(
            f"Model.from_config: 'inputs' must be a non-empty list, got {inputs!r}"
        )
    for k, entry in enumerate(inputs):
        if not isinstance(entry, dict) or not _is_size_list(entry.get("shape")):
            raise ValueError(
                f"Model.from_config: inputs[{k}] must have a 'shape' of sizes >= 1, "
                f"got {entry!r}"
            )
    n_in, n_layers = len(inputs), len(config["layers"])
    if not isinstance(sources, list) or len(sources) != n_layers:
        raise ValueError(
            f"Model.from_config: 'sources' must list where each of the {n_layers} "
            f"layers reads from, got {_count(sources)}"
        )
    for j, srcs in enumerate(sources):
        ok = isinstance(srcs, list) and len(srcs) > 0
        if not ok or not all(type(s) is int and 0 <= s < n_in + j for s in srcs):
            raise ValueError(
                f"Model.from_config: layer {j} must read from inputs or earlier "
                f"layers (values 0 to {n_in + j - 1}), got {srcs!r}"
            )
    total = n_in + n_layers
    if not isinstance(outputs, list) or not outputs:
        raise ValueError(
            f"Model.from_config: 'outputs' must be a non-empty list, got {outputs!r}"
        )
    if not all(type(k) is int and 0 <= k < total for k in outputs):
        raise ValueError(
            f"Model.from_config: outputs must be values 0 to {total - 1}, "
            f"got {outputs!r}"
        )
    return inputs, [list(s) for s in sources], list(outputs)


def check_arities(layers, sources) -> None:
    """A merge layer reads two values or more, any other layer exactly one."""
    for j, (layer, srcs) in enumerate(zip(layers, sources, strict=True)):
        many = getattr(layer, "multiple_inputs", False)
        if (many and len(srcs) < 2) or (not many and len(srcs) != 1):
            expected = "two or more values" if many else "one value"
            raise ValueError(
                f"Model.from_config: layer {j} ({layer!r}) reads {expected}, "
                f"got {srcs!r}"
            )
