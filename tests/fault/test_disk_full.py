"""Disk full: a real ENOSPC on the cache, from a 4 MB tmpfs in a private mount namespace.

The writer runs in a child process inside `unshare -rm` (a user + mount namespace: no root needed
where unprivileged user namespaces are allowed, nothing mounted outside the child). It fills the
tmpfs batch by batch through `Cache.apply_batch` until SQLite reports SQLITE_FULL, then checks the
contract: the batch rolled back with its checkpoint, the file is intact, a reader keeps reading,
and once space returns the same batch applies and the following ones too. The child reports what it
saw as JSON; the assertions are made here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.disk_full import ROWS_PER_BATCH, child, unshare_works

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
TMPFS_SIZE = "4m"


def run_child(tmp_path: Path) -> dict:
    """Mount a tmpfs on a fresh directory in a private namespace and run `child` there."""
    reason = unshare_works()
    if reason:
        pytest.skip(reason + " (where namespaces are off, libfiu's fiu-run can inject ENOSPC instead)")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    script = f"import sys; from {child.__module__} import child; child(sys.argv[1])"
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
