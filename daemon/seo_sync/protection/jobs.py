"""The delete-protection jobs the service schedules: prune old backups, reset the delete-rate counters.

Both are idempotent and safe to run from several processes at once (the daemon's scheduler, and an
operator's `seo-sync backups prune`): they work through the ledger's transactions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from seo_sync.errors import BadInput
from seo_sync.protection import backups
from seo_sync.protection.ledger import DAY, DEFAULT_MAX_CLOCK_JUMP, Ledger, iso_time

if TYPE_CHECKING:
    from seo_sync.config import Settings

log = structlog.get_logger()


def _paths(settings_or_dirs: Settings | tuple[Path, Path]) -> tuple[Path, Path, float]:
    if isinstance(settings_or_dirs, tuple):
        backup_dir, ledger_path = settings_or_dirs
        return Path(backup_dir), Path(ledger_path), 30.0
    s = settings_or_dirs
    return s.backup_dir, s.protection_path, float(s.protection.backup_retention_days)


def prune_backups(settings_or_dirs: Settings | tuple[Path, Path], now: float | None = None,
                  older_than_days: float | None = None, *, max_clock_jump: float = DEFAULT_MAX_CLOCK_JUMP,
                  trust_clock: bool = False) -> int:
    """Remove our backups older than the retention (default 30 days); returns how many went.

    `settings_or_dirs` is a Settings or `(backup_dir, protection_db_path)`. Idempotent and safe from
    several processes. A clock that jumped forward since the last run moves the prune at most
    `max_clock_jump` ahead (logged), so a wrong clock cannot mass-delete; `trust_clock` overrides.
    """
    backup_dir, ledger_path, retention = _paths(settings_or_dirs)
    days = retention if older_than_days is None else older_than_days
    if days < 0:
        raise BadInput("--older-than must be zero or more days")
    now = time.time() if now is None else now
    ledger = Ledger(ledger_path)
    effective = ledger.prune_clock(now, max_clock_jump, trust_clock)
    result = backups.prune_dir(backup_dir, effective - days * DAY, stale_tmp_cutoff=effective - DAY)
    if result.removed:
        ledger.forget_backups(result.removed)
    log.info("backup.pruned", removed=len(result.removed), kept=result.kept, foreign=result.skipped_foreign,
             errors=result.errors, older_than_days=days, as_of=iso_time(effective))
    return len(result.removed)


def reset_delete_counters(ledger_path: Path | Settings, now: float | None = None) -> int:
    """Drop delete-rate windows before the current hour; returns rows dropped. Idempotent."""
    path = ledger_path if isinstance(ledger_path, Path | str) else ledger_path.protection_path
    dropped = Ledger(Path(path)).reset(time.time() if now is None else now)
    log.info("protection.counters_reset", windows=dropped)
    return dropped
