"""Which kernel runs each layer of the zoo's benchmark networks, pinned.

A guard rail for moving code (issue 14, the book and the engine): the kernels are chosen
by the measured rules of ``cnnumpy/engine/rules.py`` (wide grid or im2col, images
innermost on small maps, row bands, the ``2C > F`` rule for ``dx``, tiling pools) and by
fused inference's plan.
This test records, for one training step and one ``predict`` of each network, the kernel
each layer ran, and compares it with the table below. A move that changes a choice
fails here, whatever the numbers.

``SPIES`` maps the functions where a choice shows to the label recorded when one runs;
when code moves, the spies follow it and ``EXPECTED`` stays as it is. Only calls made
from the main thread count, and only entry points run once per layer (never the

per-chunk work), so thread count and batch size do not change the record.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading

import numpy as np
import pytest

import cnnumpy
from cnnumpy import zoo
from cnnumpy.engine import TABLES, fusion

# the engine's own machinery: run with its kernels, whatever CNNUMPY_ENGINE says
pytestmark = pytest.mark.usefixtures("engine_on")

SPIES = {
    "cnnumpy.engine.kernels.conv.conv2d_forward": "conv",
    "cnnumpy.engine.kernels.conv_flat.conv2d_forward_flat": "wide",
    "cnnumpy.engine.rules.use_bands": "bands?",  # the result is recorded
    "cnnumpy.engine.kernels.conv_inner.correlate_inner": "inner",
    "cnnumpy.engine.kernels.conv.conv2d_backward": "conv",
    "cnnumpy.engine.kernels.conv_flat_backward.conv2d_backward_flat": "wide",
    "cnnumpy.engine.kernels.conv_bands.dw_db_bands": "dw:bands",
    "cnnumpy.engine.kernels.conv_inner.dw_db_inner": "dw:inner",
    "cnnumpy.engine.kernels.conv_flat_backward._dx_full_flat": "dx:full",
    "cnnumpy.engine.kernels.conv_flat_backward._dx_slice_add": "dx:slice-add",
    "cnnumpy.engine.kernels.conv._dx_col2im": "dx:col2im",
    "cnnumpy.engine.kernels.pool_tiles.maxpool_tiles": "tiles",
    "cnnumpy.engine.kernels.pool_tiles.maxpool_tiles_backward": "tiles",
    "cnnumpy.engine.kernels.pool_tiles.avgpool_tiles": "tiles",
    "cnnumpy.engine.kernels.pool_tiles.avgpool_tiles_backward": "tiles",
    "cnnumpy.engine.kernels.pool._windows": "windows",
    "cnnumpy.engine.kernels.pool._scatter_windows": "windows",
    "cnnumpy.engine.fusion.plan": "plan=",  # fused inference: what merges with what
}

NETS = {
    "lenet5": (1, 28, 28),
    "melpy_mnist": (1, 28, 28),
    "seed_cifar": (3, 32, 32),
    "vgg_cifar": (3, 32, 32),
}

EXPECTED: dict[str, dict[str, list[str]]] = {
    "lenet5": {
        "train": [
            "0 Conv2D fwd: conv wide",
            "2 AvgPool2D fwd: tiles",
            "3 Conv2D fwd: conv wide inner",
            "5 AvgPool2D fwd: tiles",
            "5 AvgPool2D bwd: tiles",
            "3 Conv2D bwd: conv wide dw:inner dx:slice-add",
            "2 AvgPool2D bwd: tiles",
            "0 Conv2D bwd: conv wide",
        ],
        "predict": [
            "plan: 0+pool2+act1",
            "plan: 3+pool5+act4",
            "0 Conv2D fused: conv wide",
            "3 Conv2D fused: conv wide inner",
        ],
    },
    "melpy_mnist": {
        "train": [
            "0 Conv2D fwd: conv wide",
            "2 MaxPool2D fwd: tiles",
            "3 Conv2D fwd: conv wide",
            "3 Conv2D bwd: conv wide dx:slice-add",
            "2 MaxPool2D bwd: tiles",
            "0 Conv2D bwd: conv wide",
        ],
        "predict": [
            "plan: 0+pool2+act1",
            "plan: 3+act4",
            "0 Conv2D fused: conv wide",
            "3 Conv2D fused: conv wide",
        ],
    },
    "seed_cifar": {
        "train": [
            "0 Conv2D fwd: conv wide",
            "2 MaxPool2D fwd: tiles",
            "3 Conv2D fwd: conv wide inner",
            "5 MaxPool2D fwd: tiles",
            "6 Conv2D fwd: conv wide inner",
            "8 MaxPool2D fwd: tiles",
            "8 MaxPool2D bwd: tiles",
            "6 Conv2D bwd: conv wide dw:inner dx:full inner",
            "5 MaxPool2D bwd: tiles",
            "3 Conv2D bwd: conv wide dw:inner dx:full inner",
            "2 MaxPool2D bwd: tiles",
            "0 Conv2D bwd: conv wide",
        ],
        "predict": [
            "plan: 0+pool2+act1",
            "plan: 3+pool5+act4",
            "plan: 6+pool8+act7",
            "0 Conv2D fused: conv wide",
            "3 Conv2D fused: conv wide inner",
            "6 Conv2D fused: conv wide inner",
        ],
    },
    "vgg_cifar": {
        "train": [
            "0 Conv2D fwd: conv wide",
            "3 Conv2D fwd: conv wide",
            "6 MaxPool2D fwd: tiles",
            "7 Conv2D fwd: conv wide inner",
            "10 Conv2D fwd: conv wide inner",
            "13 MaxPool2D fwd: tiles",
            "14 Conv2D fwd: conv wide inner",
            "17 Conv2D fwd: conv wide inner",
            "20 MaxPool2D fwd: tiles",
            "20 MaxPool2D bwd: tiles",
            "17 Conv2D bwd: conv wide dw:inner dx:full inner",
            "14 Conv2D bwd: conv wide dw:inner dx:full inner",
            "13 MaxPool2D bwd: tiles",
            "10 Conv2D bwd: conv wide dw:inner dx:full inner",
            "7 Conv2D bwd: conv wide dw:inner dx:full inner",
            "6 MaxPool2D bwd: tiles",
            "3 Conv2D bwd: conv wide dx:full",
            "0 Conv2D bwd: conv wide",
        ],
        "predict": [
            "plan: 0+bn1+act2",
            "plan: 3+bn4+pool6+act5",
            "plan: 7+bn8+act9",
            "plan: 10+bn11+pool13+act12",
            "plan: 14+bn15+act16",
            "plan: 17+bn18+pool20+act19",
            "0 Conv2D fused: conv wide",
            "3 Conv2D fused: conv wide",
            "7 Conv2D fused: conv wide inner",
            "10 Conv2D fused: conv wide inner",
            "14 Conv2D fused: conv wide inner",
            "17 Conv2D fused: conv wide inner",
        ],
    },
}


class Recorder:
    def __init__(self):
        self.layer = "-"
        self.lines: list[str] = []
        self.main = threading.get_ident()

    def note(self, label: str) -> None:
        if threading.get_ident() != self.main:
            return
        if self.lines and self.lines[-1].startswith(self.layer + ":"):
            self.lines[-1] += " " + label
        else:
            self.lines.append(f"{self.layer}: {label}")


def _spy(recorder: Recorder, label: str, fn):
    def spy(*args, **kwargs):
        if label[-1] not in "?=":
            recorder.note(label)  # before the call: outer choices come first
            return fn(*args, **kwargs)
        result = fn(*args, **kwargs)
        if label.endswith("="):
            recorder.lines += [f"{label[:-1]}: {step}" for step in _merges(result)]
        elif result:
            recorder.note(label[:-1])
        return result

    return spy


def _merges(plan) -> list[str]:
    """Fused inference's plan, merged steps only: ``0+pool2+act1`` is layer 0 with
    the pool of layer 2 and the activation of layer 1 run on its chunks."""
    steps = []
    for i, *merged in plan:
        kinds = zip(("bn", "pool", "act"), merged, strict=True)
        parts = [f"{kind}{j}" for kind, j in kinds if j is not None]
        if parts:
            steps.append("+".join([str(i), *parts]))
    return steps


def _swap(fn, original, spy):
    """``fn`` with ``spy`` in place of ``original`` (also inside a partial)."""
    if fn is original:
        return spy
    if isinstance(fn, functools.partial) and fn.func is original:
        return functools.partial(spy, *fn.args, **fn.keywords)
    return fn


def _install_spies(monkeypatch, recorder: Recorder) -> None:
    for path, label in SPIES.items():
        module_name, name = path.rsplit(".", 1)
        original = getattr(importlib.import_module(module_name), name)
        spy = _spy(recorder, label, original)
        # replace every binding of the function (``from m import f`` copies it)
        for mod_name, module in list(sys.modules.items()):
            bound = getattr(module, name, None)
            if mod_name.startswith("cnnumpy") and bound is original:
                monkeypatch.setattr(module, name, spy)
        # and the kernels of the dispatch tables that hold it
        for op in TABLES.values():
            kernels = [
                k._replace(
                    forward=_swap(k.forward, original, spy),
                    backward=_swap(k.backward, original, spy),
                )
                for k in op.kernels
            ]
            monkeypatch.setattr(op, "kernels", kernels)


def _wrap_layers(monkeypatch, model, recorder: Recorder) -> None:
    """Tag calls with the layer that runs, by wrapping the layer classes' methods
    (never the instances: fused inference checks that ``forward`` is the class's)."""
    index = {id(layer): i for i, layer in enumerate(model.layers)}

    def tagged(method, phase):
        def run(self, *args, **kwargs):
            outer = recorder.layer
            i = index.get(id(self), "?")
            recorder.layer = f"{i} {type(self).__name__} {phase}"
            try:
                return method(self, *args, **kwargs)
            finally:
                recorder.layer = outer

        return run

    for cls in {type(layer) for layer in model.layers}:
        for name, phase in (("forward", "fwd"), ("backward", "bwd")):
            monkeypatch.setattr(cls, name, tagged(getattr(cls, name), phase))
    # fused inference runs a convolution by fusion.convolve(conv, ...)
    monkeypatch.setattr(fusion, "convolve", tagged(fusion.convolve, "fused"))


def record(monkeypatch, net: str) -> dict[str, list[str]]:
    shape = NETS[net]
    cnnumpy.seed(0)
    model = getattr(zoo, net)(input_shape=shape)
    model.compile(optimizer=cnnumpy.optimizers.SGD(lr=0.01), loss="cross_entropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, *shape)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    recorder = Recorder()
    with monkeypatch.context() as patch:
        _install_spies(patch, recorder)
        _wrap_layers(patch, model, recorder)
        model.train_on_batch(x, y)
        train, recorder.lines = recorder.lines, []
        model.predict(x)
        predict = recorder.lines
    return {"train": train, "predict": predict}


@pytest.mark.parametrize("net", sorted(NETS))
def test_each_layer_runs_the_pinned_kernel(monkeypatch, net):
    assert record(monkeypatch, net) == EXPECTED[net]


def test_the_record_sees_a_changed_choice(monkeypatch):
    """Forcing the im2col path instead of the wide grid changes the record."""
    before = record(monkeypatch, "lenet5")
    import cnnumpy.engine.rules as rules

    monkeypatch.setattr(rules, "flat_applies", lambda stride, mode: False)
    # (the engine's own way: cnnumpy.engine.force("conv2d", "columns"))
    after = record(monkeypatch, "lenet5")
    assert before != after
    assert any("dx:col2im" in line for line in after["train"])
