"""The status socket against a misbehaving neighbour: silent clients held or reconnecting never cost a
monitor its `health` answer (the real daemon; the latencies are printed for the notes, not asserted)."""

from __future__ import annotations

import selectors
import socket
import statistics
import threading
import time
from pathlib import Path

from seo_sync.control.client import request_json
from tests.support.harness import wait_until


class SilentClients:
    """`count` connections that never send a byte; with `reconnect`, each one closed is opened again."""

    def __init__(self, path: Path, count: int, reconnect: bool) -> None:
        self.path, self.count, self.reconnect = path, count, reconnect
        self.stop = threading.Event()
        self.opened = 0
        self.sel = selectors.DefaultSelector()
        for _ in range(count):
            self._open()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _open(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(str(self.path))
        except BlockingIOError:
            pass  # the backlog is full: it connects when the daemon accepts
        except OSError:
            s.close()
            return
        self.sel.register(s, selectors.EVENT_READ)
        self.opened += 1

    def _run(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.sel.select(timeout=0.1):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the daemon closed it (after answering, or to make room)
                    self.sel.unregister(s)
                    s.close()
                    if self.reconnect and not self.stop.is_set():
                        self._open()

    def close(self) -> None:
        """Stop and close every connection."""
        self.stop.set()
        self.thread.join(10)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()


def _health_latencies(path: Path, n: int) -> list[float]:
    """`n` health requests one after another, each answered and ok; their latencies in seconds."""
    out = []
    for _ in range(n):
        began = time.perf_counter()
        answer = request_json(path, "health", timeout=2.0)  # the CLI's own timeout: past it, "down"
        out.append(time.perf_counter() - began)
        assert answer["ok"], answer
    return out


def _figures(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms (n={len(ordered)})"


def test_health_is_answered_beside_200_held_silent_connections(seeded, start_daemon) -> None:
    """200 connections held open without a request: every health check is answered, ok, within the CLI's 2 s."""
    daemon = start_daemon()
    daemon.wait_ready()
    clients = SilentClients(daemon.socket_path, 200, reconnect=False)
    try:
        latencies = _health_latencies(daemon.socket_path, 200)  # at once: all 200 are connected by now
    finally:
        clients.close()
    print("health beside 200 held silent connections:", _figures(latencies))


def test_health_is_answered_beside_300_reconnecting_silent_clients(seeded, start_daemon) -> None:
    """300 silent clients reconnecting as soon as they are closed: health stays answered and ok."""
    daemon = start_daemon()
    daemon.wait_ready()
    clients = SilentClients(daemon.socket_path, 300, reconnect=True)
    try:
        wait_until(lambda: clients.opened >= 900, timeout=60, what="every silent client reconnected twice")
        latencies = _health_latencies(daemon.socket_path, 200)
    finally:
        clients.close()
    assert daemon.proc.poll() is None
    print("health beside 300 reconnecting silent clients:", _figures(latencies))
