"""Opening the cache file at boot: a file SQLite calls corrupt is set aside, and a fresh one opened.

The corrupt file keeps its -wal and -shm beside it under a stamped name (`cache.db.corrupt-<time>`),
for an operator to look at; the daemon rebuilds the cache by a full sync.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import structlog

from seo_sync.cache.writer import Cache
from seo_sync.errors import CacheCorrupt

log = structlog.get_logger()


def open_or_set_aside(path: Path, busy_timeout_ms: int, change_diff_limit: int) -> Cache:
    """The cache at `path`, opened; if corrupt, moved aside (and logged) and a new empty one opened."""
    try:
        return Cache.open(path, busy_timeout_ms, change_diff_limit=change_diff_limit)
    except CacheCorrupt as e:
        quarantine = set_aside(path)
        log.error("cache_corrupt", error=e.message, moved_to=str(quarantine))
        return Cache.open(path, busy_timeout_ms, change_diff_limit=change_diff_limit)


def set_aside(path: Path) -> Path:
    """Move the cache file and its -wal and -shm to a stamped name beside it; the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            os.replace(src, Path(str(target) + suffix))
    return target
