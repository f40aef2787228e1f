"""The reader contract (docs/reader-contract.md), tested across real uids.

The writer ("the daemon") is a forked child running as its own uid and group with UMask 0027,
holding the WriterLock and a `Cache` open for its whole life, like the daemon. Readers are forked
children running as another uid that has the cache's group as a supplementary group, and they read
through examples/reader.py (read-only URI, one snapshot per read, busy retry). The data directory is
0750 writer:group as systemd/seo-sync.service makes it, the files 0640. Numeric ids only: no users
are created.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import stat
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.nonroot,
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to other uids needs root (run this module as root)"),
]

WRITER_UID, CACHE_GID = 64201, 64200  # the daemon's user and the cache's group (`seo-sync`)
READER_UID = 64202  # the generation server: member of CACHE_GID
OUTSIDER_UID = 64203  # any other local user

_spec = importlib.util.spec_from_file_location(
    "reader_example", Path(__file__).resolve().parents[2] / "examples" / "reader.py")
assert _spec and _spec.loader
reader_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reader_example)


def _keep_only_fds(*keep: int) -> None:
    """In a forked child: close every inherited descriptor but stdio and `keep`, so pipe EOFs work."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _become(uid: int, gid: int, groups: list[int], umask: int = 0o027) -> None:
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    os.umask(umask)


def run_as(uid: int, groups: list[int], fn: Callable[[], Any]) -> Any:
    """Run `fn` in a forked child as `uid` (primary group = uid) with supplementary `groups`; its JSON result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            _keep_only_fds(w)
            _become(uid, uid, groups)
            result = {"ok": fn()}
        except BaseException as e:
            result, code = {"error": f"{type(e).__name__}: {e}"}, 0
        try:
            os.write(w, json.dumps(result, default=str).encode())
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b'{"error": "child died"}')


def read_counts(db: Path) -> Callable[[], dict[str, int]]:
    """A reader job: row counts through the example reader."""
    def job() -> dict[str, int]:
        conn = reader_example.connect(db)
        try:
            return reader_example.counts(conn)
        finally:
            conn.close()
    return job


class Writer:
    """The daemon stand-in: a forked child as WRITER_UID:CACHE_GID holding the lock and an open Cache."""

    def __init__(self, db: Path) -> None:
        c_r, p_w = os.pipe()
        p_r, c_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            _keep_only_fds(c_r, c_w)
            try:
                _become(WRITER_UID, CACHE_GID, [])
                _writer_main(db, os.fdopen(c_r), os.fdopen(c_w, "w"))
            except BaseException:
                os.write(c_w, (json.dumps({"error": traceback.format_exc()}) + "\n").encode())
            finally:
                os._exit(0)
        os.close(c_r)
        os.close(c_w)
        self._in = os.fdopen(p_w, "w")
        self._out = os.fdopen(p_r)
        self.alive = True
        self.answer()

    def send(self, command: str) -> None:
        """Send a command without waiting for its answer."""
        self._in.write(command + "\n")
        self._in.flush()

    def answer(self) -> dict[str, Any]:
        """The next answer; fails the test if the writer reported an error or died."""
        line = self._out.readline()
        assert line, "the writer died"
        msg = json.loads(line)
        assert "error" not in msg, msg["error"]
        return msg

    def command(self, command: str) -> dict[str, Any]:
        """Send a command and wait for its answer."""
        self.send(command)
        return self.answer()

    def stop(self, how: str = "stop") -> None:
        """A clean stop (Cache.close), or `raw-close` (a bare sqlite3 close of a WAL database)."""
        self.command(how)
        os.waitpid(self.pid, 0)
        self.alive = False

    def kill9(self) -> None:
        """SIGKILL, like systemd after TimeoutStopSec or the OOM killer."""
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self.alive = False

    def close_pipes(self) -> None:
        """Release the parent's ends of the pipes."""
        self._in.close()
        self._out.close()


def _writer_main(db: Path, commands: Any, answers: Any) -> None:
    from seo_sync import codec
    from seo_sync.cache.lock import WriterLock
    from seo_sync.cache.sql import Checkpoint
    from seo_sync.cache.writer import Cache
    from seo_sync.changes import Change
    from seo_sync.schema import TABLES

    lock = WriterLock(db).acquire()
    cache = Cache.open(db)
    businesses, keywords = TABLES["businesses"], TABLES["keywords"]
    written = cache.count("businesses")

    def reply(**kw: Any) -> None:
        answers.write(json.dumps(kw) + "\n")
        answers.flush()

    def write(n: int) -> None:
        nonlocal written
        for i in range(written, written + n):
            seq = str(i + 1).zfill(22)
            biz = codec.item_from_python({"business_id": f"b{i}", "name": f"Business {i}", "_version": 1})
            cache.apply_batch(businesses, [Change("upsert", "businesses", (f"b{i}",), seq, item=biz, version=1,
                                                  event="INSERT")],
                              Checkpoint("businesses", "arn:b", "shard-0", sequence_number=seq))
            kws = [Change("upsert", "keywords", (f"b{i}", f"k{j}#en"), seq,
                          item=codec.item_from_python({"business_id": f"b{i}", "keyword_id": f"k{j}#en",
                                                       "keyword": f"kw {j}"}), event="INSERT")
                   for j in range(2)]
            cache.apply_batch(keywords, kws, Checkpoint("keywords", "arn:k", "shard-0", sequence_number=seq))
        written += n

    reply(pid=os.getpid())
    for line in commands:
        op, *args = line.split()
        if op == "write":
            write(int(args[0]))
            reply(businesses=cache.count("businesses"))
        elif op == "stop":
            cache.close()
            lock.release()
            reply(stopped=True)
            return
        elif op == "raw-close":
            cache.conn.close()
            lock.release()
            reply(stopped=True)
            return


@pytest.fixture
def db() -> Iterator[Path]:
    """A data directory laid out as the unit does it: 0750 writer:cache-group, under a traversable parent."""
    base = Path(tempfile.mkdtemp(prefix="seo-reader-contract-"))
    try:
        base.chmod(0o755)
        data = base / "seo-sync"
        data.mkdir()
        os.chown(data, WRITER_UID, CACHE_GID)
        data.chmod(0o750)  # StateDirectoryMode=0750
        yield data / "cache.db"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def writer(db: Path) -> Iterator[Writer]:
    """A running writer with three businesses (and two keywords each) committed."""
    w = Writer(db)
    w.command("write 3")
    yield w
    if w.alive:
        w.kill9()
    w.close_pipes()


def files(db: Path) -> dict[str, str]:
    """The data directory's files and their modes."""
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in db.parent.iterdir()}


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
    """Cache.close leaves a rollback-journal file with no -wal/-shm, which a read-only reader can open."""
    writer.stop()
    assert set(files(db)) == {"cache.db", "cache.db.lock"}
    assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 3
    restarted = Writer(db)  # and the next start goes back to WAL with readers still welcome
    try:
        restarted.command("write 1")
        assert {"cache.db-wal", "cache.db-shm"} <= set(files(db))
        assert run_as(READER_UID, [CACHE_GID], read_counts(db))["ok"]["businesses"] == 4
        restarted.stop()
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
            _keep_only_fds(w, q_r)
            _become(READER_UID, READER_UID, [CACHE_GID])
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
    """Why Cache.close does more than close: after a plain close of a WAL database a read-only reader fails."""
    writer.stop("raw-close")
    assert set(files(db)) == {"cache.db", "cache.db.lock"}
    error = run_as(READER_UID, [CACHE_GID], read_counts(db))["error"]
    assert "readonly database" in error and "reader-contract" in error


def test_a_read_transaction_during_start_delays_the_writer_and_then_lets_it_in(tmp_path):
    """After a clean stop, opening for writing waits for a running read, raises CacheBusy, and works after it."""
    from seo_sync.cache.writer import Cache
    from seo_sync.errors import CacheBusy

    path = tmp_path / "cache.db"
    Cache.open(path).close()
    conn = reader_example.connect(path)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM businesses").fetchone()
    with pytest.raises(CacheBusy) as exc:
        Cache.open(path, busy_timeout_ms=200)
    assert "read transaction" in str(exc.value)
    conn.execute("COMMIT")
    cache = Cache.open(path, busy_timeout_ms=200)
    assert cache.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reader_example.counts(conn)["businesses"] == 0  # the reader's connection still works in WAL mode
    cache.close()
    conn.close()
