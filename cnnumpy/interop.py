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
with ``.detach().cpu().numpy()``, found by duck typing), or as NumPy arrays.
"""

from __future__ import annotations

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


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def from_torch_state_dict(
    model, state_dict: dict, prefix: str = "", strict: bool = True
) -> None:
    """Copy a torch ``nn.Sequential`` twin's state_dict into ``model`` (all-or-nothing).

    Raises:
        ValueError: a missing or mis-shaped entry (or, with ``strict``, an unused one).
    """
    updates, used = [], set()
    for _layer, key, store, name, transpose in _entries(model, prefix):
        if name not in state_dict:
            raise ValueError(f"from_torch_state_dict: missing entry {name!r}")
        value = _as_numpy(state_dict[name])
        value = value.T if transpose else value
        if value.shape != store[key].shape:
            raise ValueError(
                f"from_torch_state_dict: {name} has shape {value.shape}, "
                f"expected {store[key].shape}"
                f"{' after transposing' if transpose else ''}"
            )
        updates.append((store, key, value))
        used.add(name)
    ignored = {k for k in state_dict if k.endswith("num_batches_tracked")}
    unused = sorted(set(state_dict) - used - ignored)
    if strict and unused:
        raise ValueError(f"from_torch_state_dict: unexpected entries {unused[:5]}")
    for store, key, value in updates:
        store[key][...] = value
