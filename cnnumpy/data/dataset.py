"""The value every loader returns, and the errors and warnings of ``cnnumpy.data``."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from cnnumpy.fileio import file_kind


class DatasetError(ValueError):
    """A data set could not be found, read, validated or downloaded."""


class UnsafePickleError(DatasetError):
    """A pickle asked for a Python object that the CIFAR-10 format never needs."""


class DownloadError(DatasetError):
    """Every download location failed; the message lists each one and why."""


class ChecksumWarning(UserWarning):
    """Local files loaded fine but are not byte-identical to the official release."""


@dataclass(frozen=True)
class Dataset:
    """One split of a data set, ready for a model.

    Unpacks like a pair, so ``x, y = load_mnist()`` works.

    Attributes:
        x: the images, ``uint8`` in [0, 255] or float in [0, 1].
        y: integer class ids, ``int64``.
        class_names: the name of each class id, in order.
        name: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` or ``"mnist-sample"``.
        split: ``"train"`` or ``"test"``.
        source: where the arrays came from (the files read, or the package and file that
            shipped them).
        checksum_ok: True when the files matched the official checksums, False when they
            did not (they were still loaded, and a ``ChecksumWarning`` was issued),
            None when no official checksum is known.

    Shape:
        - x: ``(N, C, H, W)``: ``(N, 1, 28, 28)`` for the MNISTs, ``(N, 3, 32, 32)`` for
          CIFAR-10.
        - y: ``(N,)``.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    name: str
    split: str
    source: str
    checksum_ok: bool | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.x, self.y))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, "
            f"x={self.x.shape} {self.x.dtype}, y={self.y.shape} {self.y.dtype}, "
            f"classes={self.num_classes}, source={self.source!r}, "
            f"checksum_ok={self.checksum_ok})"
        )


def check_dtype(dtype, caller: str) -> np.dtype:
    """The requested image dtype: uint8, float32 or float64."""
    try:
        wanted = np.dtype(dtype)
    except TypeError:
        wanted = None
    if wanted not in (np.uint8, np.float32, np.float64):
        raise ValueError(
            f"{caller}: expected dtype 'uint8', 'float32' or 'float64', got {dtype!r}"
        )
    return wanted


def convert_images(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast uint8 images to ``dtype``: uint8 unchanged, floats scaled to [0, 1]."""
    if dtype == np.uint8:
        return x
    return x.astype(dtype) / dtype.type(255)


def check_split(split: str, caller: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"{caller}: expected split 'train' or 'test', got {split!r}")
    return split


def check_path(path, caller: str):
    """``path=`` of a loader: None, or a str or os.PathLike naming a file or folder."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{caller}: path must be a str or os.PathLike (a file or folder), got "
            f"{type(path).__name__} {path!r:.60}"
        )
    return path


def check_labels(y: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    """Labels as int64, all in ``[0, num_classes)``."""
    y = np.asarray(y).astype(np.int64, copy=False)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetError(
            f"{what}: labels must lie in [0, {num_classes - 1}], "
            f"got values from {y.min()} to {y.max()}"
        )
    return y


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for reading in binary mode; anything but a regular file is refused.

    A FIFO (named pipe) given as a data set file would block ``open`` until some
    writer appears, and a device may never end. The type is checked before opening,
    and again on the open file itself (``fstat``), so that a path swapped in between
    cannot slip through; ``O_NONBLOCK`` keeps that open from waiting on a FIFO and
    changes nothing for a regular file.

    Raises:
        DatasetError: ``path`` is a FIFO, a directory, a device or a socket.
        OSError: ``path`` cannot be opened (missing, no permission, ...).
    """
    _check_regular(path, os.stat(path).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        _check_regular(path, os.fstat(fd).st_mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_regular(path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = file_kind(mode)
    raise DatasetError(f"{os.fspath(path)} is not a regular file (it is a {kind})")
