"""The real daemon (`seo-sync run`) as a child process, with a fake NOTIFY_SOCKET to see READY=1.

Everything goes through the daemon's command line and environment, exactly as systemd starts it,
so the benchmark measures the product and not a test double.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from seo_sync.control.client import request_json
from seo_sync.errors import SeoSyncError
from tests.bench.motoproc import REPO_ROOT, peak_rss_of, rss_of


def daemon_command() -> list[str]:
    """`seo-sync` from this interpreter's environment, else `python -m seo_sync`."""
    script = Path(sys.executable).parent / "seo-sync"
    return [str(script)] if script.exists() else [sys.executable, "-m", "seo_sync"]


class DaemonProcess:
    """One `seo-sync run` child: its data dir, socket, READY time and memory."""

    def __init__(self, data_dir: Path, endpoint: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.endpoint = endpoint
        self.socket_path = data_dir / "seo-sync.sock"
        self.cache_path = data_dir / "cache.db"
        self.notify_path = data_dir / "notify.sock"
        self.log_path = data_dir / "daemon.log"
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.ready_at: float | None = None
        self.ready_rss = 0
        self.ready_peak_rss = 0
        self.notifications: list[tuple[float, str]] = []
        self._ready = threading.Event()
        self._notify_sock: socket.socket | None = None
        self._listener: threading.Thread | None = None

    def start(self) -> DaemonProcess:
        """Spawn the daemon with its environment and start listening for sd_notify datagrams."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.notify_path.unlink(missing_ok=True)
        self._notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify_sock.bind(str(self.notify_path))
        self._notify_sock.settimeout(0.2)
        env = dict(os.environ)
        env.update({
            "NOTIFY_SOCKET": str(self.notify_path), "SEO_SYNC_AWS__ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1", "SEO_SYNC_LOG_FORMAT": "json", "PYTHONPATH": str(REPO_ROOT),
            # The resync parts ask for one resync after another: no floor between them.
            "SEO_SYNC_CONTROL__MIN_RESYNC_INTERVAL": "0",
        })
        env.pop("SEO_SYNC_CONFIG", None)
        env.update(self.extra_env)
        log = open(self.log_path, "ab")  # the child owns it from here
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*daemon_command(), "--data-dir", str(self.data_dir), "--socket", str(self.socket_path), "run"],
            stdout=log, stderr=log, env=env, cwd=str(self.data_dir))
        log.close()
        self._listener = threading.Thread(target=self._listen, name="bench-notify", daemon=True)
        self._listener.start()
        return self

    def _listen(self) -> None:
        assert self._notify_sock is not None
        while self.proc is not None:
            try:
                data = self._notify_sock.recv(4096)
            except (TimeoutError, OSError):
                if self.proc is None or self.proc.poll() is not None:
                    return
                continue
            now = time.monotonic()
            text = data.decode("utf-8", "replace")
            self.notifications.append((now, text))
            if "READY=1" in text.split("\n") and not self._ready.is_set():
                self.ready_at = now
                pid = self.proc.pid if self.proc else 0
                self.ready_peak_rss, self.ready_rss = peak_rss_of(pid), rss_of(pid)
                self._ready.set()

    def wait_ready(self, timeout: float) -> float:
        """Seconds from spawn to READY=1; RuntimeError if the daemon died or took too long."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.proc.returncode if self.proc else '?'} "
                                   f"before READY; see {self.log_path}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no READY=1 within {timeout:.0f}s; see {self.log_path}: {self.log_tail()}")
        assert self.ready_at is not None
        return self.ready_at - self.started

    @property
    def ready(self) -> bool:
        """True once READY=1 arrived."""
        return self._ready.is_set()

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """The daemon's `status` answer."""
        return dict(request_json(self.socket_path, "status", timeout=timeout))

    def peak_rss(self) -> int:
        """VmHWM of the daemon now, in bytes."""
        return peak_rss_of(self.proc.pid) if self.proc else 0

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the daemon's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])[-800:]

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait, SIGKILL if it lingers (only this child, by its pid); returns the exit code."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            code = self.proc.returncode
            self.proc = None
        if self._listener is not None:
            self._listener.join(2)
        if self._notify_sock is not None:
            self._notify_sock.close()
            self._notify_sock = None
        return code


class StatusProber(threading.Thread):
    """Asks the daemon for `status` back to back (with a short pause) and times each answer."""

    def __init__(self, daemon: DaemonProcess, pause: float = 0.02) -> None:
        super().__init__(name="bench-status-prober", daemon=True)
        self.daemon_proc = daemon
        self.pause = pause
        self.latencies_ms: list[float] = []
        self.failures = 0
        self.states: dict[str, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Probe until stopped; connection errors before the socket exists are not counted."""
        while not self._stop_event.is_set():
            if self.daemon_proc.socket_path.exists():
                t0 = time.perf_counter()
                try:
                    answer = self.daemon_proc.status(timeout=5.0)
                    self.latencies_ms.append((time.perf_counter() - t0) * 1000)
                    state = str(answer.get("state", "?"))
                    self.states[state] = self.states.get(state, 0) + 1
                except (SeoSyncError, OSError, json.JSONDecodeError):
                    self.failures += 1
            self._stop_event.wait(self.pause)

    def stop(self) -> None:
        """Stop probing and wait for the thread."""
        self._stop_event.set()
        self.join(10)
