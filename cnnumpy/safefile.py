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
everything has been read and checked. Every write goes through
``cnnumpy.fileio.atomic_open``.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

FORMAT = "cnnumpy"
FORMAT_VERSION = 1
_MAX_HEADER = 100_000_000
_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


class ModelFileError(ValueError):
    """A model file that cannot be loaded.

    It is truncated, corrupted, foreign or inconsistent.
    """


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


def _parse_header(data: bytes, where: str) -> tuple[dict, dict]:
    """Check the safetensors header by hand.

    Returns:
        (tensor specs, metadata strings).
    """
    if len(data) < 8:
        raise ModelFileError(
            f"{where}: not a cnnumpy model file (only {len(data)} bytes)"
        )
    n = int.from_bytes(data[:8], "little")
    if n < 2 or n > _MAX_HEADER or 8 + n > len(data):
        raise ModelFileError(
            f"{where}: truncated or not a safetensors file "
            f"(header of {n} bytes in a file of {len(data)} bytes)"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(
            f"{where}: corrupted header ({exc.__class__.__name__})"
        ) from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{where}: corrupted header (not a JSON object)")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{where}: not a cnnumpy model file (no cnnumpy metadata)")
    if not all(isinstance(v, str) for v in meta.values()):
        raise ModelFileError(f"{where}: corrupted metadata (values must be strings)")
    _check_version(meta.get("format_version"), where)
    _check_specs(header, len(data) - 8 - n, where)
    return header, meta


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


def _check_specs(specs: dict, data_len: int, where: str) -> None:
    spans = []
    for name, spec in specs.items():
        ok = (
            isinstance(spec, dict)
            and spec.get("dtype") in _DTYPES
            and isinstance(spec.get("shape"), list)
            and all(isinstance(d, int) and d >= 0 for d in spec["shape"])
            and isinstance(spec.get("data_offsets"), list)
            and len(spec["data_offsets"]) == 2
            and all(isinstance(o, int) for o in spec["data_offsets"])
        )
        if not ok:
            raise ModelFileError(f"{where}: corrupted header entry for tensor {name!r}")
        start, end = spec["data_offsets"]
        nbytes = math.prod(spec["shape"]) * np.dtype(_DTYPES[spec["dtype"]]).itemsize
        if not 0 <= start <= end <= data_len or end - start != nbytes:
            raise ModelFileError(
                f"{where}: tensor {name!r} lies outside the file or has the "
                "wrong size (truncated or corrupted file)"
            )
        spans.append((start, end))
    spans.sort()
    if spans and (
        spans[0][0] != 0
        or spans[-1][1] != data_len
        or any(a[1] != b[0] for a, b in zip(spans, spans[1:], strict=False))
    ):
        raise ModelFileError(
            f"{where}: tensor data do not tile the file (truncated or corrupted)"
        )
    if not spans and data_len != 0:
        raise ModelFileError(f"{where}: unexpected bytes after the header")


def load_bytes(data: bytes, where: str = "load") -> tuple[dict[str, np.ndarray], dict]:
    """Parse and verify safetensors bytes from ``dump_bytes``: (tensors, metadata)."""
    from safetensors.numpy import load

    _parse_header(data, where)
    try:
        tensors = load(data)
    except Exception as exc:  # the header was checked; this is a last line of defence
        raise ModelFileError(f"{where}: unreadable tensor data ({exc})") from None
    header_n = int.from_bytes(data[:8], "little")
    meta_strings = json.loads(data[8 : 8 + header_n].decode("utf-8"))["__metadata__"]
    if _digest(tensors, meta_strings) != meta_strings.get("sha256"):
        raise ModelFileError(f"{where}: checksum mismatch (the file is corrupted)")
    meta = {}
    for key, text in meta_strings.items():
        if key in ("format", "format_version", "sha256"):
            meta[key] = text
            continue
        try:
            meta[key] = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ModelFileError(f"{where}: corrupted metadata field {key!r}") from None
    return tensors, meta


def _read(path, where: str) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no such file: {path}")
    return path.read_bytes()
