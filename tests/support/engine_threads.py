"""Starts and stops an in-process Engine's threads as the service's lifecycle does, for tests."""

from __future__ import annotations

from typing import Any


class EngineThreads:
    """Starts and stops an Engine's threads the way the service's lifecycle does (for tests)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.threads = engine.threads()

    def __enter__(self) -> EngineThreads:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the loops and wait for every thread."""
        self.engine.stop()
        for t in self.threads:
            t.join(timeout=30)
            assert not t.is_alive(), f"thread {t.name} did not stop"
