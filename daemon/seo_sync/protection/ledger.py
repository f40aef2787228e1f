"""Delete protection: the confirmation token and the delete-rate ledger.

The ledger is `<data_dir>/protection.db`, a small SQLite file in rollback-journal mode (several
short-lived writers are normal: CLI commands, the daemon's jobs). Every operation opens it, runs one
`BEGIN IMMEDIATE` transaction and closes it, so counting is atomic across processes and survives
any restart.

Rate-limit rules (platform document: at most 10 deletes per entity type per hour):
- a window is a UTC clock hour; a reservation counts every window from the current hour on, so a
  clock stepped back (NTP) cannot reopen an hour already used;
- a delete is counted *before* its backup is written, so a crash at any later point cannot bypass
  the limit; the slot is given back only when nothing in DynamoDB changed for certain (the backup
  failed, or the conditional write was refused); an unknown outcome (timeout, crash) keeps it;
- a cascade reserves all of its slots at once or none.
"""

from __future__ import annotations

import hmac
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from seo_sync.cache.connect import atomic
from seo_sync.errors import ProtectionRefused, RateLimited
from seo_sync.protection import backups

CONFIRM_TOKEN = "I-UNDERSTAND-THIS-IS-DESTRUCTIVE"  # noqa: S105 - a phrase, not a secret  # nosec B105
HOUR = 3600
DAY = 86400
FUTURE_WINDOW_LIMIT = 2 * DAY  # windows further ahead than this are a clock error: dropped by reset
DEFAULT_MAX_CLOCK_JUMP = 2 * DAY  # prune never moves its clock further than this in one run

log = structlog.get_logger()

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS delete_windows (entity TEXT NOT NULL, hour INTEGER NOT NULL, "
    "count INTEGER NOT NULL, PRIMARY KEY (entity, hour))",
    "CREATE TABLE IF NOT EXISTS backup_index (file TEXT PRIMARY KEY, table_name TEXT NOT NULL, "
    "business_id TEXT NOT NULL, key_json TEXT NOT NULL, version INTEGER, time_us INTEGER NOT NULL, "
    "reason TEXT, outcome TEXT NOT NULL, updated_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def check_confirmation(token: str | None) -> None:
    """Raise ProtectionRefused unless `token` is exactly the confirmation token."""
    if token is None or not hmac.compare_digest(token.encode("utf-8", "replace"), CONFIRM_TOKEN.encode()):
        raise ProtectionRefused("deletes need the confirmation token; nothing was deleted",
                                hint=f"add --confirm {CONFIRM_TOKEN}")


def hour_of(now: float) -> int:
    """The start of the UTC clock hour holding `now` (epoch seconds)."""
    return int(now // HOUR) * HOUR


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass(frozen=True)
class Reservation:
    """Delete slots taken in one hour window: entity type → count."""

    hour: int
    counts: Mapping[str, int]


class Ledger:
    """The delete-rate windows, the backup index and small job state in `protection.db`."""

    def __init__(self, path: Path, busy_timeout_ms: int = 15000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One short connection and one BEGIN IMMEDIATE transaction (committed, or rolled back)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            try:  # create it 0600 ourselves; sqlite3 would honour the umask
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
            except FileExistsError:
                pass
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000)
        except sqlite3.Error as e:
            raise ProtectionRefused(f"cannot open the protection ledger {self.path}: {e}",
                                    hint="check the data directory's owner and mode") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as e:
            conn.close()
            raise self._failed(e, "open") from None
        try:
            with atomic(conn, self._failed):
                for ddl in _SCHEMA:
                    conn.execute(ddl)
                yield conn
        finally:
            conn.close()

    def _failed(self, e: sqlite3.Error, phase: str) -> ProtectionRefused:
        """What an SQLite error on the ledger means: the protected operation cannot go ahead."""
        return ProtectionRefused(f"the protection ledger {self.path} failed: {e}",
                                 hint="check disk space, its owner and mode, and that no process holds it locked")

    # -- delete-rate windows ----------------------------------------------------------------------

    def reserve(self, counts: Mapping[str, int], now: float, limit: int) -> Reservation:
        """Count `counts` deletes against the current hour, all or none; RateLimited when over `limit`."""
        hour = hour_of(now)
        wanted = {e: n for e, n in counts.items() if n > 0}
        with self._transaction() as conn:
            refusals = []
            for entity, n in sorted(wanted.items()):
                used, last = conn.execute(
                    "SELECT coalesce(sum(count), 0), max(hour) FROM delete_windows WHERE entity = ? AND hour >= ?",
                    (entity, hour)).fetchone()
                if used + n > limit:
                    reopen = (last if last is not None else hour) + HOUR
                    if n > limit:
                        refusals.append(f"{n} {entity} deletes at once exceed the limit of {limit} an hour")
                    else:
                        refusals.append(f"{entity}: {used} of {limit} deletes used this hour; "
                                        f"the window reopens at {iso_time(reopen)}")
            if refusals:
                raise RateLimited("delete rate limit: " + "; ".join(refusals) + "; nothing was deleted",
                                  hint="wait for the window to reopen, or delete in smaller parts")
            conn.executemany(
                "INSERT INTO delete_windows (entity, hour, count) VALUES (?, ?, ?) "
                "ON CONFLICT (entity, hour) DO UPDATE SET count = count + excluded.count",
                [(e, hour, n) for e, n in wanted.items()])
        log.info("protection.reserved", hour=iso_time(hour), counts=wanted)
        return Reservation(hour, wanted)

    def refund(self, hour: int, entity: str, n: int = 1) -> None:
        """Give back `n` slots of a delete that certainly changed nothing."""
        with self._transaction() as conn:
            conn.execute("UPDATE delete_windows SET count = max(count - ?, 0) WHERE entity = ? AND hour = ?",
                         (n, entity, hour))

    def used(self, entity: str, now: float) -> int:
        """Deletes counted for `entity` from the current hour on."""
        with self._transaction() as conn:
            return int(conn.execute(
                "SELECT coalesce(sum(count), 0) FROM delete_windows WHERE entity = ? AND hour >= ?",
                (entity, hour_of(now))).fetchone()[0])

    def reset(self, now: float) -> int:
        """Drop windows before the current hour (and clock-error windows far ahead); returns rows dropped."""
        hour = hour_of(now)
        with self._transaction() as conn:
            old = conn.execute("DELETE FROM delete_windows WHERE hour < ?", (hour,)).rowcount
            future = conn.execute("DELETE FROM delete_windows WHERE hour > ?", (hour + FUTURE_WINDOW_LIMIT,)).rowcount
        if future:
            log.warning("protection.future_windows_dropped", windows=future, now=iso_time(now))
        return old + future

    # -- backup index -----------------------------------------------------------------------------

    def record_backup(self, backup: backups.Backup, outcome: str, now: float) -> None:
        """Index a backup file with the outcome of its delete (pending, deleted, conflict, unknown)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO backup_index (file, table_name, business_id, key_json, version, time_us, reason, "
                "outcome, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file) DO UPDATE SET "
                "outcome = excluded.outcome, updated_at = excluded.updated_at",
                (backup.path.name, backup.table, backup.business_id, json.dumps(list(backup.key)),
                 backup.version, backup.time_us, backup.reason, outcome, now))

    def outcomes(self) -> dict[str, str]:
        """Backup file name → outcome of its delete."""
        with self._transaction() as conn:
            return dict(conn.execute("SELECT file, outcome FROM backup_index").fetchall())

    def forget_backups(self, files: Iterable[str]) -> None:
        """Drop index rows of pruned files."""
        with self._transaction() as conn:
            conn.executemany("DELETE FROM backup_index WHERE file = ?", [(f,) for f in files])

    # -- prune clock --------------------------------------------------------------------------------

    def prune_clock(self, now: float, max_jump: float, trust_clock: bool = False) -> float:
        """The time a prune may act as of: `now`, unless it jumped more than `max_jump` past the last run."""
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'prune_clock'").fetchone()
            last = float(row[0]) if row else None
            effective = now
            if last is not None and not trust_clock:
                if now > last + max_jump:
                    effective = last + max_jump
                    log.warning("backup.prune_clock_jump", now=iso_time(now), last_run=iso_time(last),
                                acting_as_of=iso_time(effective))
                elif now < last - HOUR:
                    log.warning("backup.prune_clock_backwards", now=iso_time(now), last_run=iso_time(last))
            conn.execute("INSERT INTO meta (key, value) VALUES ('prune_clock', ?) ON CONFLICT (key) "
                         "DO UPDATE SET value = max(CAST(value AS REAL), CAST(excluded.value AS REAL))",
                         (repr(float(effective)),))
            return effective
