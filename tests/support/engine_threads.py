"""Runs an in-process Engine's loops on plain threads, as the service's lifecycle does, for tests."""

from __future__ import annotations

import threading
from typing import Any


class EngineThreads:
    """Runs an Engine's thread targets on plain threads, the way the service does (for tests)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=fn, args=(self.stop_event,), name=name, daemon=True)
                        for name, fn in engine.thread_targets()]

    def __enter__(self) -> EngineThreads:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the loops and wait for every thread."""
        self.engine.stop()
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=30)
            assert not t.is_alive(), f"thread {t.name} did not stop"
