"""Text for character models: a vocabulary, ids, and windows of (input, next character).

Seed 003's recurrent chapter trains on « masse » over the one-hot alphabet [a, e, m,
s]: each character is a symbol of a small alphabet, fed in as its one-hot vector (or
its row of an ``Embedding``), and the target at step t is the character at step t + 1.
Karpathy's min-char-rnn does the same on any text file with windows of 25 characters.

- :class:`Vocabulary`: the sorted distinct characters of a text; ``encode`` and
  ``decode`` between strings and int64 ids.
- :func:`load_text`: a UTF-8 file as ``(Vocabulary, ids)``.
- :func:`stdlib_corpus`: a real corpus every machine has offline, the Python standard
  library's own sources (the notes train on Shakespeare, Tolstoy and the Linux
  sources; Python code makes the same point: indentation, brackets, keywords).
  Licence: the Python Software Foundation License, which allows copying them.
- :func:`tiny_shakespeare`: the notes' own corpus, Karpathy's char-rnn ``input.txt``
  (1,115,394 characters of the plays), found where the data sets are
  (``cnnumpy.data.sources``) or downloaded into the cache when the network is
  there; every copy must have the official size and sha256 before it is used.
- :func:`char_windows`: seeded mini-batches of windows ``x (B, T)`` and their targets
  ``y (B, T)``, ``y[:, t] = x[:, t + 1]`` along the text.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cnnumpy.data import sources
from cnnumpy.data.dataset import DatasetError, DownloadError
from cnnumpy.data.download import cache_dir
from cnnumpy.data.download import download as download_file
from cnnumpy.fileio import read_small_text
from cnnumpy.rng import as_rng

MAX_TEXT_BYTES = 256 * 2**20  # a text file read whole: 256 MiB at the most

# Modules of the standard library, in this order, for stdlib_corpus: large, plain
# Python, present in every CPython 3.10+ installation.
STDLIB_FILES = (
    "argparse.py",
    "collections/__init__.py",
    "dataclasses.py",
    "difflib.py",
    "email/message.py",
    "fractions.py",
    "inspect.py",
    "json/decoder.py",
    "json/encoder.py",
    "logging/__init__.py",
    "pathlib.py",
    "pickle.py",
    "random.py",
    "shutil.py",
    "statistics.py",
    "string.py",
    "subprocess.py",
    "tarfile.py",
    "textwrap.py",
    "threading.py",
    "typing.py",
    "unittest/case.py",
    "zipfile.py",
)


class Vocabulary:
    """The symbols of a text, sorted, each with its id (its position).

    Args:
        symbols: the distinct characters (or tokens), in id order.
    """

    def __init__(self, symbols) -> None:
        symbols = list(symbols)
        if not symbols or len(set(symbols)) != len(symbols):
            raise ValueError(
                f"Vocabulary: expected distinct symbols, got {len(symbols)} with "
                f"{len(symbols) - len(set(symbols))} repeated"
            )
        self.symbols = symbols
        self.index = {s: i for i, s in enumerate(symbols)}

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        """The vocabulary of the distinct characters of ``text``, sorted."""
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text``'s characters, int64; a ValueError names the first
        character outside the vocabulary."""
        try:
            return np.fromiter((self.index[c] for c in text), np.int64, len(text))
        except KeyError as exc:
            raise ValueError(
                f"Vocabulary: {exc.args[0]!r} is not one of its {len(self)} symbols"
            ) from None

    def decode(self, ids) -> str:
        """The text of ``ids`` (ints from 0 to ``len(self) - 1``)."""
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(
                f"Vocabulary: ids must be in [0, {len(self)}), got {ids.min()} to "
                f"{ids.max()}"
            )
        return "".join(self.symbols[i] for i in ids.reshape(-1).tolist())

    def get_config(self) -> dict:
        return {"symbols": self.symbols}

    @classmethod
    def from_config(cls, config: dict) -> Vocabulary:
        return cls(config["symbols"])

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} symbols)"


def load_text(path, max_bytes: int = MAX_TEXT_BYTES) -> tuple[Vocabulary, np.ndarray]:
    """``(vocabulary, ids)`` of the UTF-8 text file ``path``.

    Raises:
        DatasetError: not a regular file, larger than ``max_bytes``, not UTF-8, or
            empty (each says which).
    """
    try:
        text = read_small_text(path, max_bytes)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"load_text: {exc}") from None
    if not text:
        raise DatasetError(f"{path}: the file is empty")
    vocabulary = Vocabulary.of(text)
    return vocabulary, vocabulary.encode(text)


def stdlib_corpus(max_chars: int | None = None) -> str:
    """The sources of :data:`STDLIB_FILES`, concatenated (about 1.5 MB of Python).

    Every CPython installation has them; the exact text differs between Python
    versions, so a run on it is reproducible on one installation. ``max_chars`` keeps
    the first characters only.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    parts = []
    for name in STDLIB_FILES:
        path = root / name
        if path.is_file():
            parts.append(path.read_text(encoding="utf-8"))
    if not parts:
        raise DatasetError(f"stdlib_corpus: no standard library sources under {root}")
    text = "\n".join(parts)
    return text if max_chars is None else text[:max_chars]


def tiny_shakespeare(
    path: str | os.PathLike | None = None, download: bool = True
) -> str:
    """Karpathy's tiny Shakespeare (char-rnn's ``input.txt``), verified.

    Searched as the image data sets are (``cnnumpy.data.sources``): ``path`` alone
    when given (the file, or a folder holding ``input.txt`` or
    ``tiny-shakespeare/input.txt``); else ``$CNNUMPY_DATA/tiny-shakespeare/``, then
    the cache; then, with ``download``, fetched into the cache. A copy is used only
    with the size and sha256 of ``sources.TINY_SHAKESPEARE``.

    Returns:
        The text: 1,115,394 characters, 65 distinct ones.

    Raises:
        DatasetError: a copy with other bytes (the message names the expected and
            the received sha256), or no copy and no download (the message names
            the URL tried and where to put the file by hand).
    """
    spec = sources.TINY_SHAKESPEARE
    if path is not None and Path(path).expanduser().is_file():
        return _verified_text(Path(path).expanduser(), spec)
    tried = []
    for label, folder in sources.candidate_dirs(spec, path):
        if (folder / spec.filename).exists():
            return _verified_text(folder / spec.filename, spec)
        state = "no such folder" if not folder.is_dir() else f"no {spec.filename}"
        tried.append(f"{label} {folder} ({state})")
    target = cache_dir() / spec.subdirs[0] / spec.filename
    if download and path is None:
        try:
            download_file(
                spec.urls,
                target,
                sha256=spec.sha256,
                timeout=sources.DOWNLOAD_TIMEOUT,
                max_bytes=spec.size,
            )
            return _verified_text(target, spec)
        except DownloadError as exc:
            tried.append(f"download into {target.parent}: {exc}")
    what = f"{spec.title} ({spec.filename})"
    message = sources.not_found_message(
        "tiny_shakespeare", what, tried, download, path is not None
    )
    raise DatasetError(
        f"{message}\nBy hand: save {spec.urls[0]} ({spec.size:,} bytes, sha256 "
        f"{spec.sha256}) as {target}."
    )


def _verified_text(path: Path, spec: sources.TextSpec) -> str:
    """The text of ``path`` if its bytes are the official ones; else DatasetError.

    The bytes are read once and the ones verified are the ones decoded.
    """
    size = path.stat().st_size
    if size != spec.size:
        raise _not_official(path, spec, f"{size:,} bytes")
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if len(data) != spec.size or got != spec.sha256:
        raise _not_official(path, spec, f"{len(data):,} bytes with sha256 {got}")
    return data.decode("utf-8")


def _not_official(path: Path, spec: sources.TextSpec, got: str) -> DatasetError:
    return DatasetError(
        f"{path}: not the official {spec.title}: expected {spec.size:,} bytes with "
        f"sha256 {spec.sha256}, got {got}; delete or replace the file"
    )


def char_windows(
    ids: np.ndarray,
    length: int,
    batch_size: int,
    rng=None,
    shuffle: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One pass over the text in windows: ``(x (B, length), y (B, length))`` with
    ``y[b, t]`` the character after ``x[b, t]``.

    The text is cut into ``(len(ids) - 1) // length`` windows that do not overlap;
    with ``shuffle`` their order is drawn from ``rng`` (a seed or a Generator), else
    they come in text order. The last batch may be smaller.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"char_windows: expected 1-D integer ids, got {ids.dtype} "
            f"of shape {ids.shape}"
        )
    for name, value in (("length", length), ("batch_size", batch_size)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or value < 1
        ):
            raise ValueError(f"char_windows: {name} must be an int >= 1, got {value!r}")
    count = (len(ids) - 1) // length
    if count < 1:
        raise ValueError(
            f"char_windows: a text of {len(ids)} ids has no window of {length} + 1"
        )
    starts = np.arange(count) * length
    if shuffle:
        starts = as_rng(rng).permutation(starts)
    offsets = np.arange(length)
    for lo in range(0, count, batch_size):
        rows = starts[lo : lo + batch_size, None] + offsets
        yield ids[rows], ids[rows + 1]
