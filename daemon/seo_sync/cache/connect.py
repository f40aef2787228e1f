"""SQLite connections of seo-sync, and its one transaction helper, `atomic`.

`atomic(conn, errors)` is the only way seo-sync opens a write transaction, on the cache and on the
protection ledger alike (sqlite-utils' `db.atomic()` is the model):

- The outermost `atomic` starts with BEGIN IMMEDIATE, which takes the write lock at once: a busy
  database fails before any work is done, never at COMMIT after it. It commits when the block
  ends, and rolls back when anything is raised, so a reader never sees half of the block.
- An `atomic` inside another (the connection is already in a transaction) is a SAVEPOINT: its
  failure undoes only its own work and raises, and the outer block decides what happens next.
- sqlite3's errors leave as the caller's exceptions: `errors(error, phase)` makes one, where
  phase is "begin", "commit" or "body", so a locked database at BEGIN can say "busy, retry" while
  a full disk at COMMIT says "free space". Any other exception passes through unchanged.

Connections are opened in autocommit mode (`isolation_level=None`): Python's sqlite3 then never
opens or commits a transaction on its own, and `atomic` is the whole story.

The files are private whatever the umask the process inherits (outside systemd 022 is common, 000
happens): the data directory 0750, the database and its -wal/-shm 0640 (`private_dir`,
`private_files`); the service group reads them, other users get nothing.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import stat
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from seo_sync.errors import CacheBusy, CacheCorrupt, CacheError

Connection = sqlite3.Connection
SqliteError = sqlite3.Error
ErrorMap = Callable[[sqlite3.Error, str], Exception]
_savepoints = itertools.count()
DIR_NOT_ALLOWED = 0o027  # group write, and everything for others: data dir at most 0750
FILE_NOT_ALLOWED = 0o137  # group write/exec, and everything for others: database files at most 0640
DB_SUFFIXES = ("", "-wal", "-shm")


def private_dir(path: Path) -> None:
    """Create the directory `path` (and its parents) if missing, and take other users' access to it
    away (0750 at most; a setgid bit stays). OSError when it cannot be made or is not a directory."""
    path.mkdir(parents=True, exist_ok=True, mode=0o750)
    _restrict(path, DIR_NOT_ALLOWED)


def private_files(db: Path) -> None:
    """The database at `db` and its -wal and -shm: 0640 at most (the ones that exist, if ours)."""
    for suffix in DB_SUFFIXES:
        _restrict(Path(f"{db}{suffix}"), FILE_NOT_ALLOWED)


def _restrict(path: Path, not_allowed: int) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_IMODE(st.st_mode) & not_allowed and st.st_uid == os.geteuid():
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~not_allowed)


def connect_read_only(path: Path, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A read-only connection to the database at `path` (it must exist; nothing is ever created)."""
    # A URI: '?', '#' and '%' in a directory name would otherwise end or change the path.
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return conn


@contextmanager
def atomic(conn: sqlite3.Connection, errors: ErrorMap) -> Iterator[sqlite3.Connection]:
    """`with atomic(conn, errors):` one transaction, or a savepoint inside one (module docstring)."""
    if conn.in_transaction:
        name = f"atomic_{next(_savepoints)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as e:
        raise errors(e, "begin") from None
    try:
        yield conn
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise errors(exc, "body") from None
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        # SQLITE_FULL or an I/O error at COMMIT may already have rolled the transaction back.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise errors(e, "commit") from None


def as_cache_error(e: sqlite3.Error, phase: str) -> CacheError:
    """What an SQLite error on the cache means for the operator."""
    text = str(e)
    if phase == "begin" and ("locked" in text or "busy" in text):
        return CacheBusy(f"the cache is locked by another connection: {text}",
                         hint="another process holds a write transaction; retrying")
    if "full" in text:
        return CacheError(f"the cache disk is full: {text}", hint="free space; the batch was rolled back")
    if "locked" in text or "busy" in text:
        return CacheBusy(f"the cache is locked: {text}")
    if "malformed" in text or "not a database" in text:
        return CacheCorrupt(f"the cache is corrupt: {text}")
    return CacheError(f"cache write failed: {text}")


