"""Loaders for MNIST, Fashion-MNIST and CIFAR-10.

Each returns a ``Dataset`` (``x`` of shape ``(N, C, H, W)``, ``y`` int64 class ids,
``class_names``, ``source``, ``checksum_ok``). Where the files are searched, and in
which order, is described in ``cnnumpy.data.sources``.

Local files whose checksum differs from the official release still load when their
structure is valid (a ``ChecksumWarning`` is issued and ``checksum_ok`` is False); a
download must match the official checksum.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from cnnumpy.data import cifar, sources
from cnnumpy.data.dataset import (
    ChecksumWarning,
    Dataset,
    DatasetError,
    DownloadError,
    check_dtype,
    check_labels,
    check_path,
    check_split,
    convert_images,
)
from cnnumpy.data.download import cache_dir
from cnnumpy.data.download import download as download_file
from cnnumpy.data.idx import read_idx_pair
from cnnumpy.data.sources import CifarSpec, IdxSpec


def _idx_file(folder: Path, stem: str) -> Path | None:
    """``stem.gz`` or ``stem`` in ``folder``: a regular file first, else whatever
    exists under the name (a FIFO, say), which reading then refuses with a clear
    message instead of calling it absent."""
    paths = [folder / (stem + ".gz"), folder / stem]
    for path in paths:
        if path.is_file():
            return path
    return next((path for path in paths if path.exists()), None)


def _find_idx(spec: IdxSpec, split: str, path, download: bool, caller: str):
    """The (images, labels) files of ``split``: found, or downloaded into the cache."""
    stems = spec.files[split]
    tried = []
    for label, folder in sources.candidate_dirs(spec, path):
        files = [_idx_file(folder, stem) for stem in stems]
        if all(files):
            return files
        state = "no such folder" if not folder.is_dir() else "files absent"
        tried.append(f"{label} {folder} ({state})")
    if download and path is None:
        target = cache_dir() / spec.subdirs[0]
        sizes = sources.idx_download_bytes(spec, split)
        try:
            return [
                _download_idx(spec, target, stem, size)
                for stem, size in zip(stems, sizes, strict=True)
            ]
        except DownloadError as exc:
            tried.append(f"download into {target}: {exc}")
    what = f"the {spec.title} {split!r} files ({', '.join(s + '[.gz]' for s in stems)})"
    raise DatasetError(
        sources.not_found_message(caller, what, tried, download, path is not None)
    )


def _download_idx(spec: IdxSpec, target: Path, stem: str, max_bytes: int) -> Path:
    existing = _idx_file(target, stem)
    if existing is not None:
        return existing
    return download_file(
        [mirror + stem + ".gz" for mirror in spec.mirrors],
        target / (stem + ".gz"),
        md5=spec.gz_md5[stem],
        gunzip_md5=spec.raw_md5[stem],
        timeout=sources.DOWNLOAD_TIMEOUT,
        max_bytes=max_bytes,
    )


def _checksum_status(
    title: str,
    source: str,
    md5s: dict[str, str],
    official: dict[str, str],
    stacklevel: int = 3,
) -> bool:
    """True when every file (keyed by its official name) matches; else warn the user
    (``stacklevel`` counts the frames up to the public loader's caller)."""
    bad = [name for name, md5 in md5s.items() if official.get(name) != md5]
    if bad:
        warnings.warn(
            f"{title}: {', '.join(bad)} in {source} differ from the official release "
            "(md5); loaded anyway since the structure is valid",
            ChecksumWarning,
            stacklevel=stacklevel,
        )
    return not bad


def _stem(path: str) -> str:
    return os.path.basename(path).removesuffix(".gz")


def _check_size(spec, split: str, n: int, source: str) -> None:
    if n != spec.sizes[split]:
        raise DatasetError(
            f"{spec.title} {split!r}: expected {spec.sizes[split]} examples, "
            f"found {n} in {source}"
        )


def _load_idx_dataset(spec: IdxSpec, split, path, dtype, download, caller) -> Dataset:
    check_split(split, caller)
    dtype = check_dtype(dtype, caller)
    check_path(path, caller)
    images_path, labels_path = _find_idx(spec, split, path, download, caller)
    images, labels, md5s = read_idx_pair(images_path, labels_path)
    source = f"{images_path}, {labels_path}"
    _check_size(spec, split, len(images), source)
    y = check_labels(labels, len(spec.class_names), os.fspath(labels_path))
    by_stem = {_stem(name): md5 for name, md5 in md5s.items()}
    checksum_ok = _checksum_status(
        spec.title, source, by_stem, spec.raw_md5, stacklevel=4
    )
    x = convert_images(images.reshape(-1, 1, 28, 28), dtype)
    if x.dtype == np.uint8:
        x = x.copy()  # own, writable memory instead of a view on the file bytes
    return Dataset(x, y, spec.class_names, spec.name, split, source, checksum_ok)


def load_mnist(
    split: str = "train",
    path: str | os.PathLike | None = None,
    dtype: str | np.dtype = "uint8",
    download: bool = True,
) -> Dataset:
    """The MNIST handwritten digits (LeCun et al., 1998): 60,000 train, 10,000 test.

    Args:
        split: ``"train"`` or ``"test"``.
        path: a folder holding the four IDX files (or a data root with ``mnist/``); when
            given, only it is searched.
        dtype: ``"uint8"`` (0..255) or ``"float32"``/``"float64"`` (scaled to [0, 1]).
        download: fetch the files into the cache when no local copy is found.

    Returns:
        A ``Dataset`` with x ``(N, 1, 28, 28)`` and y int64 ``(N,)`` in 0..9.

    Raises:
        DatasetError: files not found anywhere (the message lists every place tried),
            malformed, or a download failed.
    """
    return _load_idx_dataset(sources.MNIST, split, path, dtype, download, "load_mnist")


def load_fashion_mnist(
    split: str = "train",
    path: str | os.PathLike | None = None,
    dtype: str | np.dtype = "uint8",
    download: bool = True,
) -> Dataset:
    """Fashion-MNIST (Xiao et al., 2017): Zalando article images in MNIST's format.

    Arguments, return value and errors as ``load_mnist``; besides the usual places, the
    Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) is
    searched before downloading.
    """
    spec = sources.FASHION_MNIST
    return _load_idx_dataset(spec, split, path, dtype, download, "load_fashion_mnist")


def _find_cifar(spec: CifarSpec, path, download: bool, caller: str) -> Path:
    tried = []
    for label, place in sources.candidate_dirs(spec, path):
        found = cifar.find_source(place) if place.exists() else None
        if found is not None:
            return found
        state = "no such file or folder" if not place.exists() else "no CIFAR-10 files"
        tried.append(f"{label} {place} ({state})")
    if download and path is None:
        target = cache_dir() / cifar.ARCHIVE
        try:
            return download_file(
                spec.urls,
                target,
                md5=spec.archive_md5,
                timeout=sources.DOWNLOAD_TIMEOUT,
                max_bytes=spec.archive_bytes,
            )
        except DownloadError as exc:
            tried.append(f"download into {target}: {exc}")
    what = f"{spec.title} ({cifar.ARCHIVE} or {cifar.FOLDER}/)"
    raise DatasetError(
        sources.not_found_message(caller, what, tried, download, path is not None)
    )


def load_cifar10(
    split: str = "train",
    path: str | os.PathLike | None = None,
    dtype: str | np.dtype = "uint8",
    download: bool = True,
) -> Dataset:
    """CIFAR-10 (Krizhevsky, 2009): 32x32 colour images of 10 classes, 50,000 + 10,000.

    Reads the official "python version": ``cifar-10-python.tar.gz`` (streamed, nothing
    is extracted) or the extracted ``cifar-10-batches-py/`` folder. The pickled batches
    are read with a restricted unpickler that refuses anything but array reconstruction.

    Args:
        split: ``"train"`` (``data_batch_1..5``) or ``"test"`` (``test_batch``).
        path: the archive, the batch folder, or a folder holding either; when
            given, only it is searched.
        dtype: ``"uint8"`` (0..255) or ``"float32"``/``"float64"`` (scaled to [0, 1]).
        download: fetch the archive into the cache when no local copy is found.

    Returns:
        A ``Dataset`` with x ``(N, 3, 32, 32)`` (channels R, G, B) and y int64 ``(N,)``.
    """
    caller = "load_cifar10"
    check_split(split, caller)
    dtype = check_dtype(dtype, caller)
    check_path(path, caller)
    spec = sources.CIFAR10
    source = _find_cifar(spec, path, download, caller)
    images, labels, names, md5s = cifar.read_split(source, split)
    _check_size(spec, split, len(images), os.fspath(source))
    names = names or spec.class_names
    if len(names) != len(spec.class_names):
        raise DatasetError(f"{source}: expected 10 class names, got {names}")
    y = check_labels(labels, len(names), os.fspath(source))
    checksum_ok = _checksum_status(spec.title, os.fspath(source), md5s, spec.batch_md5)
    x = convert_images(images, dtype)
    return Dataset(x, y, tuple(names), spec.name, split, os.fspath(source), checksum_ok)
