"""PyTorch interoperability without importing torch: state dicts of NumPy arrays.

The convention is an ``nn.Sequential`` twin with one module per cnnumpy layer, in the
same order (activations, pooling and Flatten included), so that cnnumpy layer ``i`` is
torch module ``i``:

| cnnumpy               | torch state_dict entries                                     |
|-----------------------|--------------------------------------------------------------|
| Dense W (in, out), b  | ``i.weight`` (out, in) = W.T, ``i.bias``                     |
| Conv2D / Conv1D W, b  | ``i.weight`` (same layout (F, C, KH, KW) / (F, C, K)),       |
|                       | ``i.bias``                                                   |
| BatchNorm gamma, beta | ``i.weight``, ``i.bias``, ``i.running_mean``,                |
|                       | ``i.running_var``, ``i.num_batches_tracked``                 |

torch tensors may be passed to ``from_torch_state_dict`` directly (they are converted
with ``.detach().cpu().numpy()``, found by duck typing), or as NumPy arrays. Either must
hold finite real floats; every entry is checked before the first one is written.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# cnnumpy key -> (torch suffix, transpose?) per layer class
_MAPPING = {
    "Dense": {"W": ("weight", True), "b": ("bias", False)},
    "Conv2D": {"W": ("weight", False), "b": ("bias", False)},
    "Conv1D": {"W": ("weight", False), "b": ("bias", False)},
    "BatchNorm": {
        "gamma": ("weight", False),
        "beta": ("bias", False),
        "running_mean": ("running_mean", False),
        "running_var": ("running_var", False),
    },
}


def _entries(model, prefix: str):
    for i, layer in enumerate(model.layers):
        mapping = _MAPPING.get(type(layer).__name__)
        if mapping is None:
            if layer.params:
                raise ValueError(f"torch interop: no mapping for {layer!r} (layer {i})")
            continue
        store = {**layer.params, **layer.state}
        for key, (suffix, transpose) in mapping.items():
            if key in store:
                yield layer, key, store, f"{prefix}{i}.{suffix}", transpose


def to_torch_state_dict(model, prefix: str = "") -> dict[str, np.ndarray]:
    """NumPy arrays keyed like the state_dict of the model's ``nn.Sequential`` twin.

    Load them in PyTorch with ``twin.load_state_dict({k: torch.from_numpy(v) ...})``.
    """
    sd = {}
    for layer, key, store, name, transpose in _entries(model, prefix):
        value = store[key]
        sd[name] = np.ascontiguousarray(value.T if transpose else value).copy()
        if type(layer).__name__ == "BatchNorm":
            sd[f"{name.rsplit('.', 1)[0]}.num_batches_tracked"] = np.array(
                0, dtype=np.int64
            )
    return sd


def _as_numpy(value, name: str) -> np.ndarray:
    """The entry as a NumPy array of real floats, or a TypeError naming it."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # torch, not imported
        try:
            value = value.detach().cpu().numpy()
        except (TypeError, RuntimeError):  # e.g. bfloat16, which NumPy lacks
            raise TypeError(
                f"from_torch_state_dict: {name}: expected a float array (NumPy or "
                f"torch), got a tensor of dtype {value.dtype}, which NumPy cannot hold"
            ) from None
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
        return value
    if value is None:
        got = "None"
    elif isinstance(value, np.ndarray):
        got = f"an array of dtype {value.dtype}"
    else:
        got = type(value).__name__
    raise TypeError(
        f"from_torch_state_dict: {name}: expected a float array (NumPy or torch), "
        f"got {got}"
    )


def _checked(value, name: str, like: np.ndarray, transpose: bool) -> np.ndarray:
    """``state_dict[name]`` as it will be written over ``like``: shape, dtype, finite.

    Values are cast to ``like``'s dtype first, so that a float64 beyond float32's range
    is caught here and not turned into inf by the copy.
    """
    value = _as_numpy(value, name)
    value = value.T if transpose else value
    if value.shape != like.shape:
        raise ValueError(
            f"from_torch_state_dict: {name} has shape {value.shape}, "
            f"expected {like.shape}{' after transposing' if transpose else ''}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        cast = value.astype(like.dtype)
    bad = int(np.count_nonzero(~np.isfinite(cast)))
    if bad:
        raise ValueError(
            f"from_torch_state_dict: {name} holds {bad} non-finite values (NaN, inf "
            f"or beyond {like.dtype}); expected finite {like.dtype} values"
        )
    return cast


def from_torch_state_dict(
    model, state_dict: dict, prefix: str = "", strict: bool = True
) -> None:
    """Copy a torch ``nn.Sequential`` twin's state_dict into ``model`` (all-or-nothing).

    Every entry is checked before anything is written: it must be a NumPy or torch
    array of real floats (not None, int, bool, complex or object), of the expected
    shape, and finite once cast to the model's dtype.

    Raises:
        TypeError: ``state_dict`` is not a dict, or an entry is not a float array.
        ValueError: a missing, mis-shaped or non-finite entry (or, with ``strict``, an
            unused one).
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "from_torch_state_dict: expected a dict of arrays (a state_dict), "
            f"got {type(state_dict).__name__}"
        )
    updates, used = [], set()
    for _layer, key, store, name, transpose in _entries(model, prefix):
        if name not in state_dict:
            raise ValueError(f"from_torch_state_dict: missing entry {name!r}")
        value = _checked(state_dict[name], name, store[key], transpose)
        updates.append((store, key, value))
        used.add(name)
    ignored = {k for k in state_dict if k.endswith("num_batches_tracked")}
    unused = sorted(set(state_dict) - used - ignored)
    if strict and unused:
        raise ValueError(f"from_torch_state_dict: unexpected entries {unused[:5]}")
    for store, key, value in updates:
        store[key][...] = value
