"""The reader contract (docs/reader-contract.md), tested across real uids.

The writer ("the daemon") and the readers are forked children running as their own uids
(tests/support/reader_procs.py); readers read through examples/reader.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.reader_procs import (
    CACHE_GID,
    OUTSIDER_UID,
    READER_UID,
    WRITER_UID,
    Writer,
    become,
    data_dir,
    files,
    keep_only_fds,
    read_counts,
    reader_example,
    run_as,
)

pytestmark = [
    pytest.mark.nonroot,
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to other uids needs root (run this module as root)"),
]


@pytest.fixture
def db() -> Iterator[Path]:
    """The cache path in a data directory laid out as the unit does it."""
    with data_dir() as path:
        yield path


@pytest.fixture
def writer(db: Path) -> Iterator[Writer]:
    """A running writer with three businesses (and two keywords each) committed."""
    w = Writer(db)
    w.command("write 3")
    yield w
    if w.alive:
        w.kill9()
    w.close_pipes()


def test_cache_files_get_the_contract_modes_and_group(db, writer):
    """With UMask 0027 in a 0750 directory the cache, -wal and -shm are 0640 and belong to the cache group."""
    assert oct(stat.S_IMODE(db.parent.stat().st_mode)) == "0o750"
    for name in ("cache.db", "cache.db-wal", "cache.db-shm"):
        st = (db.parent / name).stat()
        assert (oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid) == ("0o640", WRITER_UID, CACHE_GID), name


def test_group_reader_reads_while_the_daemon_runs(db, writer):
    """A reader in the cache group reads counts and a whole profile from one snapshot while the writer holds the DB."""
    assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 3

    def profile() -> Any:
        conn = reader_example.connect(db)
        return reader_example.business_profile(conn, "b1")

    got = run_as(READER_UID, [CACHE_GID], profile)["ok"]
    assert got["business"]["name"] == "Business 1"
    assert [k["keyword_id"] for k in got["keywords"]] == ["k0#en", "k1#en"]


def test_readers_keep_reading_while_the_daemon_writes(db, writer):
    """Fifty reads during thirty write batches all succeed and never see the row count go down."""
    writer.send("write 30")

    def many() -> list[int]:
        conn = reader_example.connect(db)
        return [reader_example.counts(conn)["businesses"] for _ in range(50)]

    seen = run_as(READER_UID, [CACHE_GID], many)
    assert writer.answer()["businesses"] == 33
    assert "ok" in seen, seen
    assert seen["ok"] == sorted(seen["ok"]) and 3 <= seen["ok"][0] and seen["ok"][-1] <= 33
    assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 33


def test_a_user_outside_the_group_cannot_open_the_cache(db, writer):
    """The directory mode is what keeps other local users out (negative control)."""
    assert "unable to open database file" in run_as(OUTSIDER_UID, [], read_counts(db))["error"]


def test_a_reader_can_neither_write_nor_create_files(db, writer):
    """The read-only URI refuses writes, and the reader may not create files in the data directory."""
    def try_write() -> str:
        conn = reader_example.connect(db)
        try:
            conn.execute("DELETE FROM businesses")
        except sqlite3.OperationalError as e:
            return str(e)
        return "wrote"

    def try_create() -> str:
        try:
            os.close(os.open(db.parent / "planted", os.O_CREAT | os.O_WRONLY, 0o644))
        except PermissionError:
            return "denied"
        return "created"

    assert "readonly" in run_as(READER_UID, [CACHE_GID], try_write)["ok"]
    assert run_as(READER_UID, [CACHE_GID], try_create)["ok"] == "denied"


def test_a_reader_cannot_take_the_writer_lock(db, writer):
    """The lock file is 0600: a reader cannot even open it, so it cannot hold the lock and stall the daemon."""
    assert oct(stat.S_IMODE((db.parent / "cache.db.lock").stat().st_mode)) == "0o600"

    def grab() -> str:
        import fcntl

        fd = os.open(db.parent / "cache.db.lock", os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return "locked"

    assert "PermissionError" in run_as(READER_UID, [CACHE_GID], grab)["error"]


def test_reader_reads_after_kill_9_and_while_the_daemon_restarts(db, writer):
    """After SIGKILL the -wal/-shm stay; a reader reads every committed row, and the restarted writer's too."""
    writer.kill9()
    assert {"cache.db-wal", "cache.db-shm"} <= set(files(db))
    assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"] == {
        "businesses": 3, "questionnaires": 0, "keywords": 6, "service_areas": 0, "prompt_templates": 0}
    restarted = Writer(db)
    try:
        restarted.command("write 2")
        assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 5
    finally:
        restarted.kill9()
        restarted.close_pipes()


def test_reader_reads_after_a_clean_stop(db, writer):
    """Cache.close leaves -wal and -shm in place (WAL mode for good), so a read-only reader opens the file."""
    writer.stop()
    assert set(files(db)) == {"cache.db", "cache.db-wal", "cache.db-shm", "cache.db.lock"}
    assert (db.parent / "cache.db-wal").stat().st_size == 0  # checkpointed: nothing left to scan
    assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 3
    restarted = Writer(db)
    try:
        restarted.command("write 1")
        assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 4
        restarted.stop()
        assert {"cache.db-wal", "cache.db-shm"} <= set(files(db))
        assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 4
    finally:
        if restarted.alive:
            restarted.kill9()
        restarted.close_pipes()


def test_a_connected_reader_survives_stop_and_restart_of_the_daemon(db, writer):
    """A reader holding its connection across a clean stop and a restart keeps reading, and sees new rows."""
    r, w = os.pipe()
    q_r, q_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a long-lived reader: one connection, one count per request line
        try:
            keep_only_fds(w, q_r)
            become(READER_UID, READER_UID, [CACHE_GID])
            conn = reader_example.connect(db)
            out = os.fdopen(w, "w")
            for _ in os.fdopen(q_r):
                try:
                    out.write(json.dumps(reader_example.counts(conn)["businesses"]) + "\n")
                except sqlite3.Error as e:
                    out.write(json.dumps(str(e)) + "\n")
                out.flush()
        finally:
            os._exit(0)
    os.close(w)
    os.close(q_r)
    ask_in, answers = os.fdopen(q_w, "w"), os.fdopen(r)

    def ask() -> Any:
        ask_in.write("count\n")
        ask_in.flush()
        return json.loads(answers.readline())

    restarted = None
    try:
        assert ask() == 3
        writer.stop()  # the reader is connected: the WAL files must stay for it
        assert {"cache.db-wal", "cache.db-shm"} <= set(files(db))
        assert ask() == 3
        assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 3
        restarted = Writer(db)
        restarted.command("write 2")
        assert ask() == 5
    finally:
        if restarted is not None:
            restarted.stop()
            restarted.close_pipes()
        ask_in.close()
        answers.close()
        os.waitpid(pid, 0)
    assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 5


def test_a_bare_wal_close_would_lock_readers_out(db, writer):
    """Why Cache.close keeps a read-only connection until last: a plain last close deletes -wal/-shm
    and a read-only reader then fails."""
    writer.stop("raw-close")
    assert set(files(db)) == {"cache.db", "cache.db.lock"}
    error = run_as(READER_UID, [CACHE_GID], read_counts(db))["error"]
    assert "readonly database" in error and "reader-contract" in error


def test_a_read_transaction_does_not_delay_the_writer_start(tmp_path):
    """The writer never switches the journal mode, so a reader mid-transaction does not hold up its start."""
    from seo_sync.cache.writer import Cache

    path = tmp_path / "cache.db"
    Cache.open(path).close()
    conn = reader_example.connect(path)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM businesses").fetchone()
    cache = Cache.open(path, busy_timeout_ms=200)
    assert cache.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("COMMIT")
    assert reader_example.counts(conn)["businesses"] == 0
    cache.close()
    conn.close()


def test_a_rollback_journal_cache_is_converted_with_its_wal_files_first(db):
    """A cache an older version left in rollback-journal mode gets -wal/-shm before the switch to WAL."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE businesses (business_id TEXT PRIMARY KEY)")
    conn.execute("INSERT INTO businesses VALUES ('old')")
    conn.close()
    os.chown(db, WRITER_UID, CACHE_GID)
    db.chmod(0o640)
    assert set(files(db)) == {"cache.db"}
    w = Writer(db)
    try:
        assert {"cache.db-wal", "cache.db-shm"} <= set(files(db))
        assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 1
        w.stop()
        assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 1
    finally:
        if w.alive:
            w.kill9()
        w.close_pipes()
