"""Seed 003, slides 129-138: a filter as large as its input is a dense layer.

Slides 129-131 slide filters of growing size, prefixes of ``[.2 -.3 .4 -.5 .6 -.7 .8
.9 -.1]``, over the signal ``[40 50 70 80 90 10 20 30 40]`` ("valid" convolution).
With 9 weights the filter covers the whole signal, one output remains, and that
output is a dense neuron's ``x . w`` (slide 132; slide 133 says it in words).
cnnumpy's ``Conv1D`` and ``Dense`` given the same weights compute it; the notes print
31 for it, the printed filter gives 67 (every earlier output on the slides is right).

Slide 138 does the same in 2-D: on a 32x32x3 image, 3 filters 7x7, 5 filters 9x9
and 4 filters 11x11 ("valid") leave 4 maps of 8x8, and a dense layer 256 -> 4 on
them is the same as 4 filters of 8x8. The slide asks what happens on a 64x64x3 image:
the dense network cannot take it (its layer expects 256 values and gets 6,400), while
the fully convolutional one outputs 4 maps of 33x33, each value the dense network's
answer on one 32x32 window of the image, window after window at stride 1.

The slides name no activation for these layers (slide 33: "ex. ReLU"); ReLU is put
between the convolutions and a softmax over the 4 outputs, as the slide's "Softmax".
"""

from __future__ import annotations

import numpy as np
from reproduce import Reproduction

import cnnumpy
from cnnumpy.layers import Conv1D, Conv2D, Dense, Flatten, ReLU, Softmax

SIGNAL = [40, 50, 70, 80, 90, 10, 20, 30, 40]  # slides 129-132
FILTER = [0.2, -0.3, 0.4, -0.5, 0.6, -0.7, 0.8, 0.9, -0.1]
NOTES_OUTPUTS = {  # filter size -> what the slides print
    3: [21, 21, 26, -7, 23, 8, 11],
    5: [35, -18, 33, 1, 32],
    7: [44, -8, 44],
    9: [31],
}
STACK = [(3, 7), (5, 9), (4, 11)]  # slide 138: (filters, size), "valid"


def built(layer, input_shape):
    """``layer`` built for ``input_shape``, in float64 (the slides' exact sums)."""
    layer.build(input_shape)
    return layer.astype(np.float64)


def conv1d_outputs(size: int, padding="valid") -> np.ndarray:
    """The notes' signal through a ``Conv1D`` holding the first ``size`` weights."""
    layer = built(Conv1D(1, size, padding=padding, use_bias=False), (1, len(SIGNAL)))
    layer.params["W"][...] = np.asarray(FILTER[:size]).reshape(1, 1, size)
    signal = np.asarray(SIGNAL, dtype=np.float64).reshape(1, 1, -1)
    return layer.forward(signal)[0, 0]


def one_d() -> dict:
    """Slides 128-132: every filter size, and the 9-weight filter as a dense neuron."""
    found = {}
    for size, printed in NOTES_OUTPUTS.items():
        out = conv1d_outputs(size)
        found[size] = [round(float(v), 6) for v in out]
        mark = "" if np.allclose(out, printed) else "   <- the notes' slip"
        print(f"   filter of {size}: notes {printed}, cnnumpy {found[size]}{mark}")
    dense = built(Dense(1, use_bias=False), (len(SIGNAL),))
    dense.params["W"][...] = np.asarray(FILTER).reshape(-1, 1)
    neuron = float(dense.forward(np.asarray([SIGNAL], dtype=np.float64))[0, 0])
    by_hand = float(np.dot(SIGNAL, FILTER))
    padded = conv1d_outputs(9, padding="same")
    print(
        f"   Dense(1) with the same 9 weights: {neuron:g}; x . w by hand: {by_hand:g}"
    )
    print(
        f"   with 'same' padding (slide 133's word) the 9-filter gives {padded.size} "
        f"outputs; its centre one is {padded[4]:g}"
    )
    return {"outputs": found, "dense": neuron, "dot": by_hand, "same": padded.tolist()}


def stack(head: str, input_shape=(3, 32, 32)) -> cnnumpy.Sequential:
    """Slide 137's network; ``head`` is ``"dense"`` (256 -> 4) or ``"conv"`` (4@8x8)."""
    layers = []
    for filters, size in STACK:
        layers += [Conv2D(filters, size), ReLU()]
    if head == "dense":
        layers += [Flatten(), Dense(4), Softmax()]
    else:
        layers += [Conv2D(4, 8), Softmax(axis=1)]
    model = cnnumpy.Sequential(layers, input_shape=input_shape)
    return model.astype(np.float64)


def copy_as_conv(dense_net, conv_net) -> None:
    """Give ``conv_net`` the weights of ``dense_net``: the same convolutions, and the
    dense W (256, 4) read as 4 filters (4, 8, 8) in Flatten's (C, H, W) order."""
    pairs = zip(dense_net.layers, conv_net.layers, strict=False)
    for source, target in pairs:
        if isinstance(source, Conv2D):
            for key, value in source.params.items():
                target.params[key][...] = value
    dense = next(layer for layer in dense_net.layers if isinstance(layer, Dense))
    head = [layer for layer in conv_net.layers if isinstance(layer, Conv2D)][-1]
    head.params["W"][...] = dense.params["W"].T.reshape(head.params["W"].shape)
    head.params["b"][...] = dense.params["b"]


def two_d() -> dict:
    """Slide 137: the dense head and its 8x8-filter twin, then the 64x64 question."""
    cnnumpy.seed(0)
    dense_net, conv_net = stack("dense"), stack("conv")
    copy_as_conv(dense_net, conv_net)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((5, 3, 32, 32))
    p_dense = dense_net.forward(images)
    p_conv = conv_net.forward(images)
    gap = float(np.max(np.abs(p_dense - p_conv.reshape(p_dense.shape))))
    counts = (dense_net.count_params(), conv_net.count_params())
    print(
        f"   32x32x3: dense head {p_dense.shape}, 8x8-filter head {p_conv.shape}; "
        f"largest difference {gap:.1e}; parameters {counts[0]:,} and {counts[1]:,}"
    )
    big = rng.standard_normal((1, 3, 64, 64))
    try:
        dense_net.forward(big)
        refused = ""
    except ValueError as err:
        refused = str(err)
    print(f"   64x64x3 through the dense head: refused ({refused})")
    conv_big = stack("conv", input_shape=(3, 64, 64))
    for source, target in zip(conv_net.layers, conv_big.layers, strict=True):
        for key, value in source.params.items():
            target.params[key][...] = value
    maps = conv_big.forward(big)
    windows = np.stack(
        [big[0, :, i : i + 32, j : j + 32] for i in range(33) for j in range(33)]
    )
    per_window = dense_net.forward(windows).T.reshape(1, 4, 33, 33)
    window_gap = float(np.max(np.abs(maps - per_window)))
    print(
        f"   64x64x3 through the 8x8-filter head: {maps.shape[1:]}, a softmax per "
        f"32x32 window; map (i, j) against the dense net on window [i:i+32, j:j+32], "
        f"all 33x33: largest difference {window_gap:.1e}"
    )
    return {
        "gap": gap,
        "params": list(counts),
        "refused": refused,
        "big_output": list(maps.shape[1:]),
        "window_gap": window_gap,
    }


def fc_equivalence(quick: bool) -> dict:
    """Slides 128-137 (``quick`` changes nothing: it takes a second)."""
    found_1d = one_d()
    found_2d = two_d()
    last = found_1d["outputs"][9][0]
    return {
        "cnnumpy": f"the 9-weight filter on the 9 values gives {last:g} (Conv1D), "
        f"{found_1d['dense']:g} (Dense), the notes print 31; slide 138's two heads "
        f"agree to {max(found_2d['gap'], found_2d['window_gap']):.0e} with the same "
        f"{found_2d['params'][0]:,} parameters (outputs 4 and 4x1x1: the "
        f"'presque'); on 64x64x3 "
        f"the dense head is refused and the convolutional one outputs "
        f"{'x'.join(map(str, found_2d['big_output']))}: one 32x32 window per value",
        "differences": "the notes print 31 for 40·.2 - 50·.3 + ... - 40·.1 = 67 (their "
        "earlier outputs all check); slide 133 says 'same' where the one-output "
        "convolution is 'valid'; no activation is named, ReLU and a softmax assumed",
        "outputs_1d": {str(k): v for k, v in found_1d["outputs"].items()},
        "dense_1d": found_1d["dense"],
        "notes_1d": 31,
        **found_2d,
    }


REPRODUCTIONS = [
    Reproduction(
        "seed003_fc_equivalence",
        "seed 003, slides 129-138 (Réseaux pleinement convolutifs)",
        "a signal of 9 values convolved with a filter of 9 = a fully connected layer: "
        "[40 50 70 80 90 10 20 30 40] * [.2 -.3 .4 -.5 .6 -.7 .8 .9 -.1] = [31]; "
        "4 filters 8x8 'presque équivalent' to a dense 256x4; 'qu'arrive-t-il si on "
        "remplace l'image 32x32x3 par une image 64x64x3?'",
        fc_equivalence,
        minutes=0.02,
    ),
]
