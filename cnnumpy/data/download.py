"""Downloading a file safely: mirrors, timeout, progress bar, checksum, atomic move.

The file is written to a temporary name in the destination folder, flushed to disk with
``fsync``, verified, and only then renamed over the destination with ``os.replace``
(atomic on POSIX and Windows). On any failure the temporary file is deleted, so the
cache never holds a partial or unverified file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

from cnnumpy.data.dataset import DatasetError, DownloadError

_CHUNK = 1 << 20
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
    digest = hashlib.md5(usedforsecurity=False)
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


def _fetch(url: str, out, timeout: float, progress: bool, label: str) -> None:
    """Stream ``url`` into the open file ``out``; raise if bytes are missing."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _progress_bar(total, label, progress)
        received = 0
        try:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)


def _verify(path: str, md5: set[str], gunzip_md5: set[str]) -> None:
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


def _download_one(url, dest, md5, gunzip_md5, timeout, progress) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, timeout, progress, dest.name)
            out.flush()
            os.fsync(out.fileno())
        _verify(tmp, md5, gunzip_md5)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def download(
    urls: str | Sequence[str],
    dest: str | os.PathLike,
    *,
    md5: str | Sequence[str] | None = None,
    gunzip_md5: str | Sequence[str] | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download the first URL that works to ``dest``, verified, atomically.

    The file is accepted when its md5 is one of ``md5`` or, for a gzip file, when the
    md5 of its decompressed content is one of ``gunzip_md5`` (MNIST mirrors wrap
    identical IDX files in different .gz bytes). At least one checksum must be given.

    Args:
        urls: one URL or mirrors to try in order.
        dest: the final path; its folder is created if needed.
        md5: accepted md5 hex digests of the downloaded bytes.
        gunzip_md5: accepted md5 hex digests of the decompressed content.
        timeout: seconds allowed for connecting and for each read.
        progress: show a tqdm progress bar when tqdm is installed.

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: every URL failed (network error, incomplete transfer or checksum
            mismatch); the message lists each URL with its error. No file is
            left behind.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    md5s, gunzip_md5s = _as_set(md5), _as_set(gunzip_md5)
    if not md5s and not gunzip_md5s:
        raise ValueError("download: expected md5= or gunzip_md5=, got neither")
    if not urls:
        raise ValueError("download: expected at least one URL, got none")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        try:
            _download_one(url, dest, md5s, gunzip_md5s, timeout, progress)
            return dest
        except (DatasetError, *NETWORK_ERRORS) as exc:
            failures.append(f"  - {url}: {_describe(exc)}")
    raise DownloadError(
        f"could not download {dest.name}; every location failed:\n"
        + "\n".join(failures)
    )


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
