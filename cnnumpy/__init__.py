"""cnnumpy: convolutional neural networks from scratch in NumPy."""

from cnnumpy import (
    callbacks,
    data,
    functional,
    initializers,
    io,
    layers,
    losses,
    metrics,
    optimizers,
    schedules,
    visualize,
    zoo,
)
from cnnumpy.folderlock import RunFolderLocked
from cnnumpy.io import ModelFileError, load_model
from cnnumpy.model import Sequential
from cnnumpy.rng import seed
from cnnumpy.training import TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "ModelFileError",
    "RunFolderLocked",
    "Sequential",
    "TrainingDiverged",
    "__version__",
    "callbacks",
    "data",
    "functional",
    "initializers",
    "io",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "optimizers",
    "schedules",
    "seed",
    "visualize",
    "zoo",
]
