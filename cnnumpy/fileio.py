"""Atomic file writes: a crash mid-write never leaves a half-written file.

The bytes go to a temporary file in the destination's directory, are flushed and
fsynced, then the temporary file is renamed over the destination (``os.replace`` is
atomic on POSIX and Windows when both paths are on the same file system, which the same
directory guarantees).

Only regular files are ever replaced. A rename does not look at what it replaces: run as
root, it would swap ``/dev/null`` for a regular file, and it would replace a symlink
instead of the file it points to. So the destination is looked at first:
- a symlink is followed: its target is replaced, in the target's directory, and the
  link stays. A dangling symlink creates its target, as ``open(path, "w")`` would,
  provided the target's directory exists;
- a device, FIFO, socket or directory is refused with ``NotARegularFileError``.

A full disk (or quota, or file size limit) raises ``DiskFullError``, an ``OSError``
with the same ``errno`` whose message names the file being written: the system's own
"No space left on device" names nothing.

``read_small_text`` is the reading counterpart for small files a user may hand-edit
(``config.json``): a FIFO or a device is refused before it is opened (opening a FIFO
waits for a writer, forever) and a file over a size limit before it is read.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISLNK, "symlink"),
)


# errno -> what a user is told; all three mean "this write cannot fit"
_FULL = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system or ulimit -f",
}


class NotARegularFileError(OSError):
    """The destination is a device, FIFO, socket or directory: it is never replaced."""


class DiskFullError(OSError):
    """ENOSPC, EDQUOT or EFBIG while writing a file; the message names the file."""

    def __str__(self) -> str:
        return self.strerror


class FileTooLargeError(OSError):
    """A file ``read_small_text`` refuses to read: it is over its size limit."""


def file_kind(mode: int) -> str:
    """What ``st_mode`` describes: ``"regular file"``, ``"FIFO"``, ``"directory"``..."""
    if stat.S_ISREG(mode):
        return "regular file"
    for is_kind, kind in _KINDS:
        if is_kind(mode):
            return kind
    return "special file"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path`` atomically.

    If the ``with`` block raises, the temporary file is removed and ``path`` is left
    untouched. Errors name ``path``, never the temporary file.

    Raises:
        NotARegularFileError: ``path`` (or the target of its symlink) exists and is
            not a regular file.
        FileNotFoundError: ``path`` is a dangling symlink whose target's directory
            does not exist.
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_open: mode must be 'w', 'wt' or 'wb', got {mode!r}")
    path = Path(path)
    target = _destination(path)
    directory = target.parent if str(target.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=directory
        )
    except OSError as exc:
        raise _full(exc, path) or _naming(exc, path) from None
    try:
        os.chmod(tmp, _mode_for(target))  # mkstemp makes 0600 files; keep the usual
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if _destination(path) != target:  # the path was changed while we wrote
            raise FileExistsError(f"{path} changed while it was being written")
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            full = _full(exc, path)
            if full is not None:
                raise full from None
        if isinstance(exc, OSError) and tmp in (exc.filename, exc.filename2):
            raise _naming(exc, path) from None
        raise
    _fsync_directory(directory)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def _destination(path: Path) -> Path:
    """The regular file a write to ``path`` replaces: ``path`` or its link's target.

    Raises:
        NotARegularFileError: the file exists and is not a regular file.
        FileNotFoundError: a dangling symlink whose target's directory is missing.
    """
    linked = path.is_symlink()
    target = Path(os.path.realpath(path)) if linked else path
    try:
        kind = file_kind(target.stat().st_mode)
    except FileNotFoundError:
        if linked and not target.parent.is_dir():
            raise FileNotFoundError(
                f"{path} is a dangling symlink to {target}, whose directory "
                "does not exist"
            ) from None
        return target
    if kind == "regular file":
        return target
    what = f"links to {target}, which is" if linked else "is"
    raise NotARegularFileError(
        f"{path} {what} a {kind}, not a regular file; refusing to replace it"
    )


def _naming(exc: OSError, path: Path) -> OSError:
    """The same error about ``path``: the temporary file means nothing to the user."""
    return type(exc)(exc.errno, exc.strerror, str(path))


def _full(exc: OSError, path: Path) -> DiskFullError | None:
    """``exc`` named after ``path`` if it means the disk is full, else None."""
    reason = _FULL.get(exc.errno)
    if reason is None:
        return None
    message = f"{reason} while writing {path} (the previous file, if any, is unchanged)"
    return DiskFullError(exc.errno, message, str(path))


def _mode_for(path: Path) -> int:
    """The existing file's mode, or what a plain ``open`` would give.

    A plain ``open`` gives 0666 less the umask.
    """
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files ``atomic_open`` left beside ``path`` when killed.

    A process killed while it writes ``path`` leaves ``.{name}.XXXX.tmp`` next to it
    (the rename never happened). Only call this while no other process can be
    writing ``path``, e.g. holding its folder's lock
    (``cnnumpy.folderlock.FolderLock``).

    Returns:
        The files removed.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    removed = []
    for tmp in directory.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def read_small_text(path: str | os.PathLike, max_bytes: int) -> str:
    """The UTF-8 text of the regular file ``path``, of at most ``max_bytes`` bytes.

    The file's kind and size are looked at (``os.stat``) before it is opened, so a
    FIFO is never opened (that would wait for a writer) and a huge file never read
    whole; a file that grows past the limit meanwhile is still refused, as at most
    ``max_bytes + 1`` bytes are read.

    Raises:
        NotARegularFileError: a FIFO, device, socket or directory.
        FileTooLargeError: more than ``max_bytes`` bytes.
        OSError, UnicodeDecodeError: missing, unreadable, not UTF-8.
    """
    info = os.stat(path)
    kind = file_kind(info.st_mode)
    if kind != "regular file":
        raise NotARegularFileError(f"{path} is a {kind}, not a regular file")
    if info.st_size > max_bytes:
        raise _too_large(path, info.st_size, max_bytes)
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(path, len(data), max_bytes)
    return data.decode("utf-8")


def _too_large(path, size: int, max_bytes: int) -> FileTooLargeError:
    return FileTooLargeError(
        f"{path} is {size:,} bytes, more than the {max_bytes:,} bytes it may be"
    )
