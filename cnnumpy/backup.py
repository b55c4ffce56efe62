"""Backup and restore for ``fit(resume_from=DIR)``: a killed run resumes bit for bit."""

from __future__ import annotations

from pathlib import Path


class Backup:
    """Backup and restore for ``fit(resume_from=DIR)`` (not a callback: fit drives it).

    ``DIR/checkpoint.safetensors`` holds the model, optimiser, history, the epoch just
    finished, whether training had stopped (early stopping), the state of the
    shuffling/augmentation generator, and the state of every callback that has
    ``state_dict`` (plus its arrays, from ``state_tensors``, such as EarlyStopping's
    best weights). It is replaced atomically after each epoch, so a process killed at
    any moment leaves the last completed epoch on disk.
    """

    FILENAME = "checkpoint.safetensors"

    def __init__(self, folder, model, callbacks) -> None:
        self.path = Path(folder) / self.FILENAME
        self.model, self.callbacks = model, callbacks
        self.stopped = False

    def restore(self) -> int:
        """Load the checkpoint if there is one; returns the first epoch still to run.

        Everything is checked before anything is set (``restore_checkpoint``).
        """
        from cnnumpy.io import restore_checkpoint

        if not self.path.exists():
            return 0
        state = restore_checkpoint(self.model, self.path, self._parse)
        epoch, fit_rng, stopped = state["parsed"]
        self.model._fit_rng = fit_rng
        history = self.callbacks[0]
        if self.model.history is not None:
            history.epoch = self.model.history.epoch
            history.history = self.model.history.history
        self.model.history = history
        tensors = state["tensors"]
        for key, cb in self._stateful():
            if key in state.get("callbacks", {}):
                cb.load_state_dict(state["callbacks"][key])
            own = {
                k[len(key) + 1 :]: v for k, v in tensors.items() if k.startswith(key)
            }
            if own and hasattr(cb, "load_state_tensors"):
                cb.load_state_tensors(own)
        self.stopped = stopped
        self.model.stop_training = stopped
        return epoch + 1

    @staticmethod
    def _parse(training: dict) -> tuple[int, object, bool]:
        from cnnumpy.rng import generator_from_state

        epoch = training["epoch"]
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        if not isinstance(training.get("callbacks", {}), dict):
            raise TypeError("callbacks state must be a dict")
        return (
            epoch,
            generator_from_state(training["fit_rng"]),
            bool(training.get("stopped", False)),
        )

    def save(self, epoch: int) -> None:
        from cnnumpy.io import save_model
        from cnnumpy.rng import generator_state

        state = {
            "epoch": epoch,
            "stopped": bool(self.model.stop_training),
            "fit_rng": generator_state(self.model._fit_rng),
            "callbacks": {key: cb.state_dict() for key, cb in self._stateful()},
        }
        tensors = {}
        for key, cb in self._stateful():
            if hasattr(cb, "state_tensors"):
                for name, value in cb.state_tensors().items():
                    tensors[f"{key}.{name}"] = value
        save_model(self.model, self.path, training_state=state, extra_tensors=tensors)

    def _stateful(self):
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict"):
                yield f"{i}.{type(cb).__name__}", cb
