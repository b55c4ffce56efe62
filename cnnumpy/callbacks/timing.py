"""``LayerTimer``: where a training step's time goes, layer by layer and pass by pass.

Seed 000 times each layer by hand, ``start = time.clock()`` ... ``self.temps[0] +=
time.clock() - start`` around its ``front``, to find which layer to make faster
(its section III). ``LayerTimer`` does the same for any model, without touching the
layers' code: while ``fit`` runs, it puts a timed copy of every layer's ``forward`` and
``backward`` on the layer itself (an attribute of the instance, which Python finds
before the method of the class), and one of ``model.train_step``, the whole step
(forward, loss, backward, update). It takes them away when training ends, or when
``fit`` raises. A run without a ``LayerTimer`` never goes through any of this: its
layers and its step are the plain methods, at full speed.

The wrappers measure the layers as they are run, whichever runs them: the engine's
executor (:mod:`cnnumpy.engine.executor`, its own order of the layers) or the notes'
loops of ``Sequential.forward`` and ``backward`` with the engine off. Only calls inside
a training step count: validation and ``predict`` go through the wrappers untimed (and
fused inference does not call most layers at all).
"""

from __future__ import annotations

import time

from cnnumpy.callbacks.base import Callback
from cnnumpy.callbacks.tables import chosen_epoch, last_block, text_table

_PASSES = ("forward", "backward")


class LayerTimer(Callback):
    """Mean milliseconds per training step of each layer's forward and backward pass,
    per epoch, and each layer's share of the step.

    The step is ``model.train_step``: forward, loss, backward and the optimiser's
    update. The layers' times add up to less than the step's: the rest is the loss,
    the update and the loops themselves, shown as ``loss, update, rest``.

    Attributes:
        rows: one dict per epoch and layer, in layer order: ``epoch`` (0-based, as in
            ``on_epoch_end``), ``layer`` (its index in ``model.layers``), ``name``
            (its ``name``, else its repr), ``forward_ms`` and ``backward_ms`` (means
            per step), ``total_ms``, ``share`` (``total_ms / step_ms``, in [0, 1]).
        steps: one dict per epoch: ``epoch``, ``steps`` (training steps timed),
            ``step_ms`` (mean per step), ``forward_ms`` and ``backward_ms`` (all layers,
            per step), ``rest_ms`` (``step_ms`` minus the layers).

    Rows accumulate over every ``fit`` the callback is given to (and over a resumed
    run, as the callback's state is checkpointed). Example::

        timer = LayerTimer()
        model.fit(x, y, epochs=2, callbacks=[timer])
        print(timer.table())  # the last epoch
    """

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.steps: list[dict] = []
        self._saved: list[tuple] = []  # (object, attribute, previous instance value)
        self._in_step = False
        self._new_epoch(0)

    # -- hooks -------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._attach(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._new_epoch(len(self.model.layers))

    def on_epoch_end(self, epoch, logs=None):
        if self._count == 0:  # stopped before its first step
            return
        per_step = 1e3 / self._count  # seconds summed over the epoch -> ms per step
        step_ms = self._step_seconds * per_step
        for i, layer in enumerate(self.model.layers):
            forward_ms, backward_ms = (s * per_step for s in self._seconds[i])
            total_ms = forward_ms + backward_ms
            self.rows.append({
                "epoch": epoch, "layer": i, "name": layer.name or repr(layer),
                "forward_ms": forward_ms, "backward_ms": backward_ms,
                "total_ms": total_ms, "share": total_ms / step_ms,
            })  # fmt: skip
        forward_ms = sum(s[0] for s in self._seconds) * per_step
        backward_ms = sum(s[1] for s in self._seconds) * per_step
        self.steps.append({
            "epoch": epoch, "steps": self._count, "step_ms": step_ms,
            "forward_ms": forward_ms, "backward_ms": backward_ms,
            "rest_ms": step_ms - forward_ms - backward_ms,
        })  # fmt: skip

    def on_train_end(self, logs=None):
        self.detach()

    def on_train_error(self, error):
        self.detach()

    # -- wrapping ----------------------------------------------------------------------
    def _attach(self, model) -> None:
        """Put the timed copies on the layers and the model (undone by ``detach``)."""
        self.detach()  # (a fit that raised before its on_train_error: start clean)
        for i, layer in enumerate(model.layers):
            for p, attribute in enumerate(_PASSES):
                self._wrap(layer, attribute, self._timed_pass(layer, attribute, i, p))
        self._wrap(model, "train_step", self._timed_step(model.train_step))

    def _wrap(self, owner, attribute: str, wrapper) -> None:
        current = getattr(owner, attribute)
        if getattr(current, "timed_by", None) is not None:
            self.detach()
            raise ValueError(
                f"LayerTimer: {owner!r}.{attribute} is already timed by another "
                "LayerTimer; give fit one LayerTimer"
            )
        wrapper.timed_by = self
        self._saved.append((owner, attribute, vars(owner).get(attribute, _MISSING)))
        setattr(owner, attribute, wrapper)

    def detach(self) -> None:
        """Give the layers and the model their own methods back (done by ``fit`` at the
        end of training, or when it raises; doing it again does nothing)."""
        while self._saved:
            owner, attribute, previous = self._saved.pop()
            if previous is _MISSING:
                delattr(owner, attribute)  # the class's method shows through again
            else:
                setattr(owner, attribute, previous)
        self._in_step = False

    @property
    def attached(self) -> bool:
        """Whether the timed copies are in place (only while ``fit`` runs)."""
        return bool(self._saved)

    def _timed_pass(self, layer, attribute: str, i: int, p: int):
        run = getattr(layer, attribute)

        def timed(*args, **kwargs):
            if not self._in_step:  # validation, predict: not a training step
                return run(*args, **kwargs)
            start = time.perf_counter()
            out = run(*args, **kwargs)
            self._seconds[i][p] += time.perf_counter() - start
            return out

        return timed

    def _timed_step(self, run):
        def timed(*args, **kwargs):
            self._in_step = True
            start = time.perf_counter()
            try:
                out = run(*args, **kwargs)
            finally:
                self._in_step = False
            self._step_seconds += time.perf_counter() - start
            self._count += 1
            return out

        return timed

    def _new_epoch(self, n_layers: int) -> None:
        self._seconds = [[0.0, 0.0] for _ in range(n_layers)]  # forward, backward
        self._step_seconds, self._count = 0.0, 0

    # -- reading -----------------------------------------------------------------------
    def table(self, epoch: int | None = None) -> str:
        """The times of ``epoch`` (default: the last one timed) as a text table."""
        epoch = chosen_epoch(self.steps, epoch, "LayerTimer.table")
        step = [s for s in self.steps if s["epoch"] == epoch][-1]
        body = [
            [str(r["layer"]), r["name"], f"{r['forward_ms']:.3f}",
             f"{r['backward_ms']:.3f}", f"{r['total_ms']:.3f}", f"{r['share']:.1%}"]
            for r in last_block(self.rows, epoch)
        ]  # fmt: skip
        rest = step["rest_ms"]
        body.append(["", "loss, update, rest", "", "", f"{rest:.3f}",
                     f"{rest / step['step_ms']:.1%}"])  # fmt: skip
        title = (
            f"epoch {epoch}: {step['steps']} steps of {step['step_ms']:.3f} ms "
            f"(forward {step['forward_ms']:.3f}, backward {step['backward_ms']:.3f})"
        )
        header = ["#", "layer", "forward ms", "backward ms", "total ms", "share"]
        return title + "\n" + text_table(header, body, right=(2, 3, 4, 5))

    # -- checkpoints (fit(resume_from=...)) --------------------------------------------
    def state_dict(self) -> dict:
        return {"rows": self.rows, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.rows, self.steps = list(state["rows"]), list(state["steps"])


_MISSING = object()
