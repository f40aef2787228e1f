"""The exclusive writer lock of a cache: one seo-sync process writes `cache.db` at a time."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from seo_sync.errors import LockHeld


class WriterLock:
    """The exclusive writer lock on `<cache>.lock`: a separate file, never the database itself, whose own
    locks SQLite manages (a lock of ours on it would be dropped when any connection of this process closes)."""

    def __init__(self, cache_path: Path) -> None:
        self.path = Path(str(cache_path) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        """Take the lock or raise LockHeld naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0600: flock needs no write access, so a cache reader able to open this file could hold the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = None
            try:
                holder = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
            except (OSError, ValueError):
                pass
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockHeld(
                    f"the cache {self.path.parent} is locked by another seo-sync process"
                    + (f" (pid {holder})" if holder else ""),
                    hint="stop the daemon (systemctl stop seo-sync) or use its socket commands",
                    pid=holder,
                ) from None
            raise
        with contextlib.suppress(OSError):  # a lock file left 0640 by an older version
            os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
