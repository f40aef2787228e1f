"""moto's DynamoDB HTTP server in its own process, counting API calls per operation.

The benchmark never runs moto inside the benchmark process: moto is CPU-bound Python, and sharing the GIL
with the code being measured would distort every figure. The child serves moto's WSGI app behind
a middleware that counts `X-Amz-Target` operations, so the idle-cost figure comes from what the
server saw, not from what the daemon says about itself. `GET /__bench/counts` returns the counts.

Run as `python -m tests.bench.motoproc PORT` (the parent does that).
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import re
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
PROFILE_PATH = "/__bench/profile"  # POST: start profiling every request; GET: the profile so far, and stop
SCAN_DELAY_PATH = "/__bench/scan-delay"  # POST with a number of seconds as the body: every Scan waits that long
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
        self.profiles: list[cProfile.Profile] | None = None  # while profiling: one cProfile per request
        self.scan_delay = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Count the operation, or answer the counts and profile endpoints."""
        path = environ.get("PATH_INFO")
        if path == COUNTS_PATH:
            with self.lock:
                body = json.dumps({"counts": dict(self.counts), "at": time.time()}).encode()
            return _answer(start_response, body, "application/json")
        if path == PROFILE_PATH:
            return _answer(start_response, self._profile_command(environ.get("REQUEST_METHOD", "GET")).encode(),
                           "text/plain")
        if path == SCAN_DELAY_PATH:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            self.scan_delay = float(environ["wsgi.input"].read(size) or 0)
            return _answer(start_response, str(self.scan_delay).encode(), "text/plain")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        op = target.rsplit(".", 1)[-1] if target else f"{environ.get('REQUEST_METHOD')} {path}"
        with self.lock:
            self.counts[op] += 1
            profiling = self.profiles is not None
        if op == "Scan" and self.scan_delay > 0:
            # A slow Scan that costs the server no CPU: the request's own thread sleeps (the GIL is free),
            # so the writes and GetRecords calls meanwhile are served as fast as without it.
            time.sleep(self.scan_delay)
        if not profiling:
            return self.app(environ, start_response)
        # cProfile sees only its own thread, and werkzeug serves each request on a thread of its own.
        prof = cProfile.Profile()
        body = prof.runcall(lambda: list(self.app(environ, start_response)))
        with self.lock:
            if self.profiles is not None:
                self.profiles.append(prof)
        return body

    def _profile_command(self, method: str) -> str:
        with self.lock:
            if method == "POST":
                self.profiles = []
                return "profiling"
            profiles, self.profiles = self.profiles, None
        if not profiles:
            return "not profiling" if profiles is None else "no requests while profiling"
        return profile_text(pstats.Stats(*profiles))


def _answer(start_response: Callable[..., Any], body: bytes, kind: str) -> list[bytes]:
    start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]


def profile_text(stats: pstats.Stats, top: int = 22) -> str:
    """The functions with the most own time, as pstats prints them, with site-packages paths shortened."""
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    text = re.sub(r"\S*/site-packages/", "", out.getvalue())
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if "function calls" in ln), 0)
    return "\n".join(lines[start:])


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

    def start_profile(self) -> None:
        """Profile every request the server answers from now on (slows it down: not for timed runs)."""
        req = urllib.request.Request(self.endpoint + PROFILE_PATH, method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def take_profile(self) -> str:
        """The server's profile since start_profile (top functions by own time), and stop profiling."""
        with urllib.request.urlopen(self.endpoint + PROFILE_PATH, timeout=60) as resp:
            return resp.read().decode()

    def set_scan_delay(self, seconds: float) -> None:
        """Make every Scan answer `seconds` later from now on (0: no delay)."""
        req = urllib.request.Request(self.endpoint + SCAN_DELAY_PATH, method="POST", data=str(seconds).encode())
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

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
