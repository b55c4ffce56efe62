"""The cnnumpy model file format: safetensors bytes with checked JSON metadata.

A model file is a safetensors file (https://github.com/huggingface/safetensors): an
8-byte little-endian header length, a JSON header describing every tensor, then the raw
tensor bytes. cnnumpy puts in it
- tensors ``layers.{i}.{name}``: every parameter and state array (BatchNorm running
  statistics), and ``optimizer.{slot}.{name}``: the optimiser's moments;
- metadata (JSON strings): the format version, the cnnumpy version, the architecture
  (every layer's class name and config), the loss, metrics, optimiser config, step count
  and learning rate, the training history, any training state (resume), and a SHA-256 of
  the metadata and the tensor bytes, so that a flipped byte anywhere is detected.

Loading never executes code: no pickle; the header is parsed as JSON and checked field
by field before NumPy reads a single tensor, layers are rebuilt only from the classes
registered in ``cnnumpy.layers.LAYERS``, and nothing is written into a model before
everything has been read and checked. Reading is bounded by what the file declares:
8 bytes, then the header (checked by ``cnnumpy.saving.header``), then, once the file's
size is exactly what the header declares, the tensors. A loader that knows what the
file should hold (``cnnumpy.saving``) opens it with ``open_model_file`` and checks
every declared tensor's name and shape against the architecture before a byte of
tensor data is read. Only regular files are read (not FIFOs or devices). Every write
goes through ``cnnumpy.fileio.atomic_open``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import IO

import numpy as np

from cnnumpy.fileio import file_kind
from cnnumpy.saving.header import (
    DTYPES,
    FORMAT,
    FORMAT_VERSION,
    ModelFileError,
    TensorInfo,
    check_specs,
    decode_metadata,
    header_length,
    parse_header,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFile",
    "ModelFileError",
    "TensorInfo",
    "digest",
    "dump_bytes",
    "load_bytes",
    "load_file",
    "open_model_file",
]

_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX only


def digest(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    """SHA-256 of the metadata and of every tensor: the file's ``sha256`` field.

    The metadata is hashed as canonical JSON, without the digest.
    """
    sha = hashlib.sha256()
    canonical = {k: v for k, v in metadata.items() if k != "sha256"}
    sha.update(json.dumps(canonical, sort_keys=True).encode())
    for name in sorted(tensors):
        arr = np.asarray(tensors[name], order="C")
        sha.update(name.encode())
        sha.update(str(arr.dtype).encode() + str(arr.shape).encode())
        sha.update(arr.tobytes())
    return sha.hexdigest()


def dump_bytes(tensors: dict[str, np.ndarray], meta: dict) -> bytes:
    """Serialise tensors and a JSON-able metadata dict to safetensors bytes."""
    from safetensors.numpy import save

    tensors = {
        k: np.asarray(v, order="C") for k, v in tensors.items()
    }  # keeps 0-d arrays
    metadata = {key: json.dumps(value) for key, value in meta.items()}
    metadata.update(format=FORMAT, format_version=str(FORMAT_VERSION))
    metadata["sha256"] = digest(tensors, metadata)
    return save(tensors, metadata=metadata)


def load_bytes(data: bytes, where: str = "load") -> tuple[dict[str, np.ndarray], dict]:
    """Parse and verify safetensors bytes from ``dump_bytes``: (tensors, metadata)."""
    with ModelFile(io.BytesIO(data), len(data), where) as model_file:
        return model_file.read_tensors(), model_file.metadata


def load_file(path, where: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a model file: (tensors, metadata).

    Whatever its header declares is read, once checked against the file's size; to
    check the declared tensors against what they should be first, use
    ``open_model_file``.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: as ``open_model_file``.
    """
    with open_model_file(path, where) as model_file:
        return model_file.read_tensors(), model_file.metadata


def open_model_file(path, where: str) -> ModelFile:
    """Open a model file and read its header: a ``ModelFile``, tensors still unread.

    Only what the header declares is ever read, and only once the declaration has been
    checked against the file's size: a 64 GB file with a garbage header costs 8 bytes
    of reading, not 64 GB of memory.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: a special file (FIFO, device, directory), or a file that is
            truncated, corrupted, foreign or from a newer format version.
    """
    f = _open_regular_file(path, where)
    try:
        return ModelFile(f, os.fstat(f.fileno()).st_size, where)
    except BaseException:
        f.close()
        raise


class ModelFile:
    """A model file whose header has been read and checked; its tensors are not read.

    The 8-byte header length is checked against the size, then the header (every
    tensor's dtype, shape and place), then the size must be exactly 8 + header + the
    tensor bytes the header declares. The caller may then compare ``declared`` (name
    -> ``TensorInfo``) and ``metadata`` with what it expects, before ``read_tensors``
    allocates anything. Use it in a ``with`` block: the file is closed at its end.
    """

    def __init__(self, f: IO[bytes], size: int, where: str) -> None:
        self._f, self.where = f, where
        n = header_length(f.read(8), size, where)
        self._specs, self._meta_strings = parse_header(f.read(n), where)
        data_len = check_specs(self._specs, where)
        if size != 8 + n + data_len:
            raise ModelFileError(
                f"{where}: the file has {size} bytes, but its header declares "
                f"{8 + n + data_len} (8 + {n} of header + {data_len} of tensors); it "
                "is truncated or has bytes appended"
            )
        self.declared = {
            name: TensorInfo(tuple(spec["shape"]), DTYPES[spec["dtype"]])
            for name, spec in self._specs.items()
        }
        self.metadata = decode_metadata(self._meta_strings, where)

    def read_tensors(self) -> dict[str, np.ndarray]:
        """Read every declared tensor and verify the checksum."""
        tensors = _read_tensors(self._f, self._specs, self.where)
        if digest(tensors, self._meta_strings) != self._meta_strings.get("sha256"):
            raise ModelFileError(
                f"{self.where}: checksum mismatch (the file is corrupted)"
            )
        return tensors

    def __enter__(self) -> ModelFile:
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


def _open_regular_file(path, where: str) -> IO[bytes]:
    """Open ``path`` for reading if it is a regular file.

    A FIFO is opened without blocking, so that a path swapped for one after the first
    check cannot hang the caller waiting for a writer.
    """
    path = Path(path)
    try:
        kind = file_kind(path.stat().st_mode)
        fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file: {path}") from None
    try:
        if kind == "regular file":
            kind = file_kind(os.fstat(fd).st_mode)
        if kind != "regular file":
            raise ModelFileError(f"{where}: {path} is a {kind}, not a model file")
        if _O_NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_tensors(f: IO[bytes], specs: dict, where: str) -> dict[str, np.ndarray]:
    """Read every tensor, in file order, straight into an array of its own."""
    tensors = {}
    for name, spec in sorted(specs.items(), key=lambda item: item[1]["data_offsets"]):
        array = np.empty(spec["shape"], dtype=DTYPES[spec["dtype"]])
        buffer = array.reshape(-1).view(np.uint8)
        if f.readinto(buffer) != buffer.size:  # the size was checked: it changed
            raise ModelFileError(f"{where}: the file was truncated while being read")
        tensors[name] = array
    return tensors
