"""Why the daemon is not healthy, in lines an operator reads once (`health`, status, systemd's STATUS=).

When DynamoDB cannot be reached every table fails the same way; five copies of one error, each
naming its own table, made a 700-character line. Errors that differ only by the table they name
are folded into one line listing the tables. Before the daemon is ready the errors are shown too:
"starting" alone hid why the start was taking long.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from seo_sync.cache.wal_files import WAL_LARGE_BYTES, wal_bytes
from seo_sync.schema import TABLES

TABLE_PLACEHOLDER = "<table>"


def _generic(error: str, name: str, prefix: str) -> str:
    """`error` with the table it names taken out, so the same failure of two tables reads the same."""
    spec = TABLES.get(name)
    dynamo_name = spec.dynamo_name(prefix) if spec is not None else None
    if dynamo_name:
        error = error.replace(f" on {dynamo_name} ", " ").replace(dynamo_name, TABLE_PLACEHOLDER)
    return error


def fold_table_errors(errors: Mapping[str, str], prefix: str) -> list[str]:
    """One line per distinct error: `table: error`, or `N tables (a, b, …): error` when they share it."""
    groups: dict[str, list[str]] = {}
    for name, error in errors.items():
        groups.setdefault(_generic(error, name, prefix), []).append(name)
    lines = []
    for generic, names in groups.items():
        if len(names) == 1:
            lines.append(f"{names[0]}: {errors[names[0]]}")
        else:
            shown = "all tables" if set(names) == set(TABLES) else f"{len(names)} tables ({', '.join(names)})"
            lines.append(f"{shown}: {generic}")
    return lines


def health_reasons(tables: Mapping[str, Mapping[str, Any]], *, prefix: str, lag_alarm: float, ready: bool,
                   boot_synced: bool, had_complete_cache: bool) -> list[str]:
    """Why the daemon is not healthy now; empty when it is.

    `tables` is the engine's snapshot per table (state, error, lag_seconds, dead_letters). Before READY the first
    reason is "starting", followed by the table errors that keep it from becoming ready.
    """
    # A table in error, or one whose changes cannot be committed (disk full, I/O error, read-only file).
    errors = {name: str(t.get("error") or "error") for name, t in tables.items()
              if t.get("state") == "error" or t.get("commit_error")}
    reasons = fold_table_errors(errors, prefix)
    reasons += [f"{name}: lag {t['lag_seconds']:.0f}s" for name, t in tables.items()
                if name not in errors and (t.get("lag_seconds") or 0) > lag_alarm]
    reasons += [f"{name}: {t['stalled_shards']} open shards without a GetRecords call for over a minute"
                for name, t in tables.items() if t.get("stalled_shards")]
    # A dead letter is a record the cache could not apply: until it is resolved the cache may differ.
    reasons += [f"{name}: {t['dead_letters']} unresolved dead letters (see _sync_dead_letters; "
                "`refresh` of the key resolves one)" for name, t in tables.items() if t.get("dead_letters")]
    if not ready:
        return ["starting: the boot sync has not committed yet", *reasons]
    if not boot_synced:
        reasons.append("boot sync not finished" + ("" if had_complete_cache else "; cache not initialized"))
    return reasons


REPAIR_WAIT_ALARM = 60.0  # seconds: a repair read this late is named as stuck, not just pending


def repair_reason(pending: int, oldest_seconds: float) -> list[str]:
    """The reason pending repair reads give (none when there are none): each is a key the cache may hold
    differently from DynamoDB until its read is done, and one waiting over a minute is stuck."""
    if not pending:
        return []
    line = f"{pending} repair reads pending (keys the cache may hold differently from DynamoDB)"
    if oldest_seconds > REPAIR_WAIT_ALARM:
        line += f"; the oldest has waited {oldest_seconds:.0f}s (DynamoDB unreachable or reads throttled?)"
    return [line]


class LargeWal:
    """A health reason while the cache's WAL has stayed larger than the writer lets it grow: a reader
    holding a read transaction open keeps it from being checkpointed, and every reader then scans it.
    A long transaction of the writer's own passes within seconds; `after` seconds of it do not."""

    def __init__(self, path: Path, after: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.after = after
        self.clock = clock
        self._since: float | None = None

    def reason(self) -> str | None:
        """Why the WAL is a problem now, or None."""
        size = wal_bytes(self.path)
        now = self.clock()
        if size is None or size <= WAL_LARGE_BYTES:
            self._since = None
            return None
        self._since = self._since if self._since is not None else now
        if now - self._since < self.after:
            return None
        return (f"cache WAL is {size / 1e6:.1f} MB for {now - self._since:.0f}s: a reader holds a read transaction "
                "open, so it cannot be checkpointed (readers: one short transaction per read, docs/reader-contract.md)")
