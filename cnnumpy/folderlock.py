"""One training per folder: an ``fcntl.flock`` lock that dies with its process.

``fit(resume_from=DIR)`` holds ``DIR`` and ``cnnumpy train --out RUN`` holds ``RUN``
for as long as they run, so a second writer is refused instead of mixing its files
with the first one's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, folders are not locked there
    fcntl = None

LOCK = ".lock"


class RunFolderLocked(OSError):
    """Another process is training into this folder: it holds the folder's lock."""


class FolderLock:
    """One writer per folder, for as long as the ``with`` block runs.

    The lock is ``fcntl.flock`` on ``FOLDER/.lock``. The kernel releases it when the
    process ends, however it ends, so a run killed with SIGKILL never leaves a stale
    lock (its file may stay behind, unlocked and harmless). The file holds the
    holder's pid, which a refused writer is told. A folder that did not exist is
    created, and removed again at the end if it is still empty.

    Args:
        folder: the folder to lock.
        owner: how messages name it, e.g. ``"fit: resume_from="``.

    Raises:
        RunFolderLocked: another process holds the folder.
    """

    def __init__(self, folder, owner: str = "") -> None:
        self.folder, self.owner = Path(folder), owner
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        if fcntl is None:
            return
        self._created = not self.folder.exists()
        path = self.folder / LOCK
        while self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # the folder just went: again
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise RunFolderLocked(
                        f"{self.owner}{self.folder} is in use by another training "
                        f"(pid {holder or 'unknown'}); wait until it ends, or choose "
                        "another folder"
                    ) from None
                if _same_file(fd, path):
                    self._fd = fd
                else:  # its holder removed the file as we opened it: lock the new one
                    os.close(fd)
        # the pid only informs a refused writer: a full disk must not stop the run here
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is None:
            return
        # unlink before unlocking: whoever opened the file meanwhile sees it is gone
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.folder / LOCK)
        os.close(self._fd)
        self._fd = None
        if self._created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, now = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)
