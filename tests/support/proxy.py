"""A small TCP fault proxy for tests: loopback only, bounded, controllable at run time.

It sits between a client (the daemon, a boto3 client) and moto's HTTP server and, per request,
passes the bytes through or injects a fault. A "request" is the first bytes a client sends on a new
connection, or after the server has answered on a kept-alive one, so faults also hit the pooled
connections botocore reuses.

Modes (`FaultProxy.set_mode`):
- ``pass``      forward everything;
- ``latency``   wait `latency` (+ up to `jitter`) seconds before forwarding each request;
- ``reset``     answer the request with a TCP RST (botocore: ConnectionClosedError);
- ``drop``      close the connection without an answer (FIN; RemoteDisconnected);
- ``error``     answer HTTP 400 with the AWS error `code` (only requests containing `match`, if given);
- ``blackhole`` read and discard the request and answer nothing until the blackhole ends, then
  reset (the client sees a read timeout). On loopback the kernel completes the TCP handshake, so a
  blackhole here is a read timeout, never a connect timeout.
- ``cut``       forward the request, then pass on only part of the answer and close (FIN): cut
  inside its headers (after the status line: http.client takes the close for the end of the
  headers, urllib3 logs "Failed to parse headers", and without a Content-Length the body read is
  empty) or inside its body, each half of the time. ``cut_headers`` / ``cut_body`` cut only there.

`match` names the requests faulted: bytes that must be in the request, several joined by ``|``
(``GetRecords|GetItem|Scan`` matches any of the three operations).

`probability` (< 1: a seeded draw per request) and `duration` (the mode reverts to `then` after
that many seconds) make soak schedules; `stats()` counts connections, requests, bytes and faults.

Use in a test::

    with FaultProxy(moto.endpoint) as proxy:
        settings = make_settings(dir, proxy.endpoint)
        proxy.set_mode("blackhole", duration=5)

or as a process: ``python -m tests.support.proxy --target http://127.0.0.1:5000`` prints its endpoint
and takes commands on stdin (``blackhole duration=5``, ``reset probability=0.2``, ``pass``,
``stats``).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import random
import select
import socket
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MODES = ("pass", "latency", "reset", "drop", "blackhole", "error", "cut", "cut_headers", "cut_body")
CUTS = ("cut", "cut_headers", "cut_body")
_POLL = 0.05  # how often a connection thread looks at the stop flag and the blackhole clock


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_target(target: str) -> tuple[str, int]:
    """`http://host:port`, `host:port` → (host, port)."""
    parts = urlsplit(target if "//" in target else f"//{target}")
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"target needs host:port, got {target!r}")
    return parts.hostname, parts.port


def _error_response(code: str) -> bytes:
    """An HTTP 400 in the AWS JSON protocol naming `code` (AccessDeniedException, ...)."""
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                       "message": f"injected by the fault proxy: {code}"}).encode()
    head = (f"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0 so the peer gets a RST, not a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


@dataclass(frozen=True)
class _Mode:
    name: str = "pass"
    latency: float = 0.0
    jitter: float = 0.0
    probability: float = 1.0
    until: float | None = None  # time.monotonic() at which the mode ends
    then: str = "pass"
    code: str = ""  # error mode: the AWS error code answered (HTTP 400)
    match: tuple[bytes, ...] = ()  # only requests containing one of these are faulted (e.g. an operation)
    share: float = 0.0  # a cut: where in the headers or the body, as a share of their length


class FaultProxy:
    """A threaded TCP proxy from a loopback port to a loopback target that injects faults on demand."""

    def __init__(self, target: str, *, listen_host: str = "127.0.0.1", listen_port: int = 0,
                 max_connections: int = 64, seed: int | None = 0, connect_timeout: float = 2.0) -> None:
        self.target = _split_target(target)
        if not (_loopback(self.target[0]) and _loopback(listen_host)):
            raise ValueError("the fault proxy only listens on and forwards to loopback addresses")
        self.listen = (listen_host, listen_port)
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._rng = random.Random(seed)  # a reproducible fault schedule, not security
        self._lock = threading.Lock()
        self._mode = _Mode()
        self._stop = threading.Event()
        self._server: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._conns: dict[threading.Thread, list[socket.socket]] = {}
        self._stats: Counter[str] = Counter()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Bind the listening socket and start accepting (in a daemon thread)."""
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(self.listen)
        server.listen(128)
        server.settimeout(_POLL * 2)
        self._server = server
        self.listen = server.getsockname()[:2]
        self._accept_thread = threading.Thread(target=self._accept_loop, name="fault-proxy-accept", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, reset every open connection, and join the threads."""
        self._stop.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        if self._server is not None:
            self._server.close()
        with self._lock:
            threads = list(self._conns.items())
        for thread, socks in threads:
            for s in socks:
                _reset(s)
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The proxy's URL, for `endpoint_url` / AWS_ENDPOINT_URL."""
        return f"http://{self.listen[0]}:{self.listen[1]}"

    # -- control ------------------------------------------------------------------------------------

    def set_mode(self, mode: str, *, latency: float = 0.0, jitter: float = 0.0, probability: float = 1.0,
                 duration: float | None = None, then: str = "pass", code: str = "", match: str = "") -> None:
        """Switch the fault injected on each new request; with `duration`, revert to `then` afterwards."""
        if mode not in MODES or then not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if not 0.0 <= probability <= 1.0 or latency < 0 or jitter < 0 or (duration is not None and duration < 0):
            raise ValueError("probability must be in [0, 1]; latency, jitter and duration >= 0")
        until = None if duration is None else time.monotonic() + duration
        with self._lock:
            self._mode = _Mode(mode, latency, jitter, probability, until, then, code,
                               tuple(m.encode() for m in match.split("|") if m))

    def blackhole(self, seconds: float) -> None:
        """Answer nothing for `seconds`, then pass again."""
        self.set_mode("blackhole", duration=seconds)

    @property
    def mode(self) -> str:
        """The mode in force now (a timed mode that ran out reports what it reverted to)."""
        return self._current().name

    def stats(self) -> dict[str, int]:
        """Counters: connections, active, rejected, requests, bytes_up, bytes_down, upstream_errors, fault_<mode>."""
        with self._lock:
            out = dict(self._stats)
            out["active"] = len(self._conns)
        for key in ("connections", "rejected", "requests", "bytes_up", "bytes_down", "upstream_errors"):
            out.setdefault(key, 0)
        for mode in MODES[1:]:
            out.setdefault(f"fault_{mode}", 0)
        return out

    def faults(self) -> int:
        """Faults injected so far, all modes together."""
        return sum(v for k, v in self.stats().items() if k.startswith("fault_"))

    # -- internals ----------------------------------------------------------------------------------

    def _current(self) -> _Mode:
        with self._lock:
            m = self._mode
            if m.until is not None and time.monotonic() >= m.until:
                m = self._mode = _Mode(m.then)
            return m

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    def _draw(self, request: bytes = b"") -> _Mode:
        """The mode for one request: the current mode with its probability, else pass."""
        m = self._current()
        if m.name == "pass" or (m.match and not any(x in request for x in m.match)):
            return _Mode()
        with self._lock:
            hit = m.probability >= 1.0 or self._rng.random() < m.probability
            delay = m.latency + (self._rng.uniform(0, m.jitter) if m.jitter else 0.0)
            name = m.name
            if name == "cut":
                name = self._rng.choice(("cut_headers", "cut_body"))
            share = self._rng.random()
        if not hit:
            return _Mode()
        self._count(f"fault_{m.name}")
        if name != m.name:
            self._count(name)  # which cut a "cut" made: cut_headers or cut_body
        return _Mode(name, delay, code=m.code, share=share)

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                full = len(self._conns) >= self.max_connections
            if full:
                self._count("rejected")
                _reset(client)
                continue
            self._count("connections")
            thread = threading.Thread(target=self._serve, args=(client,), name="fault-proxy-conn", daemon=True)
            with self._lock:
                self._conns[thread] = [client]
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        me = threading.current_thread()
        upstream: socket.socket | None = None
        try:
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
            except OSError:
                self._count("upstream_errors")
                _reset(client)
                return
            with self._lock:
                self._conns[me].append(upstream)
            with contextlib.suppress(OSError):  # a peer reset or vanished: this connection is over
                self._pump(client, upstream)
        finally:
            for s in (client, upstream):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()
            with self._lock:
                self._conns.pop(me, None)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        awaiting_request = True
        cut: _Mode | None = None  # the answer to the request in hand is to be cut
        answer = bytearray()
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([client, upstream], [], [], _POLL)
            except (OSError, ValueError):
                return
            if client in readable:
                data = client.recv(65536)
                if not data:
                    return
                if awaiting_request:
                    awaiting_request = False
                    self._count("requests")
                    fault = self._draw(data)
                    if fault.name == "error":
                        client.sendall(_error_response(fault.code))
                        return
                    if fault.name == "reset":
                        _reset(client)
                        return
                    if fault.name == "drop":
                        return
                    if fault.name == "blackhole":
                        self._swallow(client)
                        _reset(client)
                        return
                    if fault.name == "latency" and self._stop.wait(fault.latency):
                        return
                    if fault.name in CUTS:
                        cut, answer = fault, bytearray()
                upstream.sendall(data)
                self._count("bytes_up", len(data))
            if upstream in readable:
                data = upstream.recv(65536)
                if cut is not None:
                    answer += data
                    part = _cut_answer(bytes(answer), cut.name, cut.share, complete=not data)
                    if part is not None:
                        client.sendall(part)
                        self._count("bytes_down", len(part))
                        return  # close: the client sees the answer end there
                    continue
                if not data:
                    return
                client.sendall(data)
                self._count("bytes_down", len(data))
                awaiting_request = True

    def _swallow(self, client: socket.socket) -> None:
        """Read and discard until the blackhole ends, the client gives up, or the proxy stops."""
        while not self._stop.is_set() and self._current().name == "blackhole":
            try:
                readable, _, _ = select.select([client], [], [], _POLL)
                if readable and not client.recv(65536):
                    return
            except (OSError, ValueError):
                return


def _cut_answer(answer: bytes, where: str, share: float, complete: bool) -> bytes | None:
    """The part of an HTTP answer to pass on before closing, or None while more of it is needed.

    `cut_headers`: the status line and a share of the header lines, never their blank end line.
    `cut_body`: the headers and a share of the body, at least one byte short of the whole.
    """
    end = answer.find(b"\r\n\r\n")
    if end < 0:
        if not complete:
            return None
        end = len(answer)
    status_end = answer.find(b"\r\n") + 2
    if where == "cut_headers" or (end + 4 >= len(answer) and complete):
        return answer[:status_end + int(share * max(0, end - status_end))]
    head = answer[:end + 4]
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), None)
    body = answer[end + 4:]
    if length is None or (len(body) < length and not complete):
        if not complete:
            return None
        length = len(body)
    return head + body[:int(share * max(0, length - 1))]


def parse_command(line: str) -> tuple[str, dict[str, Any]]:
    """`reset probability=0.2 duration=5` → ("reset", {"probability": 0.2, "duration": 5.0})."""
    words = line.split()
    kwargs: dict[str, Any] = {}
    for w in words[1:]:
        key, _, value = w.partition("=")
        kwargs[key] = value if key == "then" else float(value)
    return words[0], kwargs


def main(argv: list[str] | None = None) -> int:
    """Run the proxy as a process; commands on stdin, one JSON answer per line on stdout."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="http://127.0.0.1:PORT of moto's server")
    ap.add_argument("--port", type=int, default=0, help="loopback port to listen on (0: any)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with FaultProxy(args.target, listen_port=args.port, seed=args.seed) as proxy:
        print(json.dumps({"endpoint": proxy.endpoint}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                name, kwargs = parse_command(line)
                if name != "stats":
                    proxy.set_mode(name, **kwargs)
                print(json.dumps({"mode": proxy.mode, **proxy.stats()}), flush=True)
            except (TypeError, ValueError) as e:
                print(json.dumps({"error": str(e)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
