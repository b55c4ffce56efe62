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
8 bytes, then the header, then, once the file's size is exactly what the header
declares, the tensors. A loader that knows what the file should hold (``cnnumpy.io``)
opens it with ``open_model_file`` and checks every declared tensor's name and shape
against the architecture before a byte of tensor data is read. Only regular files are
read (not FIFOs or devices). Every write goes through ``cnnumpy.fileio.atomic_open``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np

from cnnumpy.fileio import file_kind

FORMAT = "cnnumpy"
FORMAT_VERSION = 1
_MAX_HEADER = 100_000_000
# A tensor's shape: even an empty one ((0, 2**62)) must be one NumPy can create.
_MAX_RANK = 32
_MAX_ELEMENTS = 2**40
# Tensors in one header. A model of a thousand layers with Adam holds a few thousand;
# the bound is checked while the JSON is parsed, so that a header of a million tiny
# entries costs a fraction of a second, not seconds and a gigabyte of dicts.
_MAX_TENSORS = 100_000
# Nesting of the header and of each metadata value. cnnumpy writes at most ~6 levels;
# far deeper JSON would only reach Python's recursion limit later, in some repr().
_MAX_DEPTH = 64
# safetensors stores little-endian values, whatever the machine
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX only


class ModelFileError(ValueError):
    """A model file that cannot be loaded.

    It is truncated, corrupted, foreign or inconsistent.
    """


class TensorInfo(NamedTuple):
    """What the header declares about one tensor, known before its bytes are read.

    It has the ``shape`` and ``dtype`` of an array, so shape checks written for
    arrays work on it unchanged.
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


# -- low level: bytes <-> (tensors, metadata) ------------------------------------------
def _digest(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    """SHA-256 of the metadata and of every tensor.

    The metadata is hashed as canonical JSON, without the digest.
    """
    digest = hashlib.sha256()
    canonical = {k: v for k, v in metadata.items() if k != "sha256"}
    digest.update(json.dumps(canonical, sort_keys=True).encode())
    for name in sorted(tensors):
        arr = np.asarray(tensors[name], order="C")
        digest.update(name.encode())
        digest.update(str(arr.dtype).encode() + str(arr.shape).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def dump_bytes(tensors: dict[str, np.ndarray], meta: dict) -> bytes:
    """Serialise tensors and a JSON-able metadata dict to safetensors bytes."""
    from safetensors.numpy import save

    tensors = {
        k: np.asarray(v, order="C") for k, v in tensors.items()
    }  # keeps 0-d arrays
    metadata = {key: json.dumps(value) for key, value in meta.items()}
    metadata.update(format=FORMAT, format_version=str(FORMAT_VERSION))
    metadata["sha256"] = _digest(tensors, metadata)
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
        n = _header_length(f.read(8), size, where)
        self._specs, self._meta_strings = _parse_header(f.read(n), where)
        data_len = _check_specs(self._specs, where)
        if size != 8 + n + data_len:
            raise ModelFileError(
                f"{where}: the file has {size} bytes, but its header declares "
                f"{8 + n + data_len} (8 + {n} of header + {data_len} of tensors); it "
                "is truncated or has bytes appended"
            )
        self.declared = {
            name: TensorInfo(tuple(spec["shape"]), _DTYPES[spec["dtype"]])
            for name, spec in self._specs.items()
        }
        self.metadata = _decode_metadata(self._meta_strings, where)

    def read_tensors(self) -> dict[str, np.ndarray]:
        """Read every declared tensor and verify the checksum."""
        tensors = _read_tensors(self._f, self._specs, self.where)
        if _digest(tensors, self._meta_strings) != self._meta_strings.get("sha256"):
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


def _header_length(prefix: bytes, size: int, where: str) -> int:
    """The header length the first 8 bytes declare, if the file can hold it."""
    if len(prefix) < 8:
        raise ModelFileError(f"{where}: not a cnnumpy model file (only {size} bytes)")
    n = int.from_bytes(prefix, "little")
    if n < 2 or n > _MAX_HEADER or 8 + n > size:
        raise ModelFileError(
            f"{where}: truncated or not a safetensors file "
            f"(header of {n} bytes in a file of {size} bytes)"
        )
    return n


def _parse_header(data: bytes, where: str) -> tuple[dict, dict]:
    """Check the safetensors header (the JSON after the length) by hand.

    Returns:
        (tensor specs, metadata strings).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{where}: the header is not valid: not UTF-8") from None
    header = _parse_json(text, "the header", where, max_tensors=_MAX_TENSORS)
    if not isinstance(header, dict):
        raise ModelFileError(f"{where}: corrupted header (not a JSON object)")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{where}: not a cnnumpy model file (no cnnumpy metadata)")
    if not all(isinstance(v, str) for v in meta.values()):
        raise ModelFileError(f"{where}: corrupted metadata (values must be strings)")
    _check_version(meta.get("format_version"), where)
    return header, meta


class _TooManyObjects(Exception):
    """Raised from inside ``json.loads`` to stop parsing a header that is too long."""


def _parse_json(text: str, what: str, where: str, max_tensors: int | None = None):
    """``json.loads(text)``, or a ModelFileError naming ``what`` and what is wrong.

    For the header (``max_tensors`` given) the JSON objects are counted while being
    parsed, so that parsing stops at the first tensor too many; its nesting is fixed
    by the format (``_check_specs``). A metadata value's nesting is bounded by
    ``_MAX_DEPTH``.
    """
    objects = 0

    def count_objects(pairs: list[tuple]) -> dict:
        nonlocal objects
        objects += 1
        if objects > max_tensors + 2:  # + the metadata and the header around all
            raise _TooManyObjects
        return dict(pairs)

    hook = None if max_tensors is None else count_objects
    try:
        value = json.loads(text, object_pairs_hook=hook)
    except _TooManyObjects:
        reason = f"it declares more than {max_tensors} tensors"
    except RecursionError:
        reason = "it is nested too deeply"
    except json.JSONDecodeError as exc:
        reason = f"not JSON ({exc.msg} at character {exc.pos})"
    except ValueError:  # an int beyond sys.get_int_max_str_digits() (4300 digits)
        reason = "a number has too many digits"
    else:
        if max_tensors is not None or _depth(value) <= _MAX_DEPTH:
            return value
        reason = f"it is nested too deeply (more than {_MAX_DEPTH} levels)"
    raise ModelFileError(f"{where}: {what} is not valid: {reason}")


def _depth(value) -> int:
    """How deeply parsed JSON nests lists and dicts, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _check_version(version, where: str) -> None:
    if not (
        isinstance(version, str)
        and version.isascii()
        and version.isdigit()
        and len(version) < 10
    ):
        raise ModelFileError(
            f"{where}: corrupted metadata (format_version {version!r})"
        )
    if int(version) > FORMAT_VERSION:
        raise ModelFileError(
            f"{where}: file format version {version} is newer than "
            f"this cnnumpy supports "
            f"({FORMAT_VERSION}); upgrade cnnumpy to load it"
        )


def _check_specs(specs: dict, where: str) -> int:
    """Check every tensor's entry; they must tile the data from byte 0 without gaps.

    Returns:
        The number of tensor bytes the header declares.
    """
    spans = []
    for name, spec in specs.items():
        ok = (
            isinstance(spec, dict)
            and spec.get("dtype") in _DTYPES
            and isinstance(spec.get("shape"), list)
            and len(spec["shape"]) <= _MAX_RANK
            and all(isinstance(d, int) and d >= 0 for d in spec["shape"])
            and math.prod(max(d, 1) for d in spec["shape"]) <= _MAX_ELEMENTS
            and isinstance(spec.get("data_offsets"), list)
            and len(spec["data_offsets"]) == 2
            and all(isinstance(o, int) for o in spec["data_offsets"])
        )
        if not ok:
            raise ModelFileError(f"{where}: corrupted header entry for tensor {name!r}")
        start, end = spec["data_offsets"]
        nbytes = math.prod(spec["shape"]) * np.dtype(_DTYPES[spec["dtype"]]).itemsize
        if not 0 <= start <= end or end - start != nbytes:
            raise ModelFileError(
                f"{where}: tensor {name!r} has the wrong size for its shape "
                "(corrupted file)"
            )
        spans.append((start, end))
    spans.sort()
    if spans and (
        spans[0][0] != 0
        or any(a[1] != b[0] for a, b in zip(spans, spans[1:], strict=False))
    ):
        raise ModelFileError(
            f"{where}: tensor data do not tile the file (truncated or corrupted)"
        )
    return spans[-1][1] if spans else 0


def _read_tensors(f: IO[bytes], specs: dict, where: str) -> dict[str, np.ndarray]:
    """Read every tensor, in file order, straight into an array of its own."""
    tensors = {}
    for name, spec in sorted(specs.items(), key=lambda item: item[1]["data_offsets"]):
        array = np.empty(spec["shape"], dtype=_DTYPES[spec["dtype"]])
        buffer = array.reshape(-1).view(np.uint8)
        if f.readinto(buffer) != buffer.size:  # the size was checked: it changed
            raise ModelFileError(f"{where}: the file was truncated while being read")
        tensors[name] = array
    return tensors


def _decode_metadata(meta_strings: dict[str, str], where: str) -> dict:
    """Every metadata value parsed from JSON, but the format fields and checksum."""
    meta = {}
    for key, text in meta_strings.items():
        if key in ("format", "format_version", "sha256"):
            meta[key] = text
        else:
            meta[key] = _parse_json(text, f"the metadata field {key!r}", where)
    return meta
