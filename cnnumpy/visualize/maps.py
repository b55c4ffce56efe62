"""What the network sees, computed with NumPy only (no plotting here).

- ``feature_maps_array``: the output of one layer for one image (seed 001, Figure 2).
- ``filters_array``: a conv layer's kernels, normalised to [0, 1] for display.
- ``occlusion_map``: Zeiler & Fergus (2014), as seed 000's ``visual``: blank a patch,
  record how much the probability of the right class drops, for every patch position.
- ``saliency_map``: seed 000's "carte des responsabilités": backpropagate the class
  score (the logit, before softmax) to the input pixels (Simonyan et al. 2014).
- ``grad_cam_map``: Grad-CAM (Selvaraju et al. 2017) on a conv layer's output.

Every function runs the model in inference mode (``training=False``: BatchNorm uses its
running statistics, Dropout is the identity) and leaves the layers' ``grads`` untouched.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.layers.activations import Softmax
from cnnumpy.summary import is_chain
from cnnumpy.textbook.activations import softmax
from cnnumpy.textbook.arguments import int_tuple
from cnnumpy.validation import check_inputs
from cnnumpy.visualize import _checks as ck


def feature_maps_array(model, x: np.ndarray, layer) -> np.ndarray:
    """The output of ``layer`` for one image.

    Args:
        model: a built Sequential.
        x: one image ``(C, H, W)``.
        layer: index, Layer object or name.

    Returns:
        ``(channels, h, w)``; a layer with a vector output ``(features,)`` gives
        ``(features, 1, 1)``.
    """
    x = ck.check_image(model, x, "feature_maps")
    index = ck.layer_index(model, layer, "feature_maps")
    out = ck.run_to(model, x[None], ck.layer_value(model, index))[0]
    if out.ndim == 1:
        return out.reshape(-1, 1, 1)
    if out.ndim != 3:
        raise ValueError(
            f"feature_maps: layer {index} gives {out.shape}, not (C, h, w)"
        )
    return out


def filters_array(model, layer=None) -> np.ndarray:
    """A Conv2D layer's kernels, each scaled to [0, 1] on its own (min-max).

    Each filter gets its own scale so that its pattern shows, whatever its norm.

    Returns:
        ``(F, KH, KW, 3)`` (RGB images) when the layer sees 3 channels, otherwise
        ``(F, C, KH, KW)`` (one grey image per filter and input channel).
    """
    index = ck.first_conv_index(model, layer, "filters")
    w = model.layers[index].params["W"].astype(np.float64)
    low = w.min(axis=(1, 2, 3), keepdims=True)
    span = w.max(axis=(1, 2, 3), keepdims=True) - low
    scaled = np.where(span > 0, (w - low) / np.where(span > 0, span, 1.0), 0.5)
    if w.shape[1] == 3:
        return scaled.transpose(0, 2, 3, 1)
    return scaled


def _probabilities(model, outputs: np.ndarray) -> np.ndarray:
    """Class probabilities from raw outputs ``(N, K)``.

    A compiled model converts with its loss (softmax, sigmoid); an uncompiled one is
    taken to output logits, unless it ends with a Softmax layer.
    """
    if model.loss is not None:
        return model.loss.to_probabilities(outputs)
    if isinstance(model.layers[-1], Softmax):
        return outputs
    if outputs.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-outputs))
    return softmax(outputs, axis=-1)


def _class_probability(model, outputs: np.ndarray, label: int) -> np.ndarray:
    """``p(label)`` per example; one sigmoid output p means p(1) = p, p(0) = 1 - p."""
    probs = _probabilities(model, outputs)
    if probs.shape[1] == 1:
        return probs[:, 0] if label == 1 else 1.0 - probs[:, 0]
    return probs[:, label]


def class_probabilities(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``(N, K)`` probabilities of images ``(N, C, H, W)``, ``batch_size`` at a time."""
    shape = ck.check_built(model, "class_probabilities")
    x = check_inputs(x, shape, "class_probabilities", dtype=model.dtype)
    chunks = []
    for lo in range(0, len(x), batch_size):
        xb = x[lo : lo + batch_size].astype(model.dtype, copy=False)
        chunks.append(_probabilities(model, ck.run_to(model, xb, None)))
    return np.concatenate(chunks)


def _patch_pair(value, name: str, size: tuple[int, int]) -> tuple[int, int]:
    pair = int_tuple(value, 2, name, "occlusion", minimum=1)
    if name == "patch" and (pair[0] > size[0] or pair[1] > size[1]):
        raise ValueError(f"occlusion: patch {pair} larger than the image {size}")
    return pair


def _starts(size: int, patch: int, stride: int) -> np.ndarray:
    """Top-left corners every ``stride``, plus the last one so the border is covered."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return np.array(starts)


def occlusion_map(
    model, x: np.ndarray, label: int, patch=8, stride=2, fill=0.0, batch_size: int = 256
) -> np.ndarray:
    """Zeiler & Fergus occlusion: how much ``p(label)`` drops when a patch is blanked.

    For every patch position (top-left corners every ``stride`` pixels, the last row
    and column of positions flush with the border), the patch is set to ``fill`` in all
    channels and ``drop = p(label | x) - p(label | occluded x)``. Each pixel gets the
    mean drop over the patches that cover it. The occluded copies are run in batches.

    Args:
        patch: side ``P`` (or ``(PH, PW)``) of the blank square.
        stride: step between patch positions.
        fill: value of the blank, or ``"mean"`` for each channel's mean over the image.

    Returns:
        ``(H, W)`` drops, in probability units: positive where hiding the pixels hurts
        the class, negative where it helps, zero for a model that ignores its input.
    """
    x = ck.check_image(model, x, "occlusion")
    label = ck.check_label(model, label, "occlusion")
    C, H, W = x.shape
    ph, pw = _patch_pair(patch, "patch", (H, W))
    sh, sw = _patch_pair(stride, "stride", (H, W))
    if isinstance(fill, str):
        if fill != "mean":
            raise ValueError(
                f"occlusion: fill must be a number or 'mean', got {fill!r}"
            )
        fill_values = x.mean(axis=(1, 2))
    else:
        fill_values = np.full(C, float(fill))
    fill_values = fill_values.astype(x.dtype).reshape(C, 1, 1)
    corners = [(i, j) for i in _starts(H, ph, sh) for j in _starts(W, pw, sw)]
    base = _class_probability(model, ck.run_to(model, x[None], None), label)[0]
    drops = np.empty(len(corners), dtype=np.float64)
    for lo in range(0, len(corners), batch_size):
        chunk = corners[lo : lo + batch_size]
        copies = np.repeat(x[None], len(chunk), axis=0)
        for n, (i, j) in enumerate(chunk):
            copies[n, :, i : i + ph, j : j + pw] = fill_values
        outputs = ck.run_to(model, copies, None)
        drops[lo : lo + len(chunk)] = base - _class_probability(model, outputs, label)
    total = np.zeros((H, W))
    count = np.zeros((H, W))
    for (i, j), drop in zip(corners, drops, strict=True):
        total[i : i + ph, j : j + pw] += drop
        count[i : i + ph, j : j + pw] += 1
    # a pixel no patch covers (stride > patch) was never hidden: no drop measured, 0
    return np.divide(total, count, out=np.zeros((H, W)), where=count > 0)


def _input_gradient(model, x: np.ndarray, label: int) -> np.ndarray:
    """d score_label / dx for one image, score = the logit (output before softmax)."""
    score = ck.score_value(model)
    first = [layer for layer, srcs in model.nodes if 0 in srcs]
    saved_flags = [layer.need_input_grad for layer in first]
    with ck.grads_kept(model):
        try:
            for layer in first:  # the executor turns it off for training
                layer.need_input_grad = True
            scores = ck.run_to(model, x[None], score)
            dout = ck.score_gradient(scores, label)
            dx = ck.backward_between(model, dout, score, 0)
        finally:
            for layer, flag in zip(first, saved_flags, strict=True):
                layer.need_input_grad = flag
    return dx[0]


def saliency_map(model, x: np.ndarray, label: int) -> np.ndarray:
    """Seed 000's responsibility map: ``sum_c |d score_label / d x[c]|``, in [0, 1].

    The score is the class logit, before softmax (for a single sigmoid output z: z for
    class 1, -z for class 0). The map is divided by its maximum (0 stays "no
    influence").

    Returns:
        ``(H, W)`` in [0, 1].
    """
    x = ck.check_image(model, x, "saliency")
    label = ck.check_label(model, label, "saliency")
    grad = _input_gradient(model, x, label).astype(np.float64)
    return ck.normalise_max(np.abs(grad).sum(axis=0))


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(h, w)`` to ``size = (H, W)``, pixel centres aligned.

    Output pixel ``i`` samples the input at ``(i + 0.5) * h / H - 0.5`` (clamped to the
    border), the convention of PIL, OpenCV and ``torch`` with ``align_corners=False``.
    """
    h, w = image.shape
    H, W = size

    def coords(n_in: int, n_out: int):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    r0, r1, fr = coords(h, H)
    c0, c1, fc = coords(w, W)
    top = image[r0][:, c0] * (1 - fc) + image[r0][:, c1] * fc
    bottom = image[r1][:, c0] * (1 - fc) + image[r1][:, c1] * fc
    return top * (1 - fr[:, None]) + bottom * fr[:, None]


def grad_cam_target(model, layer=None) -> int:
    """Index of the layer whose output Grad-CAM uses.

    In a stack of layers, the chosen (default: last) Conv2D, or the activation right
    after it when there is one: Selvaraju et al. take the rectified feature maps (e.g.
    VGG's conv5_3 after its ReLU), which are what the rest of the network reads. In a
    graph (a residual or Inception network), the chosen layer, by default the last
    one whose output is feature maps ``(K, h, w)``: the last block's output, after
    its shortcut is added and rectified, what the classifier reads.
    """
    if is_chain(model):
        index = ck.conv_index(model, layer, "grad_cam")
        following = model.layers[index + 1] if index + 1 < len(model.layers) else None
        return index + 1 if isinstance(following, ck.ACTIVATIONS) else index
    shapes = model.value_shapes()[model.n_inputs :]
    if layer is None:
        maps = [j for j, shape in enumerate(shapes) if len(shape) == 3]
        if not maps:
            raise ValueError("grad_cam: the model has no layer that outputs maps")
        return maps[-1]
    index = ck.layer_index(model, layer, "grad_cam")
    if len(shapes[index]) != 3:
        raise ValueError(
            f"grad_cam: layer {index} ({model.layers[index]!r}) outputs "
            f"{shapes[index]}, not feature maps (K, h, w)"
        )
    return index


def grad_cam_map(model, x: np.ndarray, label: int, layer=None) -> np.ndarray:
    """Grad-CAM: ``ReLU(sum_k a_k A_k)`` with ``a_k = mean_ij d score / d A_k[i, j]``.

    ``A`` ``(K, h, w)`` is the output of the target layer (``grad_cam_target``); the
    layers are run one by one and the score (the logit) is backpropagated down to that
    layer only (in a graph, through every path from it to the score). The map is
    resized to the input (bilinear) and divided by its maximum.

    Returns:
        ``(H, W)`` in [0, 1] (all zeros when no feature map speaks for the class).
    """
    x = ck.check_image(model, x, "grad_cam")
    label = ck.check_label(model, label, "grad_cam")
    target = ck.layer_value(model, grad_cam_target(model, layer))
    score = ck.score_value(model)
    with ck.grads_kept(model):
        values = ck.run_values(model, x[None], score)
        A, scores = values[target], values[score]
        dA = ck.backward_between(model, ck.score_gradient(scores, label), score, target)
    A, dA = A[0].astype(np.float64), dA[0].astype(np.float64)
    weights = dA.mean(axis=(1, 2))  # (K,): global-average-pooled gradients
    cam = np.maximum(np.tensordot(weights, A, axes=1), 0.0)  # (h, w)
    return ck.normalise_max(np.maximum(resize_bilinear(cam, x.shape[1:]), 0.0))


def misclassified_indices(probs: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` wrong predictions made with the highest confidence.

    Args:
        probs: ``(N, K)`` class probabilities.
        y: ``(N,)`` true class ids (or one-hot ``(N, K)``).

    Returns:
        Up to ``k`` indices, most confident mistake first.
    """
    probs = np.asarray(probs)
    if probs.ndim == 2 and probs.shape[1] == 1:  # one sigmoid output: p(class 1)
        probs = np.hstack([1.0 - probs, probs])
    y = np.asarray(y)
    ids = y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != ids)
    confidence = probs[wrong, pred[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return wrong[order[:k]]
