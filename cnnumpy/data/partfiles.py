"""The temporary ``.NAME.XXXXXXXX.part`` files of downloads, and the ones left behind.

A download writes ``.NAME.XXXXXXXX.part`` next to ``NAME`` (``tempfile.mkstemp``
picks the 8 characters) and renames it to ``NAME`` once verified; on an error it
deletes it. A process killed with SIGKILL can do neither, so its part file would stay
for ever. The next download of ``NAME`` removes it, telling it from the part file of
a download still running in another process by a lock:

- POSIX: the writer holds ``fcntl.flock`` on its part file from creation until the
  file is renamed or deleted; the kernel drops the lock when the process dies, however
  it dies. A part file nobody holds is stale. The lock is taken a few microseconds
  after ``mkstemp`` creates the file, so a file younger than ``STALE_AFTER`` seconds
  is never taken for stale.
- Windows (no flock): a file open in another process cannot be deleted, so a live
  download's part file survives the attempt.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

SUFFIX = ".part"
# Seconds since its last change before an unlocked part file counts as stale.
STALE_AFTER = 10.0
# The characters of mkstemp's random part (tempfile._RandomNameSequence), 8 of them.
_RANDOM = r"[a-z0-9_]{8}"


def create(dest: Path) -> tuple[int, str, int | None]:
    """A new part file for ``dest``, in its folder: ``(fd, path, lock)``.

    ``fd`` is open for writing. ``lock`` is a duplicate of ``fd`` that holds the flock
    (None without flock) until it is closed with ``release``: close it only after
    the part file was renamed or deleted, so it is never seen unlocked while it exists.
    """
    prefix = f".{dest.name}."
    fd, path = tempfile.mkstemp(dir=dest.parent, prefix=prefix, suffix=SUFFIX)
    if fcntl is None:
        return fd, path, None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd, path, os.dup(fd)  # the lock belongs to the open file, shared by dup
    except OSError:
        os.close(fd)
        os.unlink(path)
        raise


def release(lock: int | None) -> None:
    """Drop the lock ``create`` took."""
    if lock is not None:
        os.close(lock)


def remove_stale(dest: Path) -> list[Path]:
    """Delete the part files of ``dest`` that no live download holds; return them.

    Only names ``create`` makes for this very ``dest`` are considered. Failures are
    ignored: cleaning up is a courtesy, never a reason for a download to fail.
    """
    pattern = re.compile(re.escape(f".{dest.name}.") + _RANDOM + re.escape(SUFFIX))
    try:
        names = [e.name for e in os.scandir(dest.parent) if pattern.fullmatch(e.name)]
    except OSError:
        return []
    removed = []
    for name in names:
        path = dest.parent / name
        if _is_stale(path):
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass  # gone already, or open in a live download (Windows)
    return removed


def _is_stale(path: Path) -> bool:
    """A regular file, unchanged for ``STALE_AFTER`` seconds, that nobody locks."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode) or time.time() - info.st_mtime < STALE_AFTER:
        return False
    return not _locked(path)


def _locked(path: Path) -> bool:
    if fcntl is None:
        return False  # Windows: the unlink itself fails on a file in use
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True  # a live download holds it
    finally:
        os.close(fd)  # also drops the lock just taken
    return False
