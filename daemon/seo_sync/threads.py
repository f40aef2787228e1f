"""The daemon's long-lived threads share one shape: a class whose loop runs until its stop event.

Each thread gets what it works with (its queues, its stop event, the callback that reports its
death) in its constructor, and only the service's lifecycle starts them. No thread dies silently:
one that raises, or whose loop returns while its stop event is clear, is logged and reported
through `on_death`, and the service then stops with a non-zero exit so that systemd restarts it
whole, rather than running on with a part missing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger()

DeathReport = Callable[[str, str], None]  # (thread name, why it ended)


def log_death(name: str, why: str) -> None:
    """The report of a thread nobody supervises (tests, one-shot tools): the log line alone."""
    log.error("thread_ended", thread=name, reason=why)


class ServiceThread(threading.Thread):
    """A long-lived daemon thread; subclasses put their work in `loop()`."""

    def __init__(self, name: str, stop_event: threading.Event, on_death: DeathReport | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self.stop_event = stop_event
        self.on_death = on_death or log_death

    def loop(self) -> None:
        """The thread's work; returns once `stop_event` is set."""
        raise NotImplementedError

    def run(self) -> None:
        try:
            self.loop()
        except BaseException as e:
            log.exception("thread_died", thread=self.name)
            self.on_death(self.name, f"{type(e).__name__}: {e}")
            return
        if not self.stop_event.is_set():
            self.on_death(self.name, "returned unexpectedly")
