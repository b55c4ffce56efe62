"""The engine's dispatch: one table per operation, with the book as its reference.

An operation (``conv2d``, ``maxpool2d``, ``dense``...) is the book's forward/backward
pair (:mod:`cnnumpy.textbook`) plus, in order of preference, the engine's faster
kernels for it. Each kernel has the same signature as the book's functions, a rule
saying which calls it is chosen for (``applies``, given the forward's arguments), the
calls it can run at all (``serves``, by default the same) and the measured reason it
exists (``why``). A forward call goes to the first kernel whose rule
accepts it, or to the book; its cache is tagged with the kernel's name
(:class:`Cache`), so the backward pass always runs the matching backward.

``off()`` (or ``CNNUMPY_ENGINE=0`` in the environment) sends every call to the book:
a whole model, training included, then runs on the notes' code alone and can be
stepped through in a debugger. ``force(op, kernel)`` routes the calls of one operation
that ``kernel`` serves to it, chosen or not; the tests run every layer case under
each kernel so.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

BOOK = "book"


def _always(*args, **kwargs) -> bool:
    return True


class Cache(NamedTuple):
    """A forward's cache and the name of the kernel that made it."""

    kernel: str
    data: Any


class Kernel(NamedTuple):
    name: str
    forward: Callable
    backward: Callable
    applies: Callable[..., bool]
    why: str
    serves: Callable[..., bool]


def _env_enabled() -> bool:
    given = os.environ.get("CNNUMPY_ENGINE", "1")
    if given not in ("0", "1"):
        raise ValueError(
            f"CNNUMPY_ENGINE: expected 0 (the book alone) or 1, got {given!r}"
        )
    return given == "1"


_state = {"on": _env_enabled(), "forced": {}}


class Operation:
    """One operation's dispatch table: the book's pair and the engine's kernels."""

    def __init__(self, name: str, forward: Callable, backward: Callable) -> None:
        self.name = name
        self.book = Kernel(BOOK, forward, backward, _always, "the notes' code", _always)
        self.kernels: list[Kernel] = []

    def register(
        self,
        name: str,
        forward: Callable,
        backward: Callable,
        applies: Callable[..., bool] = _always,
        why: str = "",
        serves: Callable[..., bool] | None = None,
    ) -> None:
        """Add a kernel after those already registered (earlier ones win)."""
        if name in self.names:
            raise ValueError(f"{self.name}: a kernel named {name!r} exists already")
        serves = applies if serves is None else serves
        self.kernels.append(Kernel(name, forward, backward, applies, why, serves))

    @property
    def names(self) -> list[str]:
        return [BOOK, *(k.name for k in self.kernels)]

    def kernel(self, name: str) -> Kernel:
        for k in (self.book, *self.kernels):
            if k.name == name:
                return k
        raise ValueError(
            f"{self.name}: no kernel named {name!r}; known: {', '.join(self.names)}"
        )

    def choose(self, *args, **kwargs) -> Kernel:
        """The kernel a forward call with these arguments runs."""
        forced = _state["forced"].get(self.name)
        if forced is not None:
            chosen = self.kernel(forced)
            if chosen.serves(*args, **kwargs):
                return chosen
        if not _state["on"]:
            return self.book
        for k in self.kernels:
            if k.applies(*args, **kwargs):
                return k
        return self.book

    def forward(self, *args, **kwargs) -> tuple[Any, Cache]:
        chosen = self.choose(*args, **kwargs)
        out, data = chosen.forward(*args, **kwargs)
        return out, Cache(chosen.name, data)

    def backward(self, dout, cache: Cache, *args, **kwargs):
        return self.kernel(cache.kernel).backward(dout, cache.data, *args, **kwargs)

    def __repr__(self) -> str:
        return f"Operation({self.name!r}, kernels={self.names})"


TABLES: dict[str, Operation] = {}


def operation(name: str, forward: Callable, backward: Callable) -> Operation:
    """A new operation with the book's ``forward``/``backward``, listed in TABLES."""
    if name in TABLES:
        raise ValueError(f"operation {name!r} exists already")
    TABLES[name] = Operation(name, forward, backward)
    return TABLES[name]


def enabled() -> bool:
    """Whether the engine's kernels run (False: the book alone)."""
    return _state["on"]


def forced(op: str) -> str | None:
    """The kernel ``op`` is forced to (:func:`force`), or None."""
    return _state["forced"].get(op)


@contextlib.contextmanager
def _engine(on: bool) -> Iterator[None]:
    saved = _state["on"]
    _state["on"] = on
    try:
        yield
    finally:
        _state["on"] = saved


def off() -> contextlib.AbstractContextManager:
    """Run everything inside the ``with`` block on the book's code alone."""
    return _engine(False)


def on() -> contextlib.AbstractContextManager:
    """Run the engine's kernels inside the ``with`` block, even under
    ``CNNUMPY_ENGINE=0`` (the engine's own tests, whatever the environment)."""
    return _engine(True)


@contextlib.contextmanager
def force(op: str, kernel: str) -> Iterator[None]:
    """Inside the block, calls of ``op`` that ``kernel`` serves run it (others run
    what they would run anyway). ``kernel`` may be ``"book"``."""
    if op not in TABLES:
        raise ValueError(
            f"engine.force: no operation {op!r}; known: {', '.join(TABLES)}"
        )
    TABLES[op].kernel(kernel)  # the name must exist
    saved = _state["forced"].get(op)
    _state["forced"][op] = kernel
    try:
        yield
    finally:
        if saved is None:
            _state["forced"].pop(op)
        else:
            _state["forced"][op] = saved
