"""The CIFAR-10 "python version": pickled batches, read without trusting the pickles.

The archive ``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/`` with
``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta``. Each batch is
a Python 2 pickle of a dict ``{b"data": uint8 (10000, 3072), b"labels": [int, ...],
...}``; a row of ``data`` is one 32x32 image stored as three planes R | G | B of 1024
bytes, so ``data.reshape(N, 3, 32, 32)`` is already ``(N, C, H, W)``.

A pickle can run any code while it loads, so ``pickle.load`` is never used:
``RestrictedUnpickler`` admits only the few callables that rebuild a NumPy array and
refuses every other global with ``UnsafePickleError``. Those callables are narrowed too,
so that a file can only hold what its bytes spell out: ``numpy.ndarray`` cannot be
called to allocate memory, and ``codecs.encode`` only turns text into latin-1 bytes
(chained ``"hex"`` encodings would double a string at every step). The unpickled
batch is then checked strictly (a dict with bytes or str keys, ``data`` uint8
``(N, 3072)`` with ``N <= 10000``, ``labels`` a flat list of N ints in [0, 10)) before
anything is converted: pickle's memo lets a 100-byte file hold a list that contains
the same list twice, 60 levels deep, which ``np.asarray`` would expand to 2 ** 60
labels. Reading from the tar.gz streams the expected members into memory; nothing is
extracted to disk.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from cnnumpy.data.dataset import DatasetError, UnsafePickleError, open_regular
from cnnumpy.data.idx import md5_hex

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
META = "batches.meta"
SPLIT_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
# A batch is 30 MB; anything far larger is not a CIFAR batch.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
# Images in one official batch (data_batch_1..5 and test_batch all hold 10,000).
BATCH_ROWS = 10000
NUM_CLASSES = 10


def _numpy_reconstruct():
    try:  # NumPy >= 2 keeps the implementation in numpy._core
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _ArrayType:
    """Stands for ``numpy.ndarray`` in a pickle, where it is only ever the first
    argument of ``_reconstruct``; calling it, as ``ndarray(shape, dtype)`` would,
    allocates memory the file never paid for, so it is refused."""

    __slots__ = ()  # nothing for a pickle's BUILD to set

    def __call__(self, *args):
        raise UnsafePickleError(
            "refusing to call numpy.ndarray: numpy.ndarray may only be rebuilt "
            "from the bytes stored in the file"
        )


def _empty_array(subtype, shape, dtype):
    """``_reconstruct`` as NumPy pickles use it: an empty array, which the pickle's
    ``BUILD`` then fills from its own bytes (``ndarray.__setstate__`` checks sizes)."""
    if not isinstance(subtype, _ArrayType) or shape != (0,):
        raise UnsafePickleError(
            f"refusing _reconstruct({subtype!r:.40}, {shape!r:.40}): NumPy pickles "
            "only rebuild an empty numpy.ndarray, then fill it"
        )
    return _numpy_reconstruct()(np.ndarray, (0,), dtype)


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """``codecs.encode`` as protocol-2 pickles of bytes use it: str -> latin-1."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(
            f"refusing _codecs.encode(<{type(text).__name__}>, {encoding!r:.20}): "
            "a CIFAR-10 batch only encodes text as 'latin1'"
        )
    return codecs.encode(text, "latin1", errors)


def _fresh(function):
    """A new callable per lookup: a pickle's ``BUILD`` may set attributes on what it
    is given, and must not reach the module's own functions."""
    return lambda *args: function(*args)


# (module, name) -> a factory of the object the pickle may use. Nothing else is ever
# imported.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): lambda: _fresh(_empty_array),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _fresh(_empty_array),
    ("numpy", "ndarray"): _ArrayType,
    ("numpy", "dtype"): lambda: np.dtype,
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): lambda: _fresh(_latin1_encode),
    ("codecs", "encode"): lambda: _fresh(_latin1_encode),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild dicts, lists, strings, numbers and arrays."""

    def find_class(self, module: str, name: str):
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch only needs "
                "NumPy array reconstruction (the file is corrupt or not a CIFAR-10 "
                "batch)"
            )
        return factory()


def safe_loads(data: bytes, what: str = "pickle"):
    """Unpickle ``data`` with ``RestrictedUnpickler`` and ``encoding="bytes"``.

    The result can hold no more than ``data`` spells out, but lists may share items
    (see the module docstring): check its structure before converting it.
    """
    if len(data) > MAX_MEMBER_BYTES:
        raise DatasetError(
            f"{what}: {len(data):,} bytes, more than the {MAX_MEMBER_BYTES:,} a "
            "CIFAR-10 batch can have"
        )
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{what}: {exc}") from None
    except Exception as exc:  # any malformed stream: EOFError, UnpicklingError, ...
        raise DatasetError(f"{what}: not a valid pickle ({exc!r})") from exc


def _key(entry: dict, name: str):
    for key in (name.encode(), name):
        if key in entry:
            return entry[key]
    raise DatasetError(f"missing key {name!r}")


def parse_batch(
    data: bytes, what: str = "CIFAR-10 batch"
) -> tuple[np.ndarray, np.ndarray]:
    """One batch as images uint8 ``(N, 3, 32, 32)`` and labels int64 ``(N,)``.

    The structure is checked before anything is converted (see the module docstring).
    """
    entry = safe_loads(data, what)
    if not isinstance(entry, dict):
        raise DatasetError(f"{what}: expected a dict, got {type(entry).__name__}")
    odd_keys = [k for k in entry if not isinstance(k, (bytes, str))]
    if odd_keys:
        raise DatasetError(
            f"{what}: the dict keys must be bytes or str, got {odd_keys[0]!r:.40}"
        )
    try:
        pixels, labels = _key(entry, "data"), _key(entry, "labels")
    except DatasetError as exc:
        raise DatasetError(f"{what}: {exc}") from None
    _check_pixels(pixels, what)
    return pixels.reshape(-1, 3, 32, 32), _checked_labels(labels, len(pixels), what)


def _check_pixels(pixels, what: str) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        kind = pixels.dtype if isinstance(pixels, np.ndarray) else type(pixels).__name__
        raise DatasetError(f"{what}: b'data' must be a uint8 array, got {kind}")
    if pixels.ndim != 2 or pixels.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{what}: b'data' must be (N, 3072), got {pixels.shape}")
    if len(pixels) > BATCH_ROWS:
        raise DatasetError(
            f"{what}: CIFAR-10 has at most {BATCH_ROWS} images per batch, "
            f"got {len(pixels)}"
        )


def _checked_labels(labels, n: int, what: str) -> np.ndarray:
    """``labels`` as int64 ``(n,)``: a list of exactly n Python ints (or a 1-D integer
    array) in [0, 10), checked item by item before any conversion."""
    expected = f"{what}: labels must be integers in a flat list, got"
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
            raise DatasetError(
                f"{expected} an array of shape {labels.shape} and dtype {labels.dtype}"
            )
    elif not isinstance(labels, list):
        raise DatasetError(f"{expected} a {type(labels).__name__}")
    if len(labels) != n:
        raise DatasetError(
            f"{what}: expected {n} labels to match the images, got {len(labels)}"
        )
    if isinstance(labels, list):
        for i, label in enumerate(labels):
            if type(label) is not int:  # bool and nested lists are refused
                raise DatasetError(f"{expected} a {type(label).__name__} at index {i}")
    lo, hi = (min(labels), max(labels)) if n else (0, 0)
    if lo < 0 or hi >= NUM_CLASSES:
        raise DatasetError(
            f"{what}: labels must lie in [0, {NUM_CLASSES - 1}], "
            f"got values from {_short(lo)} to {_short(hi)}"
        )
    return np.array(labels, dtype=np.int64)


def _short(value: int) -> str:
    """An int for a message; str() of a 5,000-digit int raises in Python >= 3.11."""
    if abs(value) < 10**12:
        return str(value)
    return f"{'-' if value < 0 else ''}<an integer of {int(value).bit_length()} bits>"


def parse_meta(data: bytes, what: str = META) -> tuple[str, ...]:
    """The class names stored in ``batches.meta``."""
    entry = safe_loads(data, what)
    try:
        names = _key(entry, "label_names") if isinstance(entry, dict) else None
    except DatasetError:
        names = None
    if not isinstance(names, list) or not all(
        isinstance(n, (bytes, str)) for n in names
    ):
        raise DatasetError(f"{what}: expected a dict with a list b'label_names'")
    return tuple(n.decode("ascii") if isinstance(n, bytes) else n for n in names)


def find_source(path: Path) -> Path | None:
    """The archive or batch folder at ``path`` (either itself, or inside it), if any.

    Whatever exists under an expected name is returned, a FIFO or a device too:
    reading it then says what it is, instead of "not found".
    """
    if path.exists() and not path.is_dir():
        return path
    for candidate in (path / FOLDER, path / ARCHIVE):
        if candidate.exists():
            return candidate
    if (path / META).exists() or (path / "test_batch").exists():
        return path
    return None


def read_members(
    source: Path, names: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, bytes]:
    """The bytes of the named batch files, from the tar.gz or the batch folder.

    Only members called ``cifar-10-batches-py/<name>`` that are regular files are read,
    in one pass over the archive; a missing one of ``names`` raises ``DatasetError``, a
    missing one of ``optional`` is left out.
    """
    if source.is_dir():
        present = [n for n in optional if (source / n).exists()]
        return {name: _read_file(source / name) for name in (*names, *present)}
    wanted = {f"{FOLDER}/{name}": name for name in (*names, *optional)}
    found: dict[str, bytes] = {}
    try:
        with open_regular(source) as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is None or name in found:
                    continue
                if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                    raise DatasetError(f"{source}: {member.name} is not a batch file")
                found[name] = tar.extractfile(member).read()
    except tarfile.ReadError:  # its text lists every compression tarfile tried
        raise DatasetError(
            f"{source}: cannot read the archive (not a valid tar or tar.gz file)"
        ) from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{source}: cannot read the archive ({exc})") from exc
    missing = [f"{FOLDER}/{n}" for n in names if n not in found]
    if missing:
        raise DatasetError(f"{source}: archive lacks {', '.join(missing)}")
    return found


def _read_file(path: Path) -> bytes:
    try:
        with open_regular(path) as stream:
            if os.fstat(stream.fileno()).st_size > MAX_MEMBER_BYTES:
                raise DatasetError(f"{path}: too large for a CIFAR-10 batch")
            return stream.read()
    except OSError as exc:
        raise DatasetError(f"cannot read {os.fspath(path)}: {exc}") from exc


def read_split(
    source: Path, split: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None, dict[str, str]]:
    """Images ``(N, 3, 32, 32)`` uint8, labels int64, class names (None without
    ``batches.meta``) and the md5 of every batch read, for one split."""
    batch_names = SPLIT_BATCHES[split]
    members = read_members(source, batch_names, optional=(META,))
    parts = [parse_batch(members[n], f"{source}:{n}") for n in batch_names]
    x = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    y = np.concatenate([p[1] for p in parts])
    names = parse_meta(members[META], f"{source}:{META}") if META in members else None
    md5s = {name: md5_hex(members[name]) for name in batch_names}
    return x, y, names, md5s
