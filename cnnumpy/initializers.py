"""Weight initialisers.

Each initialiser is a function ``init(shape, rng, dtype) -> np.ndarray``. The fans
follow the parameter layouts of cnnumpy: a Dense weight is ``(in_features, units)``, a
convolution weight is ``(F, C, *kernel)`` so that ``fan_in = C * prod(kernel)`` and
``fan_out = F * prod(kernel)``.

- He / Kaiming (He et al. 2015, "Delving Deep into Rectifiers"): Var(w) = 2 / fan_in,
  which keeps the variance of ReLU activations constant from layer to layer.
- Glorot / Xavier (Glorot & Bengio 2010): Var(w) = 2 / (fan_in + fan_out), for tanh and
  sigmoid.
- LeCun (LeCun et al. 1998, "Efficient BackProp"): Var(w) = 1 / fan_in.

A uniform law on [-a, a] has variance a^2 / 3, hence ``a = sqrt(3 * var)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple, np.random.Generator, np.dtype], np.ndarray]


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of the given cnnumpy layout."""
    if len(shape) < 2:
        raise ValueError(
            f"compute_fans: expected a weight of rank >= 2, got shape {shape}"
        )
    if len(shape) == 2:  # Dense: (in_features, units)
        return int(shape[0]), int(shape[1])
    receptive = int(np.prod(shape[2:]))  # Conv: (F, C, *kernel)
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def _normal(std: float, shape, rng, dtype):
    return (rng.standard_normal(shape) * std).astype(dtype)


def _uniform(var: float, shape, rng, dtype):
    a = np.sqrt(3.0 * var)
    return rng.uniform(-a, a, size=shape).astype(dtype)


def he_normal(shape, rng, dtype=np.float32):
    fan_in, _ = compute_fans(shape)
    return _normal(np.sqrt(2.0 / fan_in), shape, rng, dtype)


def he_uniform(shape, rng, dtype=np.float32):
    fan_in, _ = compute_fans(shape)
    return _uniform(2.0 / fan_in, shape, rng, dtype)


def glorot_normal(shape, rng, dtype=np.float32):
    fan_in, fan_out = compute_fans(shape)
    return _normal(np.sqrt(2.0 / (fan_in + fan_out)), shape, rng, dtype)


def glorot_uniform(shape, rng, dtype=np.float32):
    fan_in, fan_out = compute_fans(shape)
    return _uniform(2.0 / (fan_in + fan_out), shape, rng, dtype)


def lecun_normal(shape, rng, dtype=np.float32):
    fan_in, _ = compute_fans(shape)
    return _normal(np.sqrt(1.0 / fan_in), shape, rng, dtype)


def lecun_uniform(shape, rng, dtype=np.float32):
    fan_in, _ = compute_fans(shape)
    return _uniform(1.0 / fan_in, shape, rng, dtype)


def zeros(shape, rng=None, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def ones(shape, rng=None, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


_BY_NAME: dict[str, Initializer] = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "zeros": zeros,
    "ones": ones,
}


def get(name: str) -> Initializer:
    """The initialiser called ``name`` (e.g. ``"he_normal"``)."""
    if not isinstance(name, str) or name not in _BY_NAME:
        raise ValueError(
            f"unknown initializer {name!r}; expected one of {sorted(_BY_NAME)}"
        )
    return _BY_NAME[name]
