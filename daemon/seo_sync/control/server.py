"""The status socket: a small Unix-socket server in the daemon.

Protocol (protocol.py): the client sends one request line (`status`, `health`, `resync [table]`,
`refresh <table> <key-json>`, `metrics`, ...), the daemon sends one answer and closes. No request
within the timeout means `status`. Robustness against floods, silent and slow clients: one
selector thread reads requests (cheap, with a deadline and a size cap each); the answers run in
lanes (lanes.py) so `health` and `status` never wait behind slow commands or silent clients. Up
to `max_connections` are read at once; a new client always gets in, closing the oldest connection
of the peer holding the most, and one peer uid holds at most three quarters of them. Only root,
the daemon's own uid and members of the configured group are answered (SO_PEERCRED /
SO_PEERGROUPS), on top of the socket file's 0660 mode.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import os
import resource
import selectors
import socket
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from seo_sync import errors
from seo_sync.control.lanes import Lanes, lane_of
from seo_sync.control.peers import peer_credentials, peer_groups
from seo_sync.control.protocol import Handler, error_answer, reset_peer, run_handler, set_peer
from seo_sync.errors import ConfigError, ExitCode, LockHeld
from seo_sync.threads import DeathReport, ServiceThread

log = structlog.get_logger()

SOCKET_MODE = 0o660
ACCEPT_PAUSE = 0.1  # seconds to stop accepting after accept() failed (EMFILE), instead of spinning
MAX_CONNECTIONS = 1024  # connections read at once; beyond, the oldest of the peer holding the most is answered
FDS_KEPT = 128  # file descriptors left for the cache, AWS connections and logs
LOG_EVERY = 10.0  # seconds between log lines about refused or failing clients


def _connections_the_fd_limit_allows() -> int:
    """MAX_CONNECTIONS, or fewer when the file descriptor limit is low (raised to its hard limit first:
    a connection held by a silent client costs one descriptor and nothing else)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + FDS_KEPT
    if soft != resource.RLIM_INFINITY and soft < wanted and (hard == resource.RLIM_INFINITY or hard > soft):
        with contextlib.suppress(ValueError, OSError):
            new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft - FDS_KEPT))


def _close_if_cancelled(sock: socket.socket, future: Future[Any]) -> None:
    """A request the pool dropped at shutdown never ran its answer: close its socket here."""
    if future.cancelled():
        sock.close()


@dataclass
class _Conn:
    sock: socket.socket
    deadline: float
    uid: int
    buf: bytearray = field(default_factory=bytearray)


class ControlServer:
    """The daemon side of the status socket."""

    def __init__(self, path: Path, handler: Handler, *, allowed_uids: set[int], allowed_gid: int | None,
                 timeout: float = 1.0, max_clients: int = 16, max_request: int = 4096,
                 max_connections: int | None = None) -> None:
        self.path = Path(path)
        self.handler = handler
        self.allowed_uids = {0, *allowed_uids}
        self.allowed_gid = allowed_gid
        self.timeout = timeout
        self.max_clients = max_clients
        self.max_request = max_request
        self.max_connections = max_connections or max(4 * max_clients, _connections_the_fd_limit_allows())
        self.evicted = 0
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self._lock = threading.Lock()
        self._in_flight = 0
        self._accept_paused_until = 0.0
        self._logged_at: dict[str, float] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # -- binding ---------------------------------------------------------------------------------
    def bind(self) -> None:
        """Listen on `path` (mode 0660), replacing a stale socket file but never a live or foreign one."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._clear_stale()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(str(tmp))
            os.chmod(tmp, SOCKET_MODE)  # before the rename: nobody ever sees a wider mode
            # chown is filtered under the unit (SystemCallFilter=~@privileged): only when really needed.
            if self.allowed_gid is not None and os.stat(tmp).st_gid != self.allowed_gid:
                try:
                    os.chown(tmp, -1, self.allowed_gid)
                except PermissionError:
                    log.warning("control_socket_chgrp_failed", path=str(self.path), gid=self.allowed_gid)
            # Listen before the rename: a client that finds the path must never be refused.
            sock.listen(min(socket.SOMAXCONN, 1024))
            os.rename(tmp, self.path)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise errors.SeoSyncError(f"cannot create status socket {self.path}: {e.strerror or e}",
                                      hint="check the directory exists and is writable by the daemon") from None
        self._listener = sock
        self._inode = os.stat(self.path).st_ino
        log.info("control_socket_listening", path=str(self.path))

    def _clear_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(f"status socket path {self.path} exists and is not a socket",
                              hint="remove it or point --socket / SEO_SYNC_SOCKET elsewhere")
        if st.st_uid not in (os.geteuid(), 0) and os.geteuid() != 0:
            raise ConfigError(f"status socket {self.path} belongs to uid {st.st_uid}, not to us",
                              hint="another user's daemon uses this path; choose another --socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        probe.settimeout(self.timeout)
        try:
            probe.connect(str(self.path))
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            log.info("control_socket_stale_removed", path=str(self.path))
            return
        except OSError as e:
            if e.errno != errno.EAGAIN:  # EAGAIN: its backlog is full, so something is alive there
                raise errors.SeoSyncError(f"cannot probe status socket {self.path}: {e.strerror or e}") from None
        finally:
            probe.close()
        raise LockHeld(f"another daemon answers on status socket {self.path}",
                       hint="stop it first (systemctl stop seo-sync), or use another --socket")

    # -- serving ---------------------------------------------------------------------------------
    def serve_forever(self, stop: threading.Event) -> None:
        """Answer clients until `stop` is set; never raises because of a client or the handler."""
        if self._listener is None:
            raise RuntimeError("bind() first")
        sel = selectors.DefaultSelector()
        conns: dict[int, _Conn] = {}
        accepting = True
        sel.register(self._listener, selectors.EVENT_READ, "accept")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        lanes = Lanes(self.max_clients, on_free=self._wake)
        try:
            while not stop.is_set():
                now = time.monotonic()
                next_deadline = min((c.deadline for c in conns.values()), default=now + 0.2)
                for key, _ in sel.select(timeout=max(0.0, min(0.2, next_deadline - now))):
                    if key.data == "accept":
                        self._accept(sel, conns, lanes)
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                    else:
                        self._read(sel, conns, key.data, lanes)
                now = time.monotonic()
                for c in [c for c in conns.values() if c.deadline <= now]:
                    # A slow or silent client: what it sent so far is its request ("" means status).
                    self._dispatch(sel, conns, c, lanes, silent=True)
                lanes.pump()
                # At the limit, keep accepting only while a held connection can make room (_evict).
                can_evict = any(c.deadline <= time.monotonic() + self.timeout / 2 for c in conns.values())
                with self._lock:
                    full = len(conns) + self._in_flight >= self.max_connections and not can_evict
                full = full or time.monotonic() < self._accept_paused_until
                if full and accepting:
                    sel.unregister(self._listener)
                    accepting = False
                elif not full and not accepting:
                    sel.register(self._listener, selectors.EVENT_READ, "accept")
                    accepting = True
        finally:
            for c in conns.values():
                c.sock.close()
            lanes.refuse_waiting()
            lanes.shutdown()
            sel.close()

    def _accept(self, sel: selectors.BaseSelector, conns: dict[int, _Conn], lanes: Lanes) -> None:
        if self._listener is None:
            return
        for _ in range(self.max_connections):
            with self._lock:
                full = len(conns) + self._in_flight >= self.max_connections
            if full and not self._evict(sel, conns, lanes):
                return
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and friends: leave the rest in the backlog for a moment
                self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                if self._should_log("accept_failed"):
                    log.warning("control_accept_failed", error=e.strerror or str(e))
                return
            sock.setblocking(False)
            try:
                pid, uid, gid = peer_credentials(sock)
            except OSError:
                sock.close()
                continue
            if not self._allowed(sock, uid, gid):
                if self._should_log("peer_refused"):
                    log.warning("control_peer_refused", uid=uid, pid=pid)
                self._send_now(sock, error_answer(f"permission denied for uid {uid}", kind="denied",
                                                  hint="the status socket answers root, the daemon's user and "
                                                       "members of service.socket_group"))
                continue
            conns[sock.fileno()] = _Conn(sock, time.monotonic() + self.timeout, uid)
            sel.register(sock, selectors.EVENT_READ, sock.fileno())

    def _evict(self, sel: selectors.BaseSelector, conns: dict[int, _Conn], lanes: Lanes) -> bool:
        """At the limit, a new client still gets in: the oldest connection of the peer holding the most
        is answered now as a silent client would be at its deadline. False if none has been held long."""
        held_since = time.monotonic() + self.timeout / 2  # held at least half its time: silent, not slow to write
        counts = collections.Counter(c.uid for c in conns.values())
        for uid, _ in counts.most_common():
            oldest = min((c for c in conns.values() if c.uid == uid and c.deadline <= held_since),
                         key=lambda c: c.deadline, default=None)
            if oldest is not None:
                self.evicted += 1
                if self._should_log("evicted"):
                    log.warning("control_connection_answered_early", uid=uid, held=len(conns))
                self._dispatch(sel, conns, oldest, lanes, silent=True)
                return True
        return False

    def _should_log(self, what: str) -> bool:
        """At most one line per LOG_EVERY seconds for each kind of client misbehaviour (floods)."""
        now = time.monotonic()
        if now - self._logged_at.get(what, -LOG_EVERY) < LOG_EVERY:
            return False
        self._logged_at[what] = now
        return True

    def _allowed(self, sock: socket.socket, uid: int, gid: int) -> bool:
        if uid in self.allowed_uids:
            return True
        if self.allowed_gid is None:
            return False
        return gid == self.allowed_gid or self.allowed_gid in peer_groups(sock, uid, gid)

    def _read(self, sel: selectors.BaseSelector, conns: dict[int, _Conn], fd: int, lanes: Lanes) -> None:
        c = conns[fd]
        try:
            chunk = c.sock.recv(self.max_request + 1 - len(c.buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the client reset the connection: nobody to answer
            self._drop(sel, conns, c)
            c.sock.close()
            return
        if chunk:
            c.buf += chunk
            if b"\n" not in c.buf:
                if len(c.buf) > self.max_request:
                    self._drop(sel, conns, c)
                    self._send_now(c.sock, error_answer(f"request larger than {self.max_request} bytes",
                                                        kind="too_large"))
                return
        self._dispatch(sel, conns, c, lanes)  # a full line, or EOF: what arrived is the request

    def _dispatch(self, sel: selectors.BaseSelector, conns: dict[int, _Conn], c: _Conn, lanes: Lanes,
                  silent: bool = False) -> None:
        self._drop(sel, conns, c)
        line = bytes(c.buf).split(b"\n", 1)[0]
        lane = lane_of(line, silent)
        with self._lock:
            self._in_flight += 1
        if lane == "idle":
            answer = functools.partial(self._answer, c.sock, line, c.uid, lanes.silent_answer)
        else:
            answer = functools.partial(self._answer, c.sock, line, c.uid)
        try:
            lanes.submit(lane, c.uid, answer, functools.partial(_close_if_cancelled, c.sock),
                         functools.partial(self._busy, c.sock, c.uid))
        except RuntimeError:  # no thread could be started (TasksMax, stopping): answer, keep serving
            self._busy(c.sock, c.uid)

    def _busy(self, sock: socket.socket, uid: int) -> None:
        """Answer a request no thread could be started for, from this thread, and close."""
        with self._lock:
            self._in_flight -= 1
        if self._should_log("no_thread"):
            log.warning("control_no_thread", uid=uid)
        self._send_now(sock, error_answer("the daemon could not start a thread to answer; retry",
                                          kind="busy", exit_code=int(ExitCode.TEMPFAIL)))

    def _drop(self, sel: selectors.BaseSelector, conns: dict[int, _Conn], c: _Conn) -> None:
        sel.unregister(c.sock)
        del conns[c.sock.fileno()]

    def _answer(self, sock: socket.socket, line: bytes, uid: int,
                memo: Callable[[Callable[[], str]], str] | None = None) -> None:
        """Run in a pool thread: call the handler (through `memo` for a silent client), send, close."""
        token = set_peer(uid)
        try:
            answer = self.run_handler(line) if memo is None else memo(functools.partial(self.run_handler, line))
            sock.setblocking(True)
            sock.settimeout(self.timeout)
            sock.sendall(answer.encode("utf-8") + (b"" if answer.endswith("\n") else b"\n"))
        except OSError as e:
            log.debug("control_send_failed", uid=uid, error=e.strerror or str(e))
        except Exception:  # a bug here must not cost the daemon its status socket
            log.exception("control_answer_failed", uid=uid)
        finally:
            reset_peer(token)
            sock.close()
            with self._lock:
                self._in_flight -= 1
            self._wake()

    def _wake(self) -> None:
        """Wake the selector loop (an answer finished: room for more, waiting requests may start)."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def run_handler(self, line: bytes) -> str:
        """Parse one request line and return the answer text; every failure becomes an error answer."""
        return run_handler(self.handler, line)

    def _send_now(self, sock: socket.socket, text: str) -> None:
        """Answer a refused or oversized request at once and close (from the selector thread)."""
        with contextlib.suppress(OSError):
            sock.send(text.encode("utf-8") + b"\n")
            # Unread input at close() would turn into ECONNRESET for the client before it reads us.
            for _ in range(16):
                if not sock.recv(self.max_request):
                    break
        sock.close()

    def close(self) -> None:
        """Stop listening and remove the socket file (only if it is still ours)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
        self._wake_r.close()
        self._wake_w.close()


class ControlThread(ServiceThread):
    """The status socket's selector loop on its own thread (the answers run in its bounded pool)."""

    def __init__(self, server: ControlServer, stop_event: threading.Event, on_death: DeathReport | None = None) -> None:
        super().__init__("control", stop_event, on_death)
        self.server = server

    def loop(self) -> None:
        self.server.serve_forever(self.stop_event)
