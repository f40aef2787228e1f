"""SIGHUP's second half: the configuration read again, and what of it the running daemon can take.

A configuration that no longer loads (bad TOML, a value out of range, an unknown key) is refused and
the running one kept: the daemon stays up, and the log says what is wrong before a restart would
exit 78 on it. Of a good one, the settings read afresh at each use are applied at once (`LIVE`);
every other change (the AWS client, the data directory, the stream and Scan settings the threads
were built with, the schedules, ...) is named in the log as waiting for a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import structlog

from seo_sync.config import Settings
from seo_sync.errors import ConfigError

log = structlog.get_logger("seo_sync.service")

# The settings applied live: the lifecycle reads these from its settings at each use, and the repair
# queue's rate and burst are plain attributes read at each refill.
LIVE = ("stream.lag_alarm", "verify.repair_reads_per_second", "verify.repair_burst",
        "service.boot_ready_timeout", "service.stop_timeout")


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip("."), value


def changed_settings(old: Settings, new: Settings) -> list[str]:
    """Dotted names of the settings whose value differs (secrets compared, never shown)."""
    before, after = dict(_flat(old.model_dump())), dict(_flat(new.model_dump()))
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def split_changes(changed: list[str]) -> tuple[list[str], list[str]]:
    """(applied live, waiting for a restart)."""
    return [k for k in changed if k in LIVE], [k for k in changed if k not in LIVE]


def with_live(running: Settings, new: Settings, keys: list[str]) -> Settings:
    """The running settings with the live keys taken from `new` (the rest stays as the process was built)."""
    sections: dict[str, dict[str, Any]] = {}
    for key in keys:
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = getattr(getattr(new, section), name)
    update = {section: getattr(running, section).model_copy(update=values) for section, values in sections.items()}
    return running.model_copy(update=update)


def reread(running: Settings, load: Callable[[], Settings]) -> Settings:
    """The settings to run on after reading the configuration again through `load`, with a log line
    saying what was applied and what waits for a restart, or why the file was refused."""
    try:
        new = load()
    except ConfigError as e:
        log.error("config_reload_refused", error=e.message, hint=e.hint,
                  kept="the running configuration; a restart with this file would exit 78")
        return running
    live, restart = split_changes(changed_settings(running, new))
    log.info("config_reloaded", applied=live, need_restart=restart, live_settings=list(LIVE) if restart else None)
    return with_live(running, new, live)
