"""The safetensors header of a model file, read within bounds and checked by hand.

A header is an 8-byte little-endian length, then that many bytes of JSON: one entry per
tensor (``dtype``, ``shape``, ``data_offsets``) and ``__metadata__`` (strings only).
Every bound below is checked before the next step allocates anything: the length
against the file's size, the number of tensors while the JSON is parsed, each tensor's
rank and size, and the nesting of each metadata value. ``cnnumpy.saving.safefile``
reads the file through these checks.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import numpy as np

FORMAT = "cnnumpy"
FORMAT_VERSION = 1
MAX_HEADER = 100_000_000
# A tensor's shape: even an empty one ((0, 2**62)) must be one NumPy can create.
MAX_RANK = 32
MAX_ELEMENTS = 2**40
# Tensors in one header. A model of a thousand layers with Adam holds a few thousand;
# the bound is checked while the JSON is parsed, so that a header of a million tiny
# entries costs a fraction of a second, not seconds and a gigabyte of dicts.
MAX_TENSORS = 100_000
# Nesting of the header and of each metadata value. cnnumpy writes at most ~6 levels;
# far deeper JSON would only reach Python's recursion limit later, in some repr().
MAX_DEPTH = 64
# safetensors stores little-endian values, whatever the machine
DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}


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


def header_length(prefix: bytes, size: int, where: str) -> int:
    """The header length the first 8 bytes declare, if the file can hold it."""
    if len(prefix) < 8:
        raise ModelFileError(f"{where}: not a cnnumpy model file (only {size} bytes)")
    n = int.from_bytes(prefix, "little")
    if n < 2 or n > MAX_HEADER or 8 + n > size:
        raise ModelFileError(
            f"{where}: truncated or not a safetensors file "
            f"(header of {n} bytes in a file of {size} bytes)"
        )
    return n


def parse_header(data: bytes, where: str) -> tuple[dict, dict]:
    """Check the safetensors header (the JSON after the length) by hand.

    Returns:
        (tensor specs, metadata strings).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{where}: the header is not valid: not UTF-8") from None
    header = _parse_json(text, "the header", where, max_tensors=MAX_TENSORS)
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
    by the format (``check_specs``). A metadata value's nesting is bounded by
    ``MAX_DEPTH``.
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
        if max_tensors is not None or _depth(value) <= MAX_DEPTH:
            return value
        reason = f"it is nested too deeply (more than {MAX_DEPTH} levels)"
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


def check_specs(specs: dict, where: str) -> int:
    """Check every tensor's entry; they must tile the data from byte 0 without gaps.

    Returns:
        The number of tensor bytes the header declares.
    """
    spans = []
    for name, spec in specs.items():
        ok = (
            isinstance(spec, dict)
            and spec.get("dtype") in DTYPES
            and isinstance(spec.get("shape"), list)
            and len(spec["shape"]) <= MAX_RANK
            and all(isinstance(d, int) and d >= 0 for d in spec["shape"])
            and math.prod(max(d, 1) for d in spec["shape"]) <= MAX_ELEMENTS
            and isinstance(spec.get("data_offsets"), list)
            and len(spec["data_offsets"]) == 2
            and all(isinstance(o, int) for o in spec["data_offsets"])
        )
        if not ok:
            raise ModelFileError(f"{where}: corrupted header entry for tensor {name!r}")
        start, end = spec["data_offsets"]
        nbytes = math.prod(spec["shape"]) * np.dtype(DTYPES[spec["dtype"]]).itemsize
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


def decode_metadata(meta_strings: dict[str, str], where: str) -> dict:
    """Every metadata value parsed from JSON, but the format fields and checksum."""
    meta = {}
    for key, text in meta_strings.items():
        if key in ("format", "format_version", "sha256"):
            meta[key] = text
        else:
            meta[key] = _parse_json(text, f"the metadata field {key!r}", where)
    return meta
