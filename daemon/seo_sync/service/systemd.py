"""sd_notify(3) with the standard library: tell systemd we are ready, what we do, that we live.

A `Notifier` reads NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID when it is constructed (never at
import) and is a no-op without NOTIFY_SOCKET, so the daemon runs the same in a terminal. Sending is
best effort: a failed datagram is logged, never raised, because a lost STATUS= must not stop a sync.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger()


def socket_address(value: str | None) -> str | None:
    """The AF_UNIX address for a NOTIFY_SOCKET value ('@name' is the abstract namespace), or None."""
    if not value:
        return None
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock:… and other transports are not used by the systemd versions we target


class Notifier:
    """Sends sd_notify messages to the socket named by NOTIFY_SOCKET; does nothing without one."""

    def __init__(self, env: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET")
        self._address = socket_address(raw)
        if raw and self._address is None:
            log.warning("sd_notify_unsupported_socket", notify_socket=raw)
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")
        self._pid = os.getpid() if pid is None else pid
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed_once = False

    @property
    def enabled(self) -> bool:
        """True when there is a systemd notification socket to talk to."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send one datagram of newline-separated VAR=value assignments; True if it was sent."""
        if self._address is None:
            return False
        message = "\n".join(assignments).encode("utf-8")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, self._address)
            except OSError as e:
                if not self._failed_once:  # one line, not one per watchdog ping
                    log.warning("sd_notify_failed", error=e.strerror or str(e))
                    self._failed_once = True
                return False
        if self._failed_once:
            log.info("sd_notify_recovered")
            self._failed_once = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1 (and optionally a STATUS= line): start-up is complete."""
        return self.notify("READY=1", *([f"STATUS={_one_line(status)}"] if status is not None else []))

    def status(self, text: str) -> bool:
        """STATUS=<one line>: what the daemon is doing, shown by `systemctl status`."""
        return self.notify(f"STATUS={_one_line(text)}")

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC: the start (or stop) is progressing; allow this much longer."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: the main loop completed an iteration with every worker making progress."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1: a graceful stop has begun."""
        return self.notify("STOPPING=1", *([f"STATUS={_one_line(status)}"] if status is not None else []))

    def watchdog_interval(self) -> float | None:
        """WatchdogSec in seconds when the watchdog is on for this process, else None."""
        if not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != self._pid:
                    return None  # the watchdog is meant for another process (e.g. our parent)
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 1_000_000 if usec > 0 else None

    def close(self) -> None:
        """Close the datagram socket (a later notify reopens it)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class ProgressMonitor:
    """Heartbeats of the worker threads: the main loop sends WATCHDOG=1 only while none is stale.

    A worker beats after every loop iteration (an empty poll counts: it proves the thread is not
    stuck), so a wedged writer or poller stops the pings and systemd's watchdog restarts the daemon.
    """

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def register(self, name: str) -> None:
        """Start watching a worker (counts as a beat now)."""
        self.beat(name)

    def unregister(self, name: str) -> None:
        """Stop watching a worker that ended on purpose."""
        with self._lock:
            self._last.pop(name, None)

    def beat(self, name: str) -> None:
        """The worker `name` made progress (or completed an idle iteration) just now."""
        with self._lock:
            self._last[name] = self._clock()

    def stale(self) -> dict[str, float]:
        """Workers silent for longer than max_age, with how many seconds they have been silent."""
        now = self._clock()
        with self._lock:
            return {n: round(now - t, 3) for n, t in self._last.items() if now - t > self.max_age}


def _one_line(text: str) -> str:
    return " ".join(text.splitlines()).strip()
