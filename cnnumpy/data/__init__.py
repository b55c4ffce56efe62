"""Data sets, preprocessing, augmentation and mini-batches.

Loaders return a ``Dataset`` (``x`` ``(N, C, H, W)``, ``y`` int64, ``class_names``,
``source``, ``checksum_ok``) that also unpacks as ``x, y``::

    train = load_mnist("train", dtype="float32")
    x_test, y_test = load_mnist("test", dtype="float32")

Where files are searched (``path=``, ``$CNNUMPY_DATA``, the user cache, system folders,
then a verified download) is documented in ``cnnumpy.data.sources``.
"""

from cnnumpy.data.batching import BatchIterator, train_val_split
from cnnumpy.data.dataset import (
    ChecksumWarning,
    Dataset,
    DatasetError,
    DownloadError,
    UnsafePickleError,
)
from cnnumpy.data.datasets import load_cifar10, load_fashion_mnist, load_mnist
from cnnumpy.data.download import cache_dir, download
from cnnumpy.data.sample import load_mnist_sample
from cnnumpy.data.text import (
    Vocabulary,
    char_windows,
    load_text,
    stdlib_corpus,
    tiny_shakespeare,
)
from cnnumpy.data.transforms import (
    cifar_augment,
    compose,
    cutout,
    normalize,
    one_hot,
    random_crop,
    random_flip,
    standardize,
    to_float,
)

__all__ = [
    "BatchIterator",
    "ChecksumWarning",
    "Dataset",
    "DatasetError",
    "DownloadError",
    "UnsafePickleError",
    "Vocabulary",
    "cache_dir",
    "char_windows",
    "cifar_augment",
    "compose",
    "cutout",
    "download",
    "load_cifar10",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_sample",
    "load_text",
    "normalize",
    "one_hot",
    "random_crop",
    "random_flip",
    "standardize",
    "stdlib_corpus",
    "tiny_shakespeare",
    "to_float",
    "train_val_split",
]
