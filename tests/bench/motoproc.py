"""moto's DynamoDB HTTP server in its own process, counting API calls per operation.

The benchmark never runs moto in its own process: moto is CPU-bound Python, and sharing the GIL
with the code being measured would distort every figure. The child serves moto's WSGI app behind
a middleware that counts `X-Amz-Target` operations, so the idle-cost figure comes from what the
server saw, not from what the daemon says about itself. `GET /__bench/counts` returns the counts.

Run as `python -m tests.bench.motoproc PORT` (the parent does that).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

COUNTS_PATH = "/__bench/counts"
REPO_ROOT = Path(__file__).resolve().parents[2]


def stop_child(proc: subprocess.Popen[bytes] | None) -> None:
    """Terminate a child server of ours (by its Popen), then kill it if it lingers past 10 s."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def free_port() -> int:
    """A TCP port that was free a moment ago on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CountingMiddleware:
    """WSGI middleware: counts requests per DynamoDB operation and answers the counts endpoint."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Count the operation, or answer `GET /__bench/counts`."""
        if environ.get("PATH_INFO") == COUNTS_PATH:
            with self.lock:
                body = json.dumps({"counts": dict(self.counts), "at": time.time()}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        op = target.rsplit(".", 1)[-1] if target else f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        with self.lock:
            self.counts[op] += 1
        return self.app(environ, start_response)


def serve(port: int) -> None:
    """Serve moto's app with call counting on 127.0.0.1:`port` until killed."""
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)
    app = CountingMiddleware(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)


class MotoProcess:
    """The parent's handle on a moto server child process."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.port = 0
        self.endpoint = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = log_path

    def start(self, timeout: float = 30.0) -> MotoProcess:
        """Start the child and wait until it answers."""
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.bench.motoproc", str(self.port)],
                                     stdout=out, stderr=out, env=env, cwd=str(REPO_ROOT))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}")
            try:
                self.counts()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not answer within the timeout")

    @property
    def pid(self) -> int | None:
        """The server's process id (None before start)."""
        return self.proc.pid if self.proc else None

    def counts(self) -> dict[str, int]:
        """Calls per operation the server has seen since it started."""
        with urllib.request.urlopen(self.endpoint + COUNTS_PATH, timeout=5) as resp:
            return dict(json.loads(resp.read())["counts"])

    def reset(self) -> None:
        """Forget every table."""
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def rss_bytes(self) -> int:
        """The server's resident memory now (0 when unknown)."""
        return rss_of(self.proc.pid) if self.proc else 0

    def stop(self) -> None:
        """Stop the child (it is ours: terminate by pid, then kill if it lingers)."""
        stop_child(self.proc)
        self.proc = None


def _status_field(pid: int, name: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss_of(pid: int) -> int:
    """Resident set size of a process in bytes (0 if it is gone)."""
    return _status_field(pid, "VmRSS")


def peak_rss_of(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process in bytes (0 if it is gone)."""
    return _status_field(pid, "VmHWM")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
