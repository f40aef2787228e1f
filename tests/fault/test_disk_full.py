"""Disk full (TESTING row 24): a real ENOSPC on the cache, from a 4 MB tmpfs in a private mount namespace.

The writer runs in a child process inside `unshare -rm` (a user + mount namespace: no root needed
where unprivileged user namespaces are allowed, nothing mounted outside the child). It fills the
tmpfs batch by batch through `Cache.apply_batch` until SQLite reports SQLITE_FULL, then checks the
contract: the batch rolled back with its checkpoint, the file is intact, a reader keeps reading,
and once space returns the same batch applies and the following ones too. The child reports what it
saw as JSON; the assertions are made here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
TMPFS_SIZE = "4m"
# Deleted to make room again. It must leave room for more than the resumed batches: the WAL never
# reaches its auto-checkpoint size (1000 pages, 4 MB) on so small a disk, so a checkpoint (the clean
# close at the end) needs about as much free space again as the data sitting in the WAL.
FILLER_BYTES = 2_500_000
ROWS_PER_BATCH = 20
ROW_BYTES = 3000  # a 20-row batch is ~60 KB of WAL: the tmpfs fills up in a few dozen batches
MAX_BATCHES = 400


def _unshare_works() -> str | None:
    """None if `unshare -rm` can mount a tmpfs here, else why not."""
    if not shutil.which("unshare"):
        return "unshare(1) is not installed"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"'
         ' && rmdir "$d"'], capture_output=True, text=True, timeout=30)
    return None if probe.returncode == 0 else f"unshare -rm + tmpfs mount fails here: {probe.stderr.strip()}"


def child(directory: str) -> None:
    """Runs inside the namespace with `directory` on a tiny tmpfs; prints one JSON report."""
    from seo_sync.cache.lock import WriterLock
    from seo_sync.cache.reader import Reader
    from seo_sync.cache.sql import Checkpoint
    from seo_sync.cache.writer import Cache
    from seo_sync.changes import Change
    from seo_sync.errors import CacheError
    from seo_sync.schema import TABLES

    spec = TABLES["businesses"]
    path = Path(directory) / "cache.db"
    report: dict = {}

    def batch(n: int) -> tuple[list[Change], Checkpoint]:
        seq = str(n).zfill(22)
        changes = [Change("upsert", spec.name, (f"b{n}-{i}",), seq,
                          item={"business_id": {"S": f"b{n}-{i}"}, "name": {"S": f"{n}-{i}-" + "x" * ROW_BYTES},
                                "_version": {"N": "1"}}, version=1, event="INSERT")
                   for i in range(ROWS_PER_BATCH)]
        return changes, Checkpoint(spec.name, "arn:stream", "shard-0", sequence_number=seq)

    def state(cache: Cache, reader: Reader) -> dict:
        cps = cache.checkpoints(spec.name)
        return {
            "rows": cache.count(spec.name),
            "reader_rows": reader.count(spec.name),
            "checkpoint": int(cps[0].sequence_number) if cps else 0,
            "integrity": cache.conn.execute("PRAGMA integrity_check").fetchone()[0],
            "in_transaction": cache.conn.in_transaction,
        }

    lock = WriterLock(path).acquire()
    cache = Cache.open(path)
    (Path(directory) / "filler").write_bytes(b"\0" * FILLER_BYTES)
    reader = Reader.open(path)
    failed_at = None
    for n in range(1, MAX_BATCHES):
        changes, cp = batch(n)
        try:
            cache.apply_batch(spec, changes, cp)
        except CacheError as e:
            failed_at = n
            report["error"] = {"type": type(e).__name__, "exit_code": int(e.exit_code), "message": e.message}
            break
        except Exception as e:  # anything else is a contract breach: report it rather than crash
            failed_at = n
            report["error"] = {"type": type(e).__name__, "exit_code": None, "message": str(e)}
            break
    report["failed_at"] = failed_at
    if failed_at is None:
        print(json.dumps(report))
        return
    report["after_failure"] = state(cache, reader)
    # The daemon backs off and retries the same batch: while the disk is still full that keeps failing cleanly.
    changes, cp = batch(failed_at)
    try:
        cache.apply_batch(spec, changes, cp)
        report["retry_while_full"] = "applied"
    except CacheError as e:
        report["retry_while_full"] = type(e).__name__
    report["after_retry"] = state(cache, reader)
    (Path(directory) / "filler").unlink()
    cache.apply_batch(spec, changes, cp)
    for n in range(failed_at + 1, failed_at + 4):
        cache.apply_batch(spec, *batch(n))
    report["after_space_returned"] = state(cache, reader)
    reader.close()
    cache.close()
    reopened = Cache.open(path)  # quick_check on open
    report["reopened_rows"] = reopened.count(spec.name)
    reopened.close()
    lock.release()
    print(json.dumps(report))


def run_child(tmp_path: Path) -> dict:
    """Mount a tmpfs on a fresh directory in a private namespace and run `child` there."""
    reason = _unshare_works()
    if reason:
        pytest.skip(reason + " (TESTING row 24: use libfiu's fiu-run instead)")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    script = "import sys; from tests.fault.test_disk_full import child; child(sys.argv[1])"
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={TMPFS_SIZE} tmpfs "$1" && exec "$2" -c "$3" "$1"',
         "sh", str(mnt), sys.executable, script],
        cwd=REPO, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run of the disk-full scenario, shared by the assertions below."""
    return run_child(tmp_path_factory.mktemp("disk_full"))


def test_disk_full_is_reached_and_reported_as_a_cache_io_error(report):
    """Filling the tmpfs ends in a CacheError with exit code EX_IOERR that says the disk is full."""
    assert report["failed_at"] is not None, "the tmpfs never filled up"
    assert report["failed_at"] > 1  # earlier batches committed normally
    err = report["error"]
    assert err["type"] == "CacheError" and err["exit_code"] == 74, err
    assert "full" in err["message"]


def test_disk_full_rolls_back_the_batch_and_leaves_the_checkpoint(report):
    """After SQLITE_FULL no transaction is open, the checkpoint is the last committed batch, rows match it."""
    s = report["after_failure"]
    assert s["in_transaction"] is False
    assert s["checkpoint"] == report["failed_at"] - 1
    assert s["rows"] == s["checkpoint"] * ROWS_PER_BATCH
    assert s["integrity"] == "ok"


def test_readers_keep_reading_the_last_committed_state_while_the_disk_is_full(report):
    """A read-only connection opened before the failure still reads, and sees exactly the committed rows."""
    for stage in ("after_failure", "after_retry"):
        s = report[stage]
        assert s["reader_rows"] == s["rows"] == s["checkpoint"] * ROWS_PER_BATCH


def test_retrying_while_still_full_fails_cleanly_again(report):
    """A backoff retry before space returns fails the same way and changes nothing."""
    assert report["retry_while_full"] == "CacheError"
    assert report["after_retry"] == report["after_failure"]


def test_applies_resume_when_space_returns(report):
    """Once the filler is deleted the failed batch and the following ones commit; the file stays intact."""
    s = report["after_space_returned"]
    assert s["checkpoint"] == report["failed_at"] + 3
    assert s["rows"] == s["reader_rows"] == s["checkpoint"] * ROWS_PER_BATCH
    assert s["integrity"] == "ok" and s["in_transaction"] is False
    assert report["reopened_rows"] == s["rows"]
