"""Processes for the reader-contract tests: a writer standing in for the daemon and readers, each a
forked child running as its own numeric uid (no users are created; the tests run as root).

The writer runs as WRITER_UID with the cache's group CACHE_GID and UMask 0027, holding the WriterLock
and a `Cache` open for its whole life, like the daemon. Readers run as READER_UID with CACHE_GID as a
supplementary group and read through examples/reader.py (read-only URI, one snapshot per read, busy
retry). The data directory is 0750 writer:group as systemd/seo-sync.service makes it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import mmap
import os
import select
import shutil
import signal
import sqlite3
import stat
import struct
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

WRITER_UID, CACHE_GID = 64201, 64200  # the daemon's user and the cache's group (`seo-sync`)
READER_UID = 64202  # the generation server: member of CACHE_GID
OUTSIDER_UID = 64203  # any other local user
READS_PER_PHASE = 5  # reads every reader completes in each phase of a life-cycle test
MAX_MESSAGES = 20

_spec = importlib.util.spec_from_file_location(
    "reader_example", Path(__file__).resolve().parents[2] / "examples" / "reader.py")
assert _spec and _spec.loader
reader_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reader_example)


def keep_only_fds(*keep: int) -> None:
    """In a forked child: release every inherited descriptor but stdio and `keep`, so pipe EOFs work.

    Each one is pointed at /dev/null rather than closed. Python objects inherited from the parent
    still hold their numbers: under pytest's fd capture `sys.stdout` and `sys.stderr` write to
    descriptors above 2, and the logger writes through them. Were those numbers free, SQLite would
    open `-shm` or `-wal` on them, a log line would land in the WAL index, and a clean stop would
    lose every commit since the last checkpoint.
    """
    wanted = {0, 1, 2, *keep}
    inherited = [int(name) for name in os.listdir("/proc/self/fd")]
    null = os.open(os.devnull, os.O_RDWR)
    for fd in inherited:
        if fd not in wanted and fd != null:
            with contextlib.suppress(OSError):  # the listing's own descriptor, already closed
                os.fstat(fd)
                os.dup2(null, fd, inheritable=False)
    os.close(null)


def become(uid: int, gid: int, groups: list[int], umask: int = 0o027) -> None:
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
            keep_only_fds(w)
            become(uid, uid, groups)
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
            keep_only_fds(c_r, c_w)
            try:
                become(WRITER_UID, CACHE_GID, [])
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
        """A clean stop (Cache.close), or `raw-close` (a plain last close of a WAL database)."""
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
    from seo_sync.cache.reader import Reader
    from seo_sync.cache.writer import Cache
    from seo_sync.feed import Checkpoint
    from seo_sync.schema import TABLES
    from tests.support import changes

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
            cache.apply_batch(businesses, [changes.upsert("businesses", biz, seq, event="INSERT")],
                              Checkpoint("businesses", "arn:b", "shard-0", sequence_number=seq))
            kws = [changes.upsert("keywords", codec.item_from_python({"business_id": f"b{i}", "keyword_id": f"k{j}#en",
                                                                       "keyword": f"kw {j}"}), seq, event="INSERT")
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
        elif op == "resync":  # a full sync of businesses: shadow, fill, swap in one transaction
            items = list(Reader(cache.conn).items(businesses))
            cache.create_shadow(businesses)
            cache.insert_scanned(businesses, items)
            cache.swap_shadow(businesses, "arn:b", cache.checkpoints("businesses"), "test")
            reply(businesses=cache.count("businesses"))
        elif op == "raw-close":  # what any plain last close of a WAL database does
            assert cache._keeper is not None
            cache._keeper.close()
            cache.conn.close()
            lock.release()
            reply(stopped=True)
            return


@contextlib.contextmanager
def data_dir() -> Iterator[Path]:
    """A data directory laid out as the unit does it (0750 writer:cache-group, under a traversable
    parent); yields the cache path in it."""
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


def files(db: Path) -> dict[str, str]:
    """The data directory's files and their modes."""
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in db.parent.iterdir()}


class Readers:
    """Forked readers as READER_UID; each counts its successful reads in a shared page.

    Every read opens a fresh connection: opening is where a missing -wal/-shm bites. With `hold`
    each reader also reads on one long-lived connection (which, being connected, also keeps a
    closing writer from removing the WAL files, so it would hide the problem on its own).
    """

    def __init__(self, db: Path, n: int, hold: bool = False) -> None:
        self.page = mmap.mmap(-1, 8 * n)  # anonymous and shared: the children's counters
        self.n = n
        self.procs: list[tuple[int, int, int]] = []  # pid, stop pipe (write end), result pipe (read end)
        for slot in range(n):
            stop_r, stop_w = os.pipe()
            out_r, out_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    keep_only_fds(stop_r, out_w)
                    become(READER_UID, READER_UID, [CACHE_GID])
                    result = self._loop(db, slot, stop_r, hold)
                    os.write(out_w, json.dumps(result).encode())
                finally:
                    os._exit(0)
            os.close(stop_r)
            os.close(out_w)
            self.procs.append((pid, stop_w, out_r))

    def _loop(self, db: Path, slot: int, stop_fd: int, hold: bool) -> dict[str, Any]:
        reads, errors, messages = 0, 0, list[str]()
        held: sqlite3.Connection | None = None
        while not select.select([stop_fd], [], [], 0)[0]:
            try:
                conn = reader_example.connect(db)
                try:
                    reader_example.counts(conn)
                finally:
                    conn.close()
                if hold:
                    held = held or reader_example.connect(db)
                    reader_example.counts(held)
                reads += 1
                struct.pack_into("q", self.page, 8 * slot, reads)
            except sqlite3.Error as e:
                errors += 1
                if len(messages) < MAX_MESSAGES:
                    messages.append(f"{getattr(e.__cause__ or e, 'sqlite_errorname', '?')}: {e}")
        return {"reads": reads, "errors": errors, "messages": messages}

    def reads(self) -> list[int]:
        """Successful reads so far, per reader."""
        return [struct.unpack_from("q", self.page, 8 * i)[0] for i in range(self.n)]

    def wait_for_reads(self, what: str, timeout: float = 90.0) -> None:
        """Wait until every reader has completed READS_PER_PHASE more reads (fails after `timeout`).

        Generous: on a loaded 2-core machine (four test workers beside two busy loops) one reader
        was seen to complete no read for 30 s after the writer was killed. The test is about errors,
        which fail it whatever the time; a slow turn is not one."""
        want = [r + READS_PER_PHASE for r in self.reads()]
        deadline = time.monotonic() + timeout
        while any(r < w for r, w in zip(self.reads(), want, strict=True)):
            assert time.monotonic() < deadline, f"readers stalled {what}: {self.reads()} < {want}"
            time.sleep(0.01)

    def finish(self) -> list[dict[str, Any]]:
        """Stop the readers; their results."""
        results = []
        for pid, stop_w, out_r in self.procs:
            os.close(stop_w)
            chunks = []
            while chunk := os.read(out_r, 65536):
                chunks.append(chunk)
            os.close(out_r)
            os.waitpid(pid, 0)
            results.append(json.loads(b"".join(chunks) or b'{"errors": -1, "messages": ["reader died"]}'))
        self.procs = []
        return results
