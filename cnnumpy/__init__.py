"""cnnumpy: convolutional neural networks from scratch in NumPy."""

from cnnumpy import (
    callbacks,
    data,
    engine,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    saving,
    schedules,
    tta,
    visualize,
    zoo,
)
from cnnumpy.divergence import TrainingDiverged
from cnnumpy.folderlock import RunFolderLocked
from cnnumpy.graph import Input
from cnnumpy.model import Model
from cnnumpy.receptive_field import receptive_field
from cnnumpy.rng import seed
from cnnumpy.saving import ModelFileError
from cnnumpy.saving.loading import load_model
from cnnumpy.sequential import Sequential
from cnnumpy.version import __version__

__all__ = [
    "Input",
    "Model",
    "ModelFileError",
    "RunFolderLocked",
    "Sequential",
    "TrainingDiverged",
    "__version__",
    "callbacks",
    "data",
    "engine",
    "initializers",
    "saving",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "optimizers",
    "receptive_field",
    "schedules",
    "seed",
    "tta",
    "visualize",
    "zoo",
]
