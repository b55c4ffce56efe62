"""Downloading a file safely: mirrors, limits, progress bar, checksum, atomic move.

The file is written to a temporary name in the destination folder, flushed to disk with
``fsync``, verified, and only then renamed over the destination with ``os.replace``
(atomic on POSIX and Windows). On any failure the temporary file is deleted, so the
cache never holds a partial or unverified file; the one a killed process could not
delete is removed by the next download of the same file (``partfiles``).

A server cannot make a download take more than its share of disk or time: at most
``max_bytes`` are written (the caller knows each official file's size; the refusal
comes as soon as one byte more arrives, or at once when the Content-Length announces
more), each read waits at most ``timeout`` seconds, and the whole request to one URL,
from connecting through the status line and headers to the last byte, is abandoned
once it has taken ``deadline`` seconds (a watchdog shuts the socket, see
``cnnumpy.data.deadline``): a server dripping one byte at a time, body or headers,
cannot hold it for ever.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from cnnumpy.data import partfiles
from cnnumpy.data.dataset import DatasetError, DownloadError
from cnnumpy.data.deadline import Watchdog

_CHUNK = 1 << 20
# The cap when the caller gives none: the largest data set file here (CIFAR-10's
# archive) is 163 MiB.
MAX_DOWNLOAD_BYTES = 512 << 20
# The default deadline lets a transfer average as little as this (200 kbit/s).
MIN_AVERAGE_RATE = 25_000
USER_AGENT = "cnnumpy (dataset loader)"
# Errors of one URL that mean "try the next mirror".
NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    OSError,
)


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cnnumpy``, else ``~/.cache/cnnumpy`` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(base) / "cnnumpy"


def _as_set(md5: str | Sequence[str] | None) -> set[str]:
    if md5 is None:
        return set()
    return {md5.lower()} if isinstance(md5, str) else {m.lower() for m in md5}


def file_md5(path: str | os.PathLike, gunzip: bool = False) -> str:
    """The md5 of a file's bytes (of its decompressed content if ``gunzip``)."""
    return _hexdigest(path, hashlib.md5(usedforsecurity=False), gunzip)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes."""
    return _hexdigest(path, hashlib.sha256(), gunzip=False)


def _hexdigest(path, digest, gunzip: bool) -> str:
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _progress_bar(total: int | None, label: str, enabled: bool):
    """A tqdm bar when tqdm is installed and ``enabled``; else None (no bar)."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label)


class _LocalError(DatasetError):
    """Writing into the destination folder failed: no mirror can help."""


class _Limits(NamedTuple):
    timeout: float  # seconds for connecting and for each read
    max_bytes: int  # the most bytes the file can have
    deadline: float  # seconds for one URL, from connecting to the last byte


class _Seen:
    """What has arrived so far from one URL, for the messages."""

    def __init__(self):
        self.received = 0  # bytes of the body
        self.total: int | None = None  # the Content-Length, once the headers are in
        self.headers = False  # the status line and headers are complete


def _fetch(url: str, out, limits: _Limits, progress: bool, dest: Path) -> None:
    """Stream ``url`` into the open file ``out`` within ``limits``; raise if bytes are
    missing, too many or too slow.

    The watchdog holds the deadline over every step, the status line and headers
    included: past it, it shuts the socket and the read in progress returns.
    """
    seen = _Seen()
    with Watchdog(limits.deadline) as watchdog:
        try:
            _stream(watchdog, url, out, limits, progress, dest, seen)
        except _LocalError:
            raise
        except Exception as exc:
            if watchdog.expired:
                raise _too_slow(seen, limits.deadline) from exc
            raise
        if watchdog.expired:  # the shut socket ended the body early
            raise _too_slow(seen, limits.deadline)
    if seen.total is not None and seen.received != seen.total:
        raise http.client.IncompleteRead(b"", seen.total - seen.received)


def _stream(watchdog, url, out, limits: _Limits, progress, dest, seen: _Seen) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    timeout = min(limits.timeout, limits.deadline)
    with watchdog.opener().open(request, timeout=timeout) as response:
        # A socket shut by the watchdog ends the headers early, as a blank line would.
        seen.headers = not watchdog.expired
        seen.total = _declared_length(response, limits.max_bytes)
        # read1 returns what has arrived; read(n) would wait for all n bytes.
        read = getattr(response, "read1", response.read)
        bar = _progress_bar(seen.total, dest.name, progress)
        try:
            # Ask for one byte more than allowed at most: the overflow is detected
            # without writing it.
            while chunk := read(min(_CHUNK, limits.max_bytes - seen.received + 1)):
                seen.received += len(chunk)
                _check_size(seen.received, limits.max_bytes)
                _local(out.write, dest, chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()


def _declared_length(response, max_bytes: int) -> int | None:
    """The Content-Length, if any; refused when it is more than ``max_bytes``."""
    length = response.headers.get("Content-Length")
    if not (length and length.isascii() and length.isdigit()):
        return None
    if int(length) > max_bytes:
        raise DatasetError(
            f"the server announces {int(length):,} bytes, at most {max_bytes:,} "
            "expected; refused before reading"
        )
    return int(length)


def _check_size(received: int, max_bytes: int) -> None:
    if received > max_bytes:
        raise DatasetError(
            f"more data than expected: {received:,} bytes received, at most "
            f"{max_bytes:,} expected; download stopped"
        )


def _too_slow(seen: _Seen, deadline: float) -> DatasetError:
    if not seen.headers:
        got = "the status line and headers were still incomplete"
    else:
        of = f" of {seen.total:,}" if seen.total is not None else ""
        got = f"{seen.received:,}{of} bytes"
    return DatasetError(
        f"too slow: {got} after {deadline:g} s, the deadline for this file; "
        "download abandoned"
    )


def _verify(path: str, md5: set[str], gunzip_md5: set[str], sha256: set[str]) -> None:
    if sha256:
        got = file_sha256(path)
        if got not in sha256:
            expected = " or ".join(sorted(sha256))
            raise DatasetError(
                f"checksum mismatch: got sha256 {got}, expected {expected}"
            )
        if not (md5 or gunzip_md5):
            return
    got = file_md5(path)
    if got in md5:
        return
    message = f"checksum mismatch: got md5 {got}"
    if md5:
        message += f", expected one of {sorted(md5)}"
    if gunzip_md5:
        try:
            if file_md5(path, gunzip=True) in gunzip_md5:
                return
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{message}; not a valid gzip file ({exc})") from None
        message += f"; decompressed md5 not in {sorted(gunzip_md5)}"
    raise DatasetError(message)


def _download_one(url, dest: Path, checksums, limits, progress) -> None:
    fd, tmp, lock = _local(partfiles.create, dest, dest)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, limits, progress, dest)
            _local(out.flush, dest)
            _local(os.fsync, dest, out.fileno())
        _verify(tmp, *checksums)
        _local(os.replace, dest, tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        # Only now, renamed or deleted, may the part file's lock go (see partfiles).
        partfiles.release(lock)


def _local(step, dest: Path, *args, **kwargs):
    """Run ``step``, a file operation in the destination folder; its error names
    ``dest``, never the temporary file the user never sees, and is not blamed on
    the mirror."""
    try:
        return step(*args, **kwargs)
    except OSError as exc:
        raise _LocalError(f"cannot write {dest}: {exc.strerror or exc}") from exc


def _check_limit(value, name: str, kind=float) -> None:
    """``value`` must be a finite number > 0 (an int >= 1 when ``kind`` is int)."""
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        expected = "an integer >= 1"
    else:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = number and math.isfinite(value) and value > 0
        expected = "a number of seconds > 0"
    if not ok:
        raise ValueError(f"download: {name} must be {expected}, got {value!r}")


def download(
    urls: str | Sequence[str],
    dest: str | os.PathLike,
    *,
    md5: str | Sequence[str] | None = None,
    gunzip_md5: str | Sequence[str] | None = None,
    sha256: str | Sequence[str] | None = None,
    timeout: float = 30.0,
    progress: bool = True,
    max_bytes: int | None = None,
    deadline: float | None = None,
) -> Path:
    """Download the first URL that works to ``dest``, verified, atomically.

    The file is accepted when its sha256 is one of ``sha256`` (if given) and its md5
    is one of ``md5`` or, for a gzip file, the md5 of its decompressed content is one
    of ``gunzip_md5`` (if either is given; MNIST mirrors wrap identical IDX files in
    different .gz bytes). At least one checksum must be given.

    Args:
        urls: one URL or mirrors to try in order.
        dest: the final path; its folder is created if needed.
        md5: accepted md5 hex digests of the downloaded bytes.
        gunzip_md5: accepted md5 hex digests of the decompressed content.
        sha256: accepted sha256 hex digests of the downloaded bytes.
        timeout: seconds allowed for connecting and for each read.
        progress: show a tqdm progress bar when tqdm is installed.
        max_bytes: the size of the file (exact, or an upper bound when mirrors
            differ); a server that sends or announces more is cut off. Default:
            ``MAX_DOWNLOAD_BYTES``.
        deadline: seconds allowed for each URL, from connecting through the
            status line and headers to the last byte. Default:
            ``timeout + max_bytes / MIN_AVERAGE_RATE``.

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: every URL failed (network error, incomplete transfer, too
            many bytes, too slow or checksum mismatch); the message lists each URL
            with its error. No file is left behind.
        DatasetError: the destination folder cannot be written.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    checksums = (_as_set(md5), _as_set(gunzip_md5), _as_set(sha256))
    if not any(checksums):
        raise ValueError(
            "download: expected md5= or gunzip_md5= (or sha256=), got none of them"
        )
    if not urls:
        raise ValueError("download: expected at least one URL, got none")
    limits = _limits(timeout, max_bytes, deadline)
    dest = Path(dest)
    _local(os.makedirs, dest, dest.parent, exist_ok=True)
    partfiles.remove_stale(dest)  # left by a download that was killed
    failures = []
    for url in urls:
        try:
            _download_one(url, dest, checksums, limits, progress)
            return dest
        except _LocalError as exc:
            raise DatasetError(str(exc)) from exc.__cause__
        except (DatasetError, *NETWORK_ERRORS) as exc:
            failures.append(f"  - {url}: {_describe(exc)}")
    raise DownloadError(
        f"could not download {dest.name}; every location failed:\n"
        + "\n".join(failures)
    )


def _limits(timeout, max_bytes, deadline) -> _Limits:
    _check_limit(timeout, "timeout")
    if max_bytes is None:
        max_bytes = MAX_DOWNLOAD_BYTES
    _check_limit(max_bytes, "max_bytes", int)
    if deadline is None:
        deadline = timeout + max_bytes / MIN_AVERAGE_RATE
    _check_limit(deadline, "deadline")
    return _Limits(timeout, max_bytes, deadline)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed early, {exc.expected} bytes missing"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"network error: {exc.reason}"
    if isinstance(exc, DatasetError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
