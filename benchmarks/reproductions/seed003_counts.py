"""Seed 003's arithmetic on architectures: what a stack of small filters sees, and
what VGG16 and VGG19 weigh.

VGG16's memory (slides 192-193): the notes count ~15 M neurons (~60 Mo at 4 bytes)
and 138 M parameters (~552 Mo), "~612 Mo pour la propagation avant d'une image" and
">1.1 Go si on inclut la rétro-propagation". The last figure is not derived on the
slides; doubling the forward pass (a gradient for every parameter and every neuron,
cs231n's "~*2 for bwd") gives 1.23 GB. cnnumpy's ``summary`` counts instead what its
book really keeps for one training step on one image in float32: the forward pass
(parameters and neurons, as the notes), one gradient per parameter (``grads``, the
parameters' size) and each layer's cache for its backward pass
(:func:`cnnumpy.summary.cache_bytes`: a convolution keeps its im2col columns, ~9
values per input value for a 3x3 filter; a ReLU one byte per value; a max-pool its
window mask). The gradients of the neurons flow layer to layer and are freed as they
go; an optimiser's state (momentum: one more copy of the parameters) is not counted.
Beside the estimate, one SGD step on one image is measured with ``tracemalloc``: the
engine's kernels keep other arrays than the book (DESIGN.md, the book and the engine)
and allocate temporaries, so the measured peak is higher than the book's count.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
from reproduce import Reproduction

import cnnumpy
from cnnumpy import summary, zoo
from cnnumpy.layers import Conv2D, Dense


def receptive_field(quick: bool) -> dict:
    """Three 3x3 convolutions against one 7x7: the same field, fewer weights."""
    C = 64
    stack = cnnumpy.Sequential(
        [Conv2D(C, 3, use_bias=False) for _ in range(3)], input_shape=(C, 32, 32)
    )
    single = cnnumpy.Sequential([Conv2D(C, 7, use_bias=False)], input_shape=(C, 32, 32))
    field = cnnumpy.receptive_field(stack)[-1].size
    one = cnnumpy.receptive_field(single)[-1].size
    print(f"   three 3x3: field {field}, {stack.count_params():,} weights (C = {C})")
    print(f"   one 7x7:   field {one}, {single.count_params():,} weights")
    ratio = stack.count_params() / single.count_params()
    return {
        "cnnumpy": f"field {field[0]}x{field[1]} either way; weights 27·C² = "
        f"{stack.count_params():,} against 49·C² = {single.count_params():,} "
        f"(ratio {ratio:.3f} = 27/49) for C = {C}",
        "differences": "",
        "field": list(field),
        "weights": [stack.count_params(), single.count_params()],
    }


def largest_caches(model, kept, count=3) -> list[tuple[str, float]]:
    """The ``count`` layers that keep the most for backward, with their MB."""
    rows = [
        (f"{i}:{layer!r}", k / 1e6)
        for i, (layer, k) in enumerate(zip(model.layers, kept, strict=True))
        if k
    ]
    return sorted(rows, key=lambda row: -row[1])[:count]


def measure_step(model) -> dict:
    """One SGD step of ``model`` on one random image under tracemalloc: the peak of
    the arrays allocated during the step (caches, gradients, temporaries) by the
    engine's kernels, which keep other arrays than the book's estimate."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, *model.input_shape)).astype(model.dtype)
    y = np.array([0])
    model.compile(optimizer="sgd", loss="cross_entropy", metrics=())
    tracemalloc.start()
    started = time.perf_counter()
    model.train_on_batch(x, y)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"step_peak_mb": peak / 1e6, "step_seconds": seconds}


def vgg16_memory(quick: bool) -> dict:
    """Slides 192-193: VGG16's forward and backward memory for one image, float32
    (``quick`` changes nothing: the whole run takes a few seconds)."""
    model = zoo.vgg16()  # float32: the notes' "4 octets"
    t = summary.totals(model, batch_size=1)
    kept = summary.cache_bytes(model, batch_size=1)
    grads_mb = t["params_mb"]  # one gradient per parameter, at the same dtype
    total = t["forward_mb"] + grads_mb + t["backward_mb"]
    doubled = 2 * t["forward_mb"]
    print(
        f"   forward: {t['params']:,} parameters ({t['params_mb']:.1f} MB) + "
        f"{t['neurons']:,} neurons ({t['activations_mb']:.1f} MB) = "
        f"{t['forward_mb']:.1f} MB"
    )
    print(
        f"   backward adds: parameter gradients {grads_mb:.1f} MB + caches kept "
        f"{t['backward_mb']:.1f} MB; largest caches: "
        + ", ".join(f"{name} {mb:.1f} MB" for name, mb in largest_caches(model, kept))
    )
    print(
        f"   total {total:.1f} MB (the notes' doubling of the forward pass: "
        f"{doubled:.1f} MB)"
    )
    measured = measure_step(model)  # a second or two: --quick too
    peak_gb = (t["params_mb"] + measured["step_peak_mb"]) / 1e3
    print(
        f"   measured (tracemalloc, one train_on_batch on the engine): peak "
        f"{measured['step_peak_mb']:.1f} MB of NumPy arrays during the step, on "
        f"top of the {t['params_mb']:.1f} MB of parameters: {peak_gb:.2f} GB "
        f"({measured['step_seconds']:.1f} s)"
    )
    return {
        "cnnumpy": f"forward {t['forward_mb']:.1f} MB (notes ~612 Mo); backward keeps "
        f"{t['backward_mb']:.1f} MB of caches + {grads_mb:.1f} MB of parameter "
        f"gradients; total {total / 1e3:.2f} GB (notes >1.1 Go; forward doubled "
        f"{doubled / 1e3:.2f} GB); measured on the engine: {peak_gb:.2f} GB at the "
        "step's peak",
        "differences": "the notes do not say what their >1.1 Go counts; cnnumpy counts "
        "parameters, neurons, parameter gradients and the book's caches (im2col "
        "columns), not the neurons' gradients in flight nor an optimiser's state"
        + "; the measured peak also holds the engine's own temporaries",
        "params": t["params"],
        "neurons": t["neurons"],
        "forward_mb": round(t["forward_mb"], 1),
        "params_mb": round(t["params_mb"], 1),
        "activations_mb": round(t["activations_mb"], 1),
        "gradients_mb": round(grads_mb, 1),
        "backward_kept_mb": round(t["backward_mb"], 1),
        "total_mb": round(total, 1),
        "forward_doubled_mb": round(doubled, 1),
        "settings": {"batch_size": 1, "dtype": "float32", "bytes": 4},
        **{k: round(v, 1) for k, v in measured.items()},
    }


VGG19_CONVS = (
    [(3, 64), (64, 64), (64, 128), (128, 128)]
    + [(128, 256)]
    + [(256, 256)] * 3
    + [(256, 512)]
    + [(512, 512)] * 7
)  # configuration E, (C_in, C_out), 3x3 pad 1


def vgg19_by_hand(input_shape=(3, 224, 224), num_classes=1000) -> int:
    """VGG19's parameters from the layer list: (9 C_in + 1) C_out per convolution,
    (n_in + 1) n_out per dense layer, the first reading 512 maps of (H/32)x(W/32)."""
    _, H, W = input_shape
    dense = [(512 * (H // 32) * (W // 32), 4096), (4096, 4096), (4096, num_classes)]
    convs = sum((9 * c_in + 1) * c_out for c_in, c_out in VGG19_CONVS)
    return convs + sum((n_in + 1) * n_out for n_in, n_out in dense)


def vgg_counts(build, input_shape, num_classes) -> dict:
    """Weight layers (conv, dense), parameters and neurons of ``build(...)``."""
    model = build(input_shape=input_shape, num_classes=num_classes)
    t = summary.totals(model, batch_size=1)
    t["convs"] = sum(isinstance(layer, Conv2D) for layer in model.layers)
    t["dense"] = sum(isinstance(layer, Dense) for layer in model.layers)
    return t


def vgg19_report(input_shape=(3, 224, 224), num_classes=1000) -> dict:
    """VGG19's weight layers, parameters and neurons, beside VGG16's."""
    t = vgg_counts(zoo.vgg19, input_shape, num_classes)
    vgg16 = vgg_counts(zoo.vgg16, input_shape, num_classes)
    by_hand = vgg19_by_hand(input_shape, num_classes)
    weighted = t["convs"] + t["dense"]
    print(
        f"   vgg19: {weighted} weight layers ({t['convs']} conv + {t['dense']} "
        f"dense), {t['params']:,} parameters (by hand {by_hand:,}), "
        f"{t['neurons']:,} neurons"
    )
    print(
        f"   vgg16: {vgg16['convs'] + vgg16['dense']} weight layers, "
        f"{vgg16['params']:,} parameters, {vgg16['neurons']:,} neurons; VGG19 adds "
        f"{t['params'] - vgg16['params']:,} parameters and "
        f"{t['neurons'] - vgg16['neurons']:,} neurons"
    )
    return {
        "cnnumpy": f"{weighted} weight layers, {t['params']:,} parameters "
        f"({t['params_mb']:.1f} MB), {t['neurons']:,} neurons "
        f"({t['activations_mb']:.1f} MB), ~{t['forward_mb']:.0f} MB forward for one "
        "image in float32 (VGG16: "
        f"{vgg16['convs'] + vgg16['dense']} layers, {vgg16['params']:,})",
        "differences": "the notes give no count for VGG19; 143,667,240 is "
        "torchvision's, checked here by hand from the layer list",
        "weight_layers": weighted,
        "params": t["params"],
        "params_by_hand": by_hand,
        "neurons": t["neurons"],
        "forward_mb": round(t["forward_mb"], 1),
        "vgg16_weight_layers": vgg16["convs"] + vgg16["dense"],
        "vgg16_params": vgg16["params"],
        "vgg16_neurons": vgg16["neurons"],
    }


def vgg19(quick: bool) -> dict:
    """Slide 183's "16 ou 19 couches", counted (``quick`` changes nothing)."""
    return vgg19_report()


REPRODUCTIONS = [
    Reproduction(
        "seed003_receptive_field",
        "seed 003, VGG: three 3x3 layers see 7x7",
        "three stacked 3x3 convolutions see a 7x7 region with 27·C² weights, "
        "against 49·C² for one 7x7 layer",
        receptive_field,
        minutes=0.01,
    ),
    Reproduction(
        "seed003_vgg16_memory",
        "seed 003, slides 192-193 (VGGNet memory)",
        "VGG16: ~15 M neurons (~60 Mo), 138 M parameters (~552 Mo), ~612 Mo for the "
        "forward pass of one image, >1.1 Go with backpropagation",
        vgg16_memory,
        minutes=0.1,  # measured: 3.3 s
    ),
    Reproduction(
        "seed003_vgg19",
        "seed 003, slide 183 ('VGGNet : 16 ou 19 couches')",
        "VGGNet has 16 or 19 layers; no parameter count for VGG19 (torchvision's "
        "vgg19: 143,667,240)",
        vgg19,
        minutes=0.1,  # measured: 4 s (20 s while the 2 cores were shared)
    ),
]
