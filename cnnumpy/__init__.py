"""cnnumpy: convolutional neural networks from scratch in NumPy."""

from cnnumpy import initializers, layers
from cnnumpy.rng import seed

__version__ = "0.1.0"

__all__ = ["__version__", "initializers", "layers", "seed"]
