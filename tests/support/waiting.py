"""Waiting on a condition with a deadline: tests gate on what happened, never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition", *,
             interval: float = 0.01, tolerate: tuple[type[BaseException], ...] = ()) -> Any:
    """Poll `predicate` until it returns a truthy value and return it; AssertionError naming `what` on timeout.

    An exception listed in `tolerate` counts as "not yet" (a process still starting refuses its socket).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except tolerate:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
