"""The IDX format of MNIST and Fashion-MNIST, gzipped or raw.

An IDX file is a big-endian header followed by the array, row-major::

    magic   = 0x00 0x00 TYPE NDIM      (TYPE 0x08: unsigned byte)
    dims    = NDIM x uint32            (N, then 28, 28 for images)
    payload = prod(dims) values

so MNIST images start with the magic number 0x00000803 (uint8, 3 dimensions) and labels
with 0x00000801 (uint8, 1 dimension). Every field is checked against the file length
before a single value is read.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib

import numpy as np

from cnnumpy.data.dataset import DatasetError, open_regular

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_UBYTE = 0x08
_GZIP_SIGNATURE = b"\x1f\x8b"
# The largest raw file accepted (training images are 47 MB): a bound against gzip bombs.
MAX_RAW_BYTES = 512 * 1024 * 1024


def read_maybe_gzip(path: str | os.PathLike, max_bytes: int = MAX_RAW_BYTES) -> bytes:
    """The content of ``path``, decompressed when it starts with the gzip signature.

    Raises:
        DatasetError: unreadable file, not a regular file (a FIFO would hang),
            corrupt or truncated gzip stream, or content larger than ``max_bytes``.
    """
    try:
        with open_regular(path) as raw:
            gzipped = raw.read(2) == _GZIP_SIGNATURE
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
            data = stream.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read {os.fspath(path)}: {exc}") from exc
    if len(data) > max_bytes:
        raise DatasetError(
            f"{os.fspath(path)}: content larger than {max_bytes} bytes, refusing it"
        )
    return data


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def parse_idx(data: bytes, magic: int, what: str = "IDX data") -> np.ndarray:
    """Decode one uint8 IDX array, checking magic number, dimensions and length.

    Args:
        data: the raw (decompressed) file content.
        magic: the expected magic number, ``IMAGES_MAGIC`` or ``LABELS_MAGIC``.
        what: a name for error messages (usually the file path).

    Returns:
        A read-only uint8 array of shape ``dims`` (a view on ``data``).
    """
    if len(data) < 4:
        raise DatasetError(f"{what}: {len(data)} bytes, too short for an IDX header")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise DatasetError(
            f"{what}: bad magic number 0x{found:08X}, expected 0x{magic:08X} "
            f"(uint8, {magic & 0xFF} dimension(s)); is this the right IDX file?"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{what}: truncated header ({len(data)} < {header} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "has trailing bytes"
        raise DatasetError(
            f"{what}: file {state}: dimensions {dims} need {expected} bytes, "
            f"found {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_pair(
    images_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    image_size: tuple[int, int] = (28, 28),
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Read an images file and its labels file.

    Returns:
        ``(images, labels, md5s)``: images uint8 ``(N, H, W)``, labels uint8 ``(N,)``,
        and the md5 of each file's decompressed content keyed by path.
    """
    images_raw = read_maybe_gzip(images_path)
    labels_raw = read_maybe_gzip(labels_path)
    images = parse_idx(images_raw, IMAGES_MAGIC, os.fspath(images_path))
    labels = parse_idx(labels_raw, LABELS_MAGIC, os.fspath(labels_path))
    if images.shape[1:] != tuple(image_size):
        raise DatasetError(
            f"{os.fspath(images_path)}: expected images of {image_size[0]}x"
            f"{image_size[1]} pixels, got {images.shape[1]}x{images.shape[2]}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{os.fspath(images_path)} holds {images.shape[0]} images but "
            f"{os.fspath(labels_path)} holds {labels.shape[0]} labels"
        )
    md5s = {
        os.fspath(images_path): md5_hex(images_raw),
        os.fspath(labels_path): md5_hex(labels_raw),
    }
    return images, labels, md5s
