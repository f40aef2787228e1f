"""The fault seam: socket commands that simulate failures, for the tests of the real daemon process.

Enabled only by `[service] debug_commands` (off by default and in every shipped configuration), so a
production daemon has none of this on its command path. With it on, `Service` asks `DebugFaults`
first for each socket command and lets its main loop pass through `hold_main_loop` once a turn:

- `debug-hang SECONDS`: the main loop stops turning (no watchdog pings) for that long;
- `debug-wedge-writer SECONDS`: the writer thread is blocked for that long;
- `debug-repair TABLE N`: repair reads are queued for the first N keys of a table.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import structlog

from seo_sync.schema import table

if TYPE_CHECKING:
    from seo_sync.sync.engine import Engine

log = structlog.get_logger("seo_sync.service")


class DebugFaults:
    """The test-only socket commands, and the hang they can put the main loop in."""

    def __init__(self) -> None:
        self._hang_main_until = 0.0  # monotonic: the main loop holds until then

    def answer(self, engine: Engine, command: str, args: list[str]) -> str | None:
        """The answer to one of the debug commands (runs on a control-socket thread); None for any other command."""
        if command == "debug-hang" and args:
            self._hang_main_until = time.monotonic() + float(args[0])
            return json.dumps({"ok": True})
        if command == "debug-repair" and len(args) == 2:  # queue repair reads of N keys
            spec, keys = table(args[0]), engine.submit(lambda c: c.keys(table(args[0]))[:int(args[1])])
            return json.dumps({"ok": True, "queued": sum(engine.repairs.add(spec.name, k, "debug") for k in keys)})
        if command == "debug-wedge-writer" and args:
            seconds = float(args[0])
            engine.submit(lambda _cache: time.sleep(seconds), timeout=seconds + 10)
            return json.dumps({"ok": True})
        return None

    def hold_main_loop(self) -> None:
        """Called by the main loop once a turn: hangs it while `debug-hang` asked for (a hung main loop).
        Says so once as it begins, so a test knows from when no watchdog ping can go out."""
        left = self._hang_main_until - time.monotonic()
        if left > 0:
            log.warning("main_loop_held", seconds=round(left, 3))
        while time.monotonic() < self._hang_main_until:
            time.sleep(0.05)
