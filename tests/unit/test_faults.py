"""The fault seam: the debug commands exist only when the configuration turns them on, and hang only the main loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

from seo_sync.service.faults import DebugFaults
from seo_sync.service.lifecycle import Service
from tests.support.settings import make_settings


def test_the_seam_is_installed_only_by_debug_commands(tmp_path: Path) -> None:
    """A service built from the default configuration has no fault seam; `debug_commands = true` installs one."""
    assert Service(make_settings(tmp_path), env={}).faults is None
    on = make_settings(tmp_path, service={"debug_commands": True})
    assert isinstance(Service(on, env={}).faults, DebugFaults)


def test_other_commands_pass_through_the_seam() -> None:
    """The seam answers only its own commands: status, health and the rest are left to the service."""
    faults, engine = DebugFaults(), cast(Any, None)  # a command the seam leaves alone never reaches it
    assert [faults.answer(engine, c, ["1"]) for c in ("status", "health", "resync", "metrics")] == [None] * 4


def test_debug_hang_holds_the_main_loop_until_its_deadline() -> None:
    """After `debug-hang 0.2` the main loop's pass through the seam returns no sooner than 0.2 s later."""
    faults = DebugFaults()
    faults.hold_main_loop()  # nothing asked: returns at once
    asked = time.monotonic()
    assert faults.answer(cast(Any, None), "debug-hang", ["0.2"]) == '{"ok": true}'
    faults.hold_main_loop()
    assert time.monotonic() - asked >= 0.2
