"""``cnnumpy predict RUN IMAGE...``: the top classes of each image file."""

from __future__ import annotations

import numpy as np

from cnnumpy.cli import runs
from cnnumpy.cli.tools import class_outputs, shown


def predict(args) -> int:
    """The top classes of each image file, with their probabilities (or scores)."""
    model, config, _ = runs.open_run(args.target)
    shape = tuple(model.input_shape)
    images = np.stack([runs.read_image(p, shape, args.invert) for p in args.images])
    x = runs.model_input(images, model, config, args.target)
    outputs, probabilities = class_outputs(model, x)
    names = runs.class_names_of(config, outputs.shape[1])
    k = min(args.top, outputs.shape[1])
    for path, row in zip(args.images, outputs, strict=True):
        best = np.argsort(-row, kind="stable")[:k]
        ranked = ", ".join(f"{names[i]} ({shown(row[i], probabilities)})" for i in best)
        print(f"{path}: {ranked}")
    return 0
