"""The cache file's life on disk, arranged so that read-only readers never fail (docs/reader-contract.md).

A reader in the cache's group may read `cache.db`, `-wal` and `-shm` but may not create files in
the data directory. SQLite lets such a read-only connection open a WAL database only if `-wal` and
`-shm` already exist (it then builds the WAL index in its own memory when no writer is attached),
and fails with SQLITE_READONLY_DIRECTORY / SQLITE_CANTOPEN when either is missing. So the writer
keeps three rules:

- The file is in WAL mode for its whole life: it is created in WAL mode and never switched back
  to a rollback journal (switching either way is a window in which the header and the files on
  disk disagree).
- `-wal` and `-shm` exist from before the database appears under its name, and are never deleted:
  a new database is built under a temporary name and renamed into place after its (empty) `-wal`
  and `-shm`; an existing one gets any missing file created empty before the writer opens it.
- The writer's connection never closes as the last one: SQLite's last close checkpoints and then
  deletes both files, but only when it can take an EXCLUSIVE lock on the database. The writer holds
  a second, read-only connection (the keeper) for its whole life and closes it after the writer;
  a read-only connection cannot take that lock (its descriptor is read-only), so nothing is deleted.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from seo_sync.cache.connect import private_files
from seo_sync.errors import CacheCorrupt

WAL_SUFFIXES = ("-wal", "-shm")
# A closing writer empties the WAL if no reader pins it; waiting longer would only delay the stop.
CLOSE_CHECKPOINT_BUSY_MS = 200
# SQLite reuses the WAL file from its start once every frame is in the database, but never makes it
# smaller: a reader that held a read transaction for minutes (no frame after its snapshot can be
# checkpointed meanwhile) would leave a WAL of tens of MB for good, which every new reader scans.
# The writer cuts it back to WAL_KEEP_BYTES when the log restarts (journal_size_limit), and the
# checkpoint job truncates it outright once everything is checkpointed.
WAL_KEEP_BYTES = 1 << 20
# Above this the WAL is larger than the writer's own checkpoints let it grow (1000 pages of 4 KB):
# held by a reader, or a long transaction; the service warns when it stays so.
WAL_LARGE_BYTES = 4 << 20


def sidecar(path: Path, suffix: str) -> Path:
    """`cache.db` + suffix (`-wal`, `-shm`, `-journal`)."""
    return path.with_name(path.name + suffix)


def ensure_wal_files(path: Path, like: Path | None = None) -> list[str]:
    """Create `-wal` and `-shm` next to `path` if missing: empty, with the mode and owner of `like`.

    An empty `-wal` is an empty log and an empty `-shm` is an index the first writer initialises;
    SQLite itself gives both the database file's mode (and, running as root, its owner). Returns the
    suffixes created.
    """
    st = (like or path).stat()
    created = []
    for suffix in WAL_SUFFIXES:
        target = sidecar(path, suffix)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         st.st_mode & 0o777)
        except FileExistsError:
            continue
        try:
            if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
                os.fchown(fd, st.st_uid, st.st_gid)  # root-run CLI: the daemon must still open them
        finally:
            os.close(fd)
        created.append(suffix)
    return created


AUTO_VACUUM_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL


def create_database(path: Path, init: Callable[[sqlite3.Connection], None]) -> None:
    """Build a new WAL database with `init` and make it appear at `path` in one rename.

    Until the rename a reader finds no file at all (and says "not there yet"); after it, a complete
    schema with its `-wal` and `-shm` already in place. Never a zero-length or half-made file.
    """
    tmp = sidecar(path, ".new")
    for stale in (tmp, *(sidecar(tmp, s) for s in (*WAL_SUFFIXES, "-journal"))):
        stale.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before the first table: free pages can be given back
        private_files(tmp)  # before -wal/-shm exist: SQLite gives them the database file's mode
        conn.execute("PRAGMA journal_mode = WAL")
        init(conn)
    finally:
        conn.close()  # the only connection: checkpoints into tmp and removes tmp's -wal/-shm
    # Left-over files of an earlier database must never pair with this one: a stale -wal would be
    # replayed into it.
    for suffix in WAL_SUFFIXES:
        sidecar(path, suffix).unlink(missing_ok=True)
    ensure_wal_files(path, like=tmp)
    fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def open_writer(path: Path, busy_timeout_ms: int, check: bool,
                init: Callable[[sqlite3.Connection], None]) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """The writer's connection and its read-only keeper (creating the database with `init` if absent).

    sqlite3 errors propagate for the caller to classify; on any failure both connections are closed.
    """
    if not path.exists():
        create_database(path, init)
    ensure_wal_files(path)
    keeper = open_keeper(path)  # first, so that no close of ours is ever the last one
    conn = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000,
                               factory=WriterConnection)
        conn.keeper = keeper
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if check:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise CacheCorrupt(f"cache {path} failed quick_check: {result[:200]}",
                                   hint="it is set aside and rebuilt by a full sync")
        # A no-op on every file made here; a cache left in rollback-journal mode by an older version
        # switches once, with -wal/-shm already in place for readers.
        conn.execute("PRAGMA journal_mode = WAL")
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != AUTO_VACUUM_INCREMENTAL:
            # A file made by an older version: switch once (VACUUM rewrites it; readers keep their snapshot).
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_KEEP_BYTES}")
        hold(keeper)  # in WAL mode now: the keeper's read holds the shared lock
    except BaseException:
        if conn is not None:
            close_keeping_wal(conn, keeper, path)
        else:
            keeper.close()
        raise
    return conn, keeper


class WriterConnection(sqlite3.Connection):
    """The writer's connection, never the last to close even when dropped without `close_keeping_wal`
    (a forgotten close, interpreter exit): it holds its keeper, so the keeper cannot be freed first,
    and its finalizer closes it. An unclosed sqlite3 connection sits in a reference cycle with its
    statement cache and is freed by the cycle collector, which runs every finalizer of the garbage
    before freeing any of it: the writer closes while the keeper is still open."""

    keeper: sqlite3.Connection | None = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def open_keeper(path: Path) -> sqlite3.Connection:
    """A read-only connection that has read once, so it holds the shared lock that keeps a closing
    writer from deleting `-wal` and `-shm`."""
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    keeper = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    keeper.execute("PRAGMA busy_timeout = 5000")
    hold(keeper)
    return keeper


def hold(keeper: sqlite3.Connection) -> None:
    """One read: in WAL mode a connection keeps its shared lock on the database from its first read on."""
    keeper.execute("SELECT count(*) FROM sqlite_master").fetchone()


def close_keeping_wal(conn: sqlite3.Connection, keeper: sqlite3.Connection | None, path: Path) -> None:
    """Close the writer, then the keeper; `-wal` and `-shm` stay, the WAL emptied when no reader pins it."""
    with contextlib.suppress(sqlite3.Error):
        conn.execute(f"PRAGMA busy_timeout = {CLOSE_CHECKPOINT_BUSY_MS}")
        # TRUNCATE leaves a zero-length -wal, so a reader that opens while no writer runs has no log
        # to scan; busy (a reader mid-transaction) or a full disk only means the log stays longer.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.close()
    if keeper is not None:
        keeper.close()
    with contextlib.suppress(OSError):
        ensure_wal_files(path)  # should the keeper have been missing, put the files straight back


def wal_bytes(path: Path) -> int | None:
    """The size of `path`'s WAL file, None when it cannot be read."""
    try:
        return sidecar(path, "-wal").stat().st_size
    except OSError:
        return None


def checkpoint(conn: sqlite3.Connection, path: Path) -> tuple[int, int, int]:
    """A PASSIVE checkpoint (never waits for readers): (busy, log frames, checkpointed). When it got
    every frame into the database and the file is still larger than WAL_KEEP_BYTES (a reader held it
    while it grew), a TRUNCATE checkpoint empties it; that one waits for a reader that started just
    now, so only CLOSE_CHECKPOINT_BUSY_MS: a busy answer leaves it for the next run."""
    busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    size = wal_bytes(path)
    if busy or frames != done or size is None or size <= WAL_KEEP_BYTES:
        return busy, frames, done
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute(f"PRAGMA busy_timeout = {CLOSE_CHECKPOINT_BUSY_MS}")
    try:
        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")
    return busy, frames, done
