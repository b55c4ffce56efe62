"""The library's random generator.

All randomness (weight initialisation, dropout masks, shuffling, augmentation) comes
from `numpy.random.Generator` objects. ``cnnumpy.seed(n)`` replaces the global
generator, so that building and training a model after it repeats bit for bit on the
same machine.
"""

from __future__ import annotations

import numpy as np

_global_rng = np.random.default_rng()


def seed(n: int) -> None:
    """Make every later random draw of cnnumpy reproducible from the integer ``n``."""
    global _global_rng
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {n!r}")
    _global_rng = np.random.default_rng(int(n))


def get_rng() -> np.random.Generator:
    """The global generator (the one ``seed`` resets)."""
    return _global_rng


def spawn_rng() -> np.random.Generator:
    """A new independent generator drawn from the global one.

    Used by a layer or a data loader.
    """
    return np.random.default_rng(_global_rng.integers(0, 2**63))


def as_rng(seed_or_rng: int | np.random.Generator | None) -> np.random.Generator:
    """A generator from ``None``, an int seed, or a Generator.

    ``None`` spawns one from the global generator.
    """
    if seed_or_rng is None:
        return spawn_rng()
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    if isinstance(seed_or_rng, (int, np.integer)) and not isinstance(seed_or_rng, bool):
        return np.random.default_rng(int(seed_or_rng))
    raise TypeError(
        f"expected a seed (int), a numpy Generator or None, got {seed_or_rng!r}"
    )


class isolated:
    """Context manager: random draws inside do not advance the global generator.

    Used when loading a model, whose layers are built (and randomly initialised) before
    the saved weights overwrite them: loading must not change what a seeded run draws
    next.
    """

    def __enter__(self):
        global _global_rng
        self._saved = _global_rng
        _global_rng = np.random.default_rng(0)
        return self

    def __exit__(self, *exc):
        global _global_rng
        _global_rng = self._saved
        return False


def generator_state(rng: np.random.Generator) -> dict:
    """The JSON-serialisable state of a generator (MT19937, Philox and SFC64 keep
    arrays in theirs: they become lists, which their ``state`` setter accepts)."""

    def plain(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, dict):
            return {key: plain(v) for key, v in value.items()}
        return value

    return plain(rng.bit_generator.state)


def generator_from_state(
    state: dict, allowed=("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
) -> np.random.Generator:
    """A generator restored from ``generator_state``.

    Only NumPy's own bit generators are accepted.
    """
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in allowed:
        raise ValueError(
            f"unknown random bit generator {name!r}; expected one of {allowed}"
        )
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
