"""The run folders the playground serves, chosen by name only, and their models.

A request names a run (``?run=lenet5``); it is never a path. The name must match
``NAME_PATTERN`` and be one of ``RunStore.names()`` (the immediate subfolders of
RUNS_DIR holding ``config.json`` and ``model.safetensors``) before anything is joined
to RUNS_DIR: ``../x``, ``a/b`` or an absolute path cannot reach a file outside it.

Loaded models are kept (``MAX_CACHED`` of them, the least recently used dropped),
keyed by the run's name and its model file's modification time, so that a request
does not read the file again, and a run trained again is read afresh.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnumpy.cli import runs
from cnnumpy.cli.runs import UsageError
from cnnumpy.saving import ModelFileError
from cnnumpy.serve.errors import ApiError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_CACHED = 8
# a run whose config.json names one of these, or a vocabulary, reads text
TEXT_KEYS = ("text", "vocabulary")


def is_run_name(name) -> bool:
    """True for a string of 1 to 64 letters, digits, ``.``, ``_`` or ``-`` that
    starts with a letter or a digit (so never ``.``, ``..`` nor a hidden folder)."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


def takes_images(config: dict) -> bool:
    """True when a run's ``config.json`` describes an image model: an input shape
    ``[C, H, W]`` of 1 or 3 channels, and no text (a char model reads text)."""
    shape = config.get("input_shape")
    sizes = isinstance(shape, list) and all(type(d) is int and d > 0 for d in shape)
    images = sizes and len(shape) == 3 and shape[0] in (1, 3)
    return images and not any(key in config for key in TEXT_KEYS)


@dataclass
class LoadedRun:
    """One run folder, opened: its model built and its settings checked.

    Attributes:
        name: the folder's name under RUNS_DIR.
        path: the folder.
        model: the trained model (its own dtype, float32 unless trained otherwise).
        config: the run's ``config.json``, checked (``cnnumpy.cli.run_config``).
        class_names: one name per output class (``"0"``..``"9"`` for MNIST).
        input_shape: ``(C, H, W)`` of one input image.
        lock: held while the model computes. A layer keeps what its backward pass
            needs between forward and backward; two requests running the same model
            at once in two threads would mix them up.
    """

    name: str
    path: Path
    model: object
    config: dict
    class_names: list[str]
    input_shape: tuple[int, int, int]
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def model_input(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels ``(C, H, W)`` in [0, 255] as the model's input ``(1, C, H, W)``:
        the run's preprocessing (as ``cnnumpy predict`` does), in the model's dtype.
        """
        if pixels.shape != self.input_shape:
            raise ApiError(
                400,
                f"run {self.name} takes images {self.input_shape}, "
                f"got pixels {pixels.shape}",
            )
        return runs.model_input(pixels[None], self.model, self.config, self.name)


class RunStore:
    """The runs under ``root``, by name, with their models cached.

    Args:
        root: RUNS_DIR, the folder holding one folder per run.
    """

    def __init__(self, root: Path, max_cached: int = MAX_CACHED) -> None:
        self.root = Path(root)
        self.max_cached = max_cached
        self._cache: OrderedDict[str, tuple[int, LoadedRun]] = OrderedDict()
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """The runs, sorted: the subfolders holding a config and a model file."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in self.root.iterdir():
            if not is_run_name(folder.name) or not folder.is_dir():
                continue
            if (folder / runs.CONFIG).is_file() and (folder / runs.MODEL).is_file():
                found.append(folder.name)
        return sorted(found)

    def folder(self, name) -> Path:
        """The folder of the run called ``name``, or ApiError(404).

        The name is checked against ``names()`` before it is joined to the root.
        """
        if not is_run_name(name):
            shown = repr(name)[:80]
            raise ApiError(
                404,
                f"no run named {shown}: a run name is 1 to 64 letters, digits, "
                "'.', '_' or '-', starting with a letter or a digit",
            )
        known = self.names()
        if name not in known:
            listed = ", ".join(known[:20]) or f"none yet in {self.root}"
            raise ApiError(404, f"no run named {name!r}; runs: {listed}")
        return self.root / name

    def open(self, name) -> LoadedRun:
        """The run called ``name``, its model loaded (or taken from the cache).

        Raises:
            ApiError: 404 for an unknown name, 400 for a char model's run (it reads
                text), 500 for a folder whose files cannot be read.
        """
        folder = self.folder(name)
        stamp = self._stamp(folder)
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and cached[0] == stamp:
                self._cache.move_to_end(name)
                return cached[1]
            run = load_run(name, folder)
            self._cache[name] = (stamp, run)
            self._cache.move_to_end(name)
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
            return run

    def _stamp(self, folder: Path) -> int:
        """The model file's modification time, in nanoseconds."""
        try:
            return (folder / runs.MODEL).stat().st_mtime_ns
        except OSError as exc:  # removed since names() saw it
            raise ApiError(404, f"run {folder.name}: {exc.strerror}") from None


def load_run(name: str, folder: Path) -> LoadedRun:
    """Read the run folder ``folder`` (``cnnumpy.cli.runs.open_run``).

    A char model's run is refused from its ``config.json``, before its model loads.
    """
    try:
        if any(key in runs.read_json(folder / runs.CONFIG) for key in TEXT_KEYS):
            raise ApiError(
                400,
                f"run {name} is a char model: it reads text, not images; the "
                "playground shows image models",
            )
        model, config, _ = runs.open_run(str(folder))
    except (UsageError, ModelFileError, ValueError, OSError) as exc:
        detail = " ".join(str(exc).split())
        raise ApiError(500, f"run {name} cannot be opened: {detail}") from None
    shape = tuple(model.input_shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ApiError(
            400,
            f"run {name} takes inputs {shape}, not images (C, H, W) of 1 or 3 "
            "channels; the playground shows image models",
        )
    num_classes = int(np.prod(model.output_shape))
    return LoadedRun(
        name=name,
        path=folder,
        model=model,
        config=config,
        class_names=runs.class_names_of(config, max(num_classes, 2)),
        input_shape=tuple(int(d) for d in shape),
    )


# -- the list of runs ------------------------------------------------------------------
def run_summary(name: str, folder: Path) -> dict | None:
    """What ``GET /api/runs`` says of one run, from its ``config.json`` and
    ``metrics.json`` (the model is not loaded); None for a char model's run or a
    folder whose ``config.json`` cannot be read."""
    try:
        config = runs.read_json(folder / runs.CONFIG)
    except UsageError:
        return None
    if not takes_images(config):
        return None
    metrics = {}
    if (folder / runs.METRICS).is_file():
        try:
            metrics = runs.read_json(folder / runs.METRICS)
        except UsageError:
            metrics = {}
    names = config.get("class_names")
    accuracy = metrics.get("test_accuracy")
    return {
        "name": name,
        "model": config.get("model"),
        "dataset": config.get("dataset"),
        "input_shape": config["input_shape"],
        "class_names": [str(n) for n in names] if isinstance(names, list) else None,
        "epochs": metrics.get("epochs_completed", config.get("epochs")),
        "test_accuracy": accuracy if isinstance(accuracy, (int, float)) else None,
        "kind": "image",
    }


def run_summaries(store: RunStore) -> list[dict]:
    """``run_summary`` of every image run of ``store``, by name."""
    found = (run_summary(name, store.root / name) for name in store.names())
    return [summary for summary in found if summary is not None]
