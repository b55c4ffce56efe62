"""``cnnumpy visualize RUN``: feature maps, filters, occlusion, saliency and Grad-CAM
of one image (a test image by index, or an image file) as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnumpy import visualize as vis
from cnnumpy.cli import runs
from cnnumpy.cli.runs import UsageError
from cnnumpy.cli.tools import check_shape, class_outputs, data_source, out_folder, shown

METHODS = ("features", "filters", "occlusion", "saliency", "gradcam")
CONV_METHODS = ("features", "filters", "gradcam")  # they read a Conv2D layer


def visualize(args) -> int:
    """Feature maps, filters, occlusion, saliency and Grad-CAM as PNG files."""
    model, config, folder = runs.open_run(args.target)
    out = out_folder(args.out, folder / "visualize")
    methods = _methods(args.method, model)
    needs_image = [m for m in methods if m != "filters"]
    x = tag = target = None
    if needs_image:
        x, tag, target = _explained(args, model, config)
    for method in methods:
        for path in _draw(method, model, x, target, out, tag):
            print(path)
    return 0


def _explained(args, model, config: dict):
    """(image (C, H, W) preprocessed, tag for file names, class to explain), after a
    line naming the image, its true and predicted class, and the class explained."""
    x, label, tag = _one_image(args, model, config)
    outputs, probabilities = class_outputs(model, x[None])
    row = outputs[0]
    names = runs.class_names_of(config, len(row))
    predicted = int(np.argmax(row))
    target = predicted if args.label is None else args.label
    if not 0 <= target < len(names):
        raise UsageError(f"--label {target}: expected 0..{len(names) - 1}")
    truth = "" if label is None else f"true {names[label]}, "
    print(
        f"{tag}: {truth}predicted {names[predicted]} "
        f"({shown(row[predicted], probabilities)}); maps for class {names[target]}"
    )
    return x, tag, target


def _one_image(args, model, config: dict):
    """(image (C, H, W) preprocessed, true label or None, tag for file names)."""
    if args.image is not None:
        raw = runs.read_image(args.image, tuple(model.input_shape), args.invert)
        label, tag = None, Path(args.image).stem
    else:
        name, data_dir = data_source(args, config, "give --image, or --dataset")
        ds = runs.load_split(name, "test", data_dir)
        check_shape(model, ds)
        if not 0 <= args.index < len(ds):
            raise UsageError(
                f"--index {args.index}: the {name} test split has "
                f"{len(ds):,} images (0..{len(ds) - 1})"
            )
        raw, label, tag = ds.x[args.index], int(ds.y[args.index]), f"test{args.index}"
    return runs.model_input(raw[None], model, config, args.target)[0], label, tag


def _methods(asked: list[str], model) -> list[str]:
    """The methods asked for that apply: those reading a Conv2D layer are skipped, one
    line each, for a model without one (an MLP); none left is a UsageError."""
    methods = list(dict.fromkeys(asked))
    if any(type(layer).__name__ == "Conv2D" for layer in model.layers):
        return methods
    skipped = [m for m in methods if m in CONV_METHODS]
    kept = [m for m in methods if m not in CONV_METHODS]
    if not kept:
        raise UsageError(
            f"{', '.join(skipped)}: the model has no Conv2D layer "
            "(occlusion and saliency work on any model)"
        )
    for method in skipped:
        print(f"{method}: skipped, the model has no Conv2D layer")
    return kept


def _draw(method: str, model, x, label, out: Path, tag) -> list[Path]:
    if method == "filters":
        path = out / "filters.png"
        vis.filters(model, save=path)
        return [path]
    if method == "features":
        return _feature_maps(model, x, out, tag)
    path = out / f"{method}-{tag}.png"
    if method == "occlusion":
        H, W = x.shape[1:]
        patch = max(2, min(H, W) // 4)
        stride = max(1, patch // 4)
        vis.occlusion(model, x, label, patch=patch, stride=stride, save=path)
    elif method == "saliency":
        vis.saliency(model, x, label, save=path)
    else:
        vis.grad_cam(model, x, label, save=path)
    return [path]


def _feature_maps(model, x, out: Path, tag) -> list[Path]:
    """One PNG of feature maps per Conv2D layer (after its activation, if any)."""
    convs = [
        i for i, layer in enumerate(model.layers) if type(layer).__name__ == "Conv2D"
    ]
    if not convs:
        raise UsageError("features: the model has no Conv2D layer")
    paths = []
    for i in convs:
        index = vis.grad_cam_target(model, i)
        path = out / f"features-layer{index}-{tag}.png"
        vis.feature_maps(model, x, index, save=path)
        paths.append(path)
    return paths
