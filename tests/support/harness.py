"""Runs the real `seo-sync run` process for service tests: fake NOTIFY_SOCKET, real socket, signals."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.reader import Reader
from seo_sync.control.client import request_json
from seo_sync.errors import DaemonUnavailable
from seo_sync.schema import TABLES
from tests.support.moto_server import FAKE_CREDENTIALS
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; collects every message."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            for line in data.decode().split("\n"):
                if line:
                    self.messages.append((now, line))

    def wait_for(self, prefix: str, timeout: float = 60.0, after: float = 0.0) -> str:
        """The first message starting with `prefix` received after monotonic time `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, m in list(self.messages):
                if at >= after and m.startswith(prefix):
                    return m
            time.sleep(0.02)
        raise AssertionError(f"no {prefix!r} within {timeout}s; got {[m for _, m in self.messages][-20:]}")

    def count(self, text: str, after: float = 0.0) -> int:
        """How many messages equal to `text` arrived after `after`."""
        return sum(1 for at, m in list(self.messages) if at >= after and m == text)

    def close(self) -> None:
        """Stop collecting."""
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class Daemon:
    """One `python -m seo_sync run` subprocess with its own data dir, socket and notify socket."""

    def __init__(self, endpoint: str, data_dir: Path, *, extra_env: dict[str, str] | None = None,
                 watchdog_sec: float | None = None, args: tuple[str, ...] = (),
                 prefix: tuple[str, ...] = ()) -> None:
        self.short = Path(tempfile.mkdtemp(prefix="ss", dir="/tmp"))  # AF_UNIX paths are short
        self.data_dir = data_dir
        self.socket_path = self.short / "status.sock"
        self.notify = NotifySocket(self.short)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEO_SYNC_", "NOTIFY_", "WATCHDOG_"))}
        env.update(FAKE_CREDENTIALS)
        env.update({
            "SEO_SYNC_AWS__ENDPOINT_URL": endpoint, "SEO_SYNC_DATA_DIR": str(data_dir),
            "SEO_SYNC_SOCKET": str(self.socket_path), "SEO_SYNC_LOG_FORMAT": "json",
            "SEO_SYNC_SERVICE__DEBUG_COMMANDS": "1", "NOTIFY_SOCKET": str(self.notify.path),
            "SEO_SYNC_AWS__CONNECT_TIMEOUT": "1", "SEO_SYNC_AWS__READ_TIMEOUT": "3",
            "SEO_SYNC_AWS__MAX_ATTEMPTS": "2", "SEO_SYNC_IDLE_POLL_INTERVAL": "0.2",
            # Tests send SIGHUP and `resync` one after another: no floor unless a test sets one.
            "SEO_SYNC_CONTROL__MIN_RESYNC_INTERVAL": "0", "PYTHONUNBUFFERED": "1",
        })
        if watchdog_sec is not None:
            env["WATCHDOG_USEC"] = str(int(watchdog_sec * 1_000_000))
        env.update(extra_env or {})
        self.env = env
        self.log_path = self.short / "daemon.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "seo_sync", *args, "run"], cwd=REPO, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        """The daemon's pid."""
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until READY=1 (or fail with the log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(m == "READY=1" for _, m in list(self.notify.messages)):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready (exit {self.proc.poll()}); log:\n{self.log()[-4000:]}")

    def request(self, command: str, timeout: float = 5.0) -> Any:
        """One status-socket request, answer as JSON."""
        return request_json(self.socket_path, command, timeout)

    def status(self) -> dict[str, Any]:
        """The daemon's status document."""
        return self.request("status")

    def signal(self, sig: int) -> None:
        """Send a signal."""
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit; its return code (AssertionError with the log's end if it does not)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the daemon did not exit within {timeout:g} s; log:\n{self.log()[-6000:]}") from None

    def log(self) -> str:
        """Everything the daemon printed so far."""
        if self._log.closed:
            return self.final_log
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        """Stop the daemon (SIGKILL if it does not stop) and clean up."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.notify.close()
        self._log.close()
        self.final_log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        shutil.rmtree(self.short, ignore_errors=True)


def seed(endpoint: str, data_dir: Path, businesses: int = 20) -> Source:
    """Create the five tables and write a small data set with plain boto3-shaped calls."""
    s = make_settings(data_dir, endpoint)
    source = Source(s.aws, s.table_prefix)
    for spec in TABLES.values():
        source.create_table(spec)
    items: dict[str, list[codec.Item]] = {name: [] for name in TABLES}
    for i in range(businesses):
        bid = f"biz-{i:03d}"
        items["businesses"].append(codec.item_from_python({"business_id": bid, "name": f"Business {i}", "_version": 1}))
        items["questionnaires"].append(codec.item_from_python({"business_id": bid, "data": {"q": i}, "_version": 1}))
        for k in range(5):
            items["keywords"].append(codec.item_from_python(
                {"business_id": bid, "keyword_id": f"kw{k}#en", "keyword": f"kw {k}", "language": "en"}))
        items["service_areas"].append(codec.item_from_python({"business_id": bid, "area_id": "town", "city": "Town"}))
        items["prompt_templates"].append(codec.item_from_python(
            {"business_id": bid, "template_id": "home#1", "page_type": "home", "version": 1, "template": "t"}))
    for name, its in items.items():
        source.batch_write(TABLES[name], its)
    return source


def cache_counts(data_dir: Path) -> dict[str, int]:
    """Rows per table in the cache, read-only, in one snapshot."""
    reader = Reader.open(data_dir / "cache.db")
    try:
        with reader.snapshot():
            return {name: reader.count(name) for name in TABLES}
    finally:
        reader.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `predicate` until true, a daemon not answering yet counting as false; fail naming `what`."""
    wait_for(predicate, timeout, what, interval=0.05, tolerate=(DaemonUnavailable, OSError))
