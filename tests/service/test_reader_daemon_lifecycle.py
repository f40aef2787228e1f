"""The real daemon, run as its own user with UMask 0027, never fails a reader of another uid in its
group (no write access to the data directory) through starts, resyncs, clean stops and SIGKILLs.

Readers (tests/support/reader_procs.py) read through examples/reader.py without pause, a fresh
connection for every read plus one long-lived connection.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import Daemon, cache_counts, wait_until
from tests.support.reader_procs import CACHE_GID, READS_PER_PHASE, WRITER_UID, Readers, data_dir

pytestmark = [
    pytest.mark.nonroot,
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to other uids needs root (run this module as root)"),
]
STARTS = 4  # each: start, SIGHUP resync of every table, then a clean stop (even) or SIGKILL (odd)

# Run as root by the harness: open the notify socket's directory to the service user, then become
# that user with its group and the unit's UMask.
AS_SERVICE_USER = f"""\
chmod 0777 "${{NOTIFY_SOCKET%/*}}" "$NOTIFY_SOCKET"
umask 0027
exec setpriv --reuid={WRITER_UID} --regid={CACHE_GID} --clear-groups "$@"
"""


@pytest.fixture
def db() -> Iterator[Path]:
    """The cache path in a data directory laid out as the unit does it."""
    with data_dir() as path:
        yield path


def _resynced(daemon: Daemon, before: dict[str, float | None]) -> bool:
    tables = daemon.status()["tables"]
    return all(t["state"] == "streaming" and (t["last_full_sync"] or 0) > (before[n] or 0)
               for n, t in tables.items())


@pytest.mark.slow
def test_group_readers_see_no_error_through_daemon_starts_resyncs_stops_and_kills(seeded, start_daemon, db,
                                                                                tmp_path):
    """Four starts of the real daemon, each with a resync of every table, two stops and two SIGKILLs:
    two group readers see zero errors."""
    wrapper = tmp_path / "as-service-user.sh"
    wrapper.write_text(AS_SERVICE_USER)
    prefix = ("/bin/sh", str(wrapper))
    daemon = start_daemon(data_dir=db.parent, prefix=prefix)
    daemon.wait_ready()
    readers = Readers(db, 2)
    try:
        for start in range(STARTS):
            if start:
                daemon = start_daemon(data_dir=db.parent, prefix=prefix)
                daemon.wait_ready()
            readers.wait_for_reads(f"after start {start}")
            before = {n: t["last_full_sync"] for n, t in daemon.status()["tables"].items()}
            daemon.signal(signal.SIGHUP)
            wait_until(lambda d=daemon, b=before: _resynced(d, b), 30, f"resync {start}")
            readers.wait_for_reads(f"after resync {start}")
            if start % 2 == 0:
                daemon.signal(signal.SIGTERM)
                assert daemon.wait_exit() == 0, daemon.log()[-2000:]
            else:
                daemon.signal(signal.SIGKILL)
                daemon.wait_exit()
            readers.wait_for_reads(f"after stop {start}")
    finally:
        results = readers.finish()
    assert [r["errors"] for r in results] == [0, 0], [r["messages"] for r in results]
    assert all(r["reads"] >= READS_PER_PHASE * 3 * STARTS for r in results)
    assert cache_counts(db.parent)["keywords"] == 100
