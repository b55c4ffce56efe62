"""Backup and restore for ``fit(resume_from=DIR)``: a killed run resumes bit for bit."""

from __future__ import annotations

from pathlib import Path


class Backup:
    """Backup and restore for ``fit(resume_from=DIR)`` (not a callback: fit drives it).

    ``DIR/checkpoint.safetensors`` holds the model, optimiser, history, the epoch just
    finished, the state of the shuffling/augmentation generator and of every callback
    that has ``state_dict``. It is replaced atomically after each epoch, so a process
    killed at any moment leaves the last completed epoch on disk.
    """

    FILENAME = "checkpoint.safetensors"

    def __init__(self, folder, model, callbacks) -> None:
        self.path = Path(folder) / self.FILENAME
        self.model, self.callbacks = model, callbacks

    def restore(self) -> int:
        """Load the checkpoint if there is one; returns the first epoch still to run."""
        from cnnumpy.io import restore_checkpoint
        from cnnumpy.rng import generator_from_state

        if not self.path.exists():
            return 0
        state = restore_checkpoint(self.model, self.path) or {}
        self.model._fit_rng = generator_from_state(state["fit_rng"])
        history = self.callbacks[0]
        if self.model.history is not history and self.model.history is not None:
            history.epoch, history.history = (
                self.model.history.epoch,
                self.model.history.history,
            )
        self.model.history = history
        for key, cb in self._stateful():
            if key in state.get("callbacks", {}):
                cb.load_state_dict(state["callbacks"][key])
        return int(state["epoch"]) + 1

    def save(self, epoch: int) -> None:
        from cnnumpy.io import save_model
        from cnnumpy.rng import generator_state

        state = {
            "epoch": epoch,
            "fit_rng": generator_state(self.model._fit_rng),
            "callbacks": {key: cb.state_dict() for key, cb in self._stateful()},
        }
        save_model(self.model, self.path, training_state=state)

    def _stateful(self):
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict"):
                yield f"{i}.{type(cb).__name__}", cb
