"""Backup and restore for ``fit(resume_from=DIR)``: a killed run resumes bit for bit.

After every epoch the model, the optimiser state, the history and the state of every
random generator are saved in ``DIR`` atomically; a later ``fit`` with the same folder
(after a crash, a kill, or to continue) starts after the last completed epoch and ends
with the same weights, bit for bit, as an uninterrupted run with the same seed. Only
one ``fit`` at a time may use the folder (:class:`cnnumpy.folderlock.FolderLock`, a
lock that dies with its process).

A resume continues the *same* run, so it is refused with a ``ValueError`` (before
anything is loaded) when the training or validation data differ (sizes, shapes, or a
hash of the targets and of 16 sampled examples), when ``batch_size`` differs, when the
compiled optimiser differs in class or config (its ``lr`` may be the compiled one or
the one the run had reached, unless it has per-layer options: their ``initial_lr`` is
part of the config), or when ``epochs`` is below the epochs already completed
(equal: nothing to train). The checkpoint's optimiser state is loaded into the
compiled optimiser object. To go on differently, ``load_model`` the checkpoint,
compile it and fit it with a new folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from cnnumpy.divergence import TrainingDiverged, non_finite
from cnnumpy.fileio import file_kind, remove_stale_temporaries
from cnnumpy.folderlock import FolderLock
from cnnumpy.rng import generator_from_state, generator_state
from cnnumpy.saving.header import ModelFileError
from cnnumpy.saving.reading import restore_checkpoint
from cnnumpy.saving.writing import save_model
from cnnumpy.validation import Arrays

__all__ = ["Backup", "fingerprint", "run_signature"]

SAMPLED = 16  # examples hashed by ``fingerprint``, evenly spaced over the data


def fingerprint(x, y, dtype) -> dict:
    """Sizes, shapes and a hash of the data, to tell other data from the same, cheaply.

    The hash covers every target and ``SAMPLED`` evenly spaced examples as the model
    sees them (cast to its ``dtype``), so the same images in uint8 or float64 match.
    Several inputs or targets (:class:`~cnnumpy.validation.Arrays`) are hashed array
    by array, and their shapes listed.
    """
    xs = x.arrays if isinstance(x, Arrays) else [x]
    ys = y.arrays if isinstance(y, Arrays) else [y]
    n = len(xs[0])
    rows = np.unique(np.linspace(0, n - 1, min(n, SAMPLED)).astype(np.int64))
    digest = hashlib.sha256()
    for a in xs:
        digest.update(np.ascontiguousarray(a[rows], dtype=dtype).tobytes())
    targets = [np.asarray(t) for t in ys]
    for t in targets:
        exact = np.issubdtype(t.dtype, np.integer) or t.dtype == np.bool_
        digest.update(
            np.ascontiguousarray(t, np.int64 if exact else np.float64).tobytes()
        )

    def shapes(arrays):
        listed = [list(a.shape[1:]) for a in arrays]
        return listed[0] if len(listed) == 1 else listed

    return {
        "examples": n,
        "x": shapes(xs),
        "y": shapes(targets),
        "digest": digest.hexdigest()[:32],
    }


def _data_text(data: dict | None) -> str:
    if data is None:
        return "none"
    x = tuple(data["x"])
    return f"{data['examples']} examples of shape {x}, targets {tuple(data['y'])}"


def _optimizer_text(spec: dict) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in spec["config"].items())
    return f"{spec['class']}({args})"


def optimizer_spec(optimizer) -> dict:
    """Class and config of ``optimizer``, as they read back from a checkpoint."""
    config = json.loads(json.dumps(optimizer.get_config()))
    return {"class": type(optimizer).__name__, "config": config}


class _Refused(Exception):
    """Carries a refusal out of ``restore_checkpoint`` (which would call a ValueError
    raised there a corrupted file) before anything is set."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class Backup:
    """Backup and restore for ``fit(resume_from=DIR)`` (not a callback: fit drives it).

    ``DIR/checkpoint.safetensors`` holds the model, optimiser, history, the epoch just
    finished, whether training had stopped (early stopping), the state of the
    shuffling/augmentation generator, the state of every callback that has
    ``state_dict`` (plus its arrays, from ``state_tensors``, such as EarlyStopping's
    best weights), and what identifies the run: a fingerprint of its data, its batch
    size and the optimiser it was compiled with. It is replaced atomically after each
    epoch, so a process killed at any moment leaves the last completed epoch on disk;
    weights that are not finite are never written (``TrainingDiverged``).

    Used as a context manager it holds the folder's :class:`FolderLock` and, holding
    it, removes the temporary files a killed write left behind.

    Args:
        folder: the ``resume_from`` folder.
        model: the model being trained.
        callbacks: fit's callbacks, History first.
        rng: the shuffling/augmentation generator; after :meth:`restore`,
            :attr:`rng` is the checkpoint's (the run goes on with it).
        run: what a resumed run must share with the checkpoint, from
            :func:`run_signature`.
        write: False restores but never writes (an MPI rank other than 0, which
            resumes from a copy of rank 0's checkpoint:
            :mod:`cnnumpy.distributed.data_parallel`).
    """

    FILENAME = "checkpoint.safetensors"

    def __init__(
        self, folder, model, callbacks, rng, run: dict | None = None, write=True
    ) -> None:
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            kind = file_kind(folder.stat().st_mode)  # stat never opens a FIFO
            raise ValueError(
                f"fit: resume_from must be a folder, got {folder}, which is a {kind}"
            )
        self.folder, self.path = folder, folder / self.FILENAME
        self.model, self.callbacks, self.rng = model, callbacks, rng
        self.run = dict(run or {})
        self.write = write
        self.stopped = False
        self.completed = 0  # epochs held by the checkpoint on disk
        self._lock = FolderLock(folder, "fit: resume_from=")
        self._same_optimizer = False

    def __enter__(self) -> Backup:
        self._lock.acquire()
        remove_stale_temporaries(self.path)
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()

    def restore(self, epochs: int) -> int:
        """Load the checkpoint if there is one; returns the first epoch still to run.

        Everything is checked before anything is set (``restore_checkpoint``),
        including that this is the same run (:meth:`_check_same_run`).
        """
        if not self.path.exists():
            return 0
        compiled = self.model.optimizer
        try:
            state = restore_checkpoint(
                self.model, self.path, lambda training: self._parse(training, epochs)
            )
        except _Refused as refused:
            raise refused.error from None
        if state is None:
            raise ModelFileError(f"{self.path}: a model file, not a fit checkpoint")
        epoch, fit_rng, stopped = state["parsed"]
        self._keep_compiled(compiled)
        self.rng = fit_rng
        history = self.callbacks[0]
        if self.model.history is not None:
            history.epoch = self.model.history.epoch
            history.history = self.model.history.history
        self.model.history = history
        self._restore_callbacks(state)
        self.stopped = stopped
        self.model.stop_training = stopped
        self.completed = epoch + 1
        return epoch + 1

    def _restore_callbacks(self, state: dict) -> None:
        tensors = state["tensors"]
        for key, cb in self._stateful():
            if key in state.get("callbacks", {}):
                cb.load_state_dict(state["callbacks"][key])
            own = {
                k[len(key) + 1 :]: v for k, v in tensors.items() if k.startswith(key)
            }
            if own and hasattr(cb, "load_state_tensors"):
                cb.load_state_tensors(own)

    def _keep_compiled(self, compiled) -> None:
        """Load the restored optimiser state into the user's own optimiser (checked
        to be the same class and config), so their references to it stay valid."""
        restored = self.model.optimizer
        if self._same_optimizer and compiled is not None and restored is not compiled:
            compiled.load_state_dict(restored.state_dict(), layers=self.model.layers)
            self.model.optimizer = compiled

    def _parse(self, training: dict, epochs: int) -> tuple[int, object, bool]:
        epoch = training["epoch"]
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        if not isinstance(training.get("callbacks", {}), dict):
            raise TypeError("callbacks state must be a dict")
        parsed = (
            epoch,
            generator_from_state(training["fit_rng"]),
            bool(training.get("stopped", False)),
        )
        try:
            self._check_same_run(training, epoch + 1, epochs)
        except ValueError as exc:
            raise _Refused(exc) from None
        return parsed

    def _check_same_run(self, saved: dict, completed: int, epochs: int) -> None:
        """Refuse to resume a run with fewer epochs, other data or another optimiser.

        Checkpoints written before these were recorded are not checked.
        """
        where = f"the run in {self.folder}"
        if epochs < completed:
            raise ValueError(
                f"fit: epochs={epochs} is too few: {where} has already completed "
                f"{completed} epochs; pass epochs >= {completed} to continue it"
            )
        for what in ("data", "validation"):
            if what in saved and saved[what] != self.run.get(what):
                raise ValueError(self._data_refusal(what, saved[what]))
        if "batch_size" in saved and saved["batch_size"] != self.run["batch_size"]:
            raise ValueError(
                f"fit: {where} used batch_size={saved['batch_size']}, now "
                f"{self.run['batch_size']}; {self._elsewhere()}"
            )
        if "optimizer" in saved:
            self._check_optimizer(saved["optimizer"], saved.get("lr"))

    def _data_refusal(self, what: str, saved: dict | None) -> str:
        now = self.run.get(what)
        name = "training" if what == "data" else "validation"
        sizes = ("examples", "x", "y")
        if (
            saved is not None
            and now is not None
            and all(saved.get(k) == now[k] for k in sizes)
        ):
            change = (
                f"same sizes, other content ({_data_text(now)}, but a hash of the "
                f"targets and of {SAMPLED} sampled examples differs)"
            )
        else:
            change = f"then {_data_text(saved)}, now {_data_text(now)}"
        return (
            f"fit: the {name} data differ from those of the run in {self.folder}: "
            f"{change}; {self._elsewhere()}"
        )

    def _check_optimizer(self, saved: dict, last_lr) -> None:
        """Same class and config; the learning rate may be the compiled one or the
        one the run had reached (a schedule changes it: it is restored anyway)."""
        now = self.run["optimizer"]
        rates = {saved["config"].get("lr"), last_lr}
        same = (
            now["class"] == saved["class"]
            and {**now["config"], "lr": 0} == {**saved["config"], "lr": 0}
            and now["config"].get("lr") in rates
        )
        if not same:
            raise ValueError(
                f"fit: the model is compiled with {_optimizer_text(now)}, but the run "
                f"in {self.folder} used {_optimizer_text(saved)}; compile the same "
                f"optimiser to continue it, or {self._elsewhere()}"
            )
        self.run["optimizer"] = saved  # the compiled one, for the next resume
        self._same_optimizer = True

    def _elsewhere(self) -> str:
        return (
            f"to go on differently, load_model('{self.path}'), compile it and fit "
            "it with another resume_from folder"
        )

    def done_message(self, epochs: int) -> str | None:
        """What to tell when the checkpoint leaves nothing to train, else None."""
        if self.stopped and self.completed < epochs:
            return (
                f"fit: the run in {self.folder} stopped early after {self.completed} "
                "epochs: nothing to train"
            )
        if self.completed and self.completed >= epochs:
            return (
                f"fit: the run in {self.folder} has already completed "
                f"{self.completed} epochs: nothing to train"
            )
        return None

    def save(self, epoch: int) -> None:
        bad = non_finite(self.model)
        if bad is not None:  # never over the last good checkpoint
            raise TrainingDiverged(bad, epoch)
        if not self.write:
            self.completed = epoch + 1
            return
        state = {
            "epoch": epoch,
            "stopped": bool(self.model.stop_training),
            "fit_rng": generator_state(self.rng),
            "callbacks": {key: cb.state_dict() for key, cb in self._stateful()},
            **self.run,
            "lr": float(self.model.optimizer.lr),
        }
        tensors = {}
        for key, cb in self._stateful():
            if hasattr(cb, "state_tensors"):
                for name, value in cb.state_tensors().items():
                    tensors[f"{key}.{name}"] = value
        save_model(self.model, self.path, training_state=state, extra_tensors=tensors)
        self.completed = epoch + 1

    def _stateful(self):
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict"):
                yield f"{i}.{type(cb).__name__}", cb


def run_signature(model, x, y, validation_data, batch_size: int) -> dict:
    """What a resumed run must share with its checkpoint (see ``Backup``)."""
    validation = None
    if validation_data is not None:
        validation = fingerprint(*validation_data, model.dtype)
    return {
        "data": fingerprint(x, y, model.dtype),
        "validation": validation,
        "batch_size": int(batch_size),
        "optimizer": optimizer_spec(model.optimizer),
    }
