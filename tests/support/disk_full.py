"""A cache writer that fills a tiny disk: run inside a private tmpfs by tests/fault/test_disk_full.py.

`child(directory)` fills the tmpfs batch by batch through `Cache.apply_batch` until SQLite reports
SQLITE_FULL, retries while still full, frees space and applies again, and prints what it saw as one
JSON report; the test makes the assertions. `unshare_works()` says whether this machine can mount
such a tmpfs without root (a user + mount namespace).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from seo_sync.cache.lock import WriterLock
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.changes import Change
from seo_sync.errors import CacheError
from seo_sync.feed import Checkpoint
from seo_sync.schema import TABLES
from tests.support import changes as test_changes

# Deleted to make room again. It must leave room for more than the resumed batches: the WAL never
# reaches its auto-checkpoint size (1000 pages, 4 MB) on so small a disk, so a checkpoint (the clean
# close at the end) needs about as much free space again as the data sitting in the WAL.
FILLER_BYTES = 2_500_000
ROWS_PER_BATCH = 20
ROW_BYTES = 3000  # a 20-row batch is ~60 KB of WAL: the tmpfs fills up in a few dozen batches
MAX_BATCHES = 400


def unshare_works() -> str | None:
    """None if `unshare -rm` can mount a tmpfs here, else why not."""
    if not shutil.which("unshare"):
        return "unshare(1) is not installed"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"'
         ' && rmdir "$d"'], capture_output=True, text=True, timeout=30)
    return None if probe.returncode == 0 else f"unshare -rm + tmpfs mount fails here: {probe.stderr.strip()}"


def child(directory: str) -> None:
    """Runs inside the namespace with `directory` on a tiny tmpfs; prints one JSON report."""
    spec = TABLES["businesses"]
    path = Path(directory) / "cache.db"
    report: dict = {}

    def batch(n: int) -> tuple[list[Change], Checkpoint]:
        seq = str(n).zfill(22)
        changes = [test_changes.upsert(spec.name, {"business_id": {"S": f"b{n}-{i}"},
                                                   "name": {"S": f"{n}-{i}-" + "x" * ROW_BYTES},
                                                   "_version": {"N": "1"}}, seq, event="INSERT")
                   for i in range(ROWS_PER_BATCH)]
        return changes, Checkpoint(spec.name, "arn:stream", "shard-0", sequence_number=seq)

    def state(cache: Cache, reader: Reader) -> dict:
        cps = cache.checkpoints(spec.name)
        return {
            "rows": cache.count(spec.name),
            "reader_rows": reader.count(spec.name),
            "checkpoint": int(cps[0].sequence_number or 0) if cps else 0,
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
