"""The status socket: protocol, robustness (flood, slow clients, oversize), peer checks, stale files."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seo_sync.control import peers
from seo_sync.control.client import request, request_json
from seo_sync.control.lanes import FAST_WORKERS, IDLE_WORKERS
from seo_sync.control.protocol import parse_request
from seo_sync.control.server import ControlServer
from seo_sync.errors import BadInput, ConfigError, DaemonUnavailable, ExitCode, LockHeld, NotFound, SeoSyncError
from seo_sync.service.metrics import render_metrics

STATUS = {"state": "streaming", "tables": {}}


class Recorder:
    """A handler that answers a few test commands and records its peak concurrency."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.calls: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    def __call__(self, command: str, args: list[str]) -> str:
        """Answer `command`."""
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.calls.append((command, args))
        try:
            if self.delay:
                time.sleep(self.delay)
            if command == "status":
                return json.dumps(STATUS)
            if command == "echo":
                return json.dumps({"args": args})
            if command == "boom":
                raise RuntimeError("detail that must not leave the daemon")
            if command == "missing":
                raise NotFound("no such table", hint="name one of the five tables")
            raise BadInput(f"unknown command {command}")
        finally:
            with self.lock:
                self.active -= 1


class Running:
    """A ControlServer bound and serving in a thread, for one test."""

    def __init__(self, path: Path, handler: Callable[[str, list[str]], str], **kw: object) -> None:
        opts: dict = {"allowed_uids": {os.geteuid()}, "allowed_gid": None, "timeout": 0.3, **kw}
        self.server = ControlServer(path, handler, **opts)
        self.server.bind()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.server.serve_forever, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving, join the thread, remove the socket."""
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.server.close()


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    """Where the test's status socket lives."""
    return tmp_path / "run" / "status.sock"


@pytest.fixture
def served(sock_path: Path) -> Iterator[tuple[Running, Recorder]]:
    """A serving control socket with a recording handler."""
    handler = Recorder()
    running = Running(sock_path, handler)
    yield running, handler
    running.close()


def test_status_round_trip(served: tuple[Running, Recorder], sock_path: Path) -> None:
    """A request line gets the handler's answer as JSON."""
    assert request_json(sock_path, "status") == STATUS


def test_socket_file_mode_is_0660(served: tuple[Running, Recorder], sock_path: Path) -> None:
    """The socket file is a socket with mode 0660 whatever the umask."""
    st = os.stat(sock_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_silent_client_gets_status(served: tuple[Running, Recorder], sock_path: Path) -> None:
    """A client that sends nothing within the timeout is answered with status."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock_path))
        assert json.loads(_read_all(s)) == STATUS


def test_request_without_newline_ended_by_eof(served: tuple[Running, Recorder], sock_path: Path) -> None:
    """A request ended by shutting down the write side counts as a full line."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock_path))
        s.sendall(b"echo a b c")
        s.shutdown(socket.SHUT_WR)
        assert json.loads(_read_all(s)) == {"args": ["a", "b c"]}


def test_last_argument_keeps_its_spaces(served: tuple[Running, Recorder], sock_path: Path) -> None:
    """`refresh <table> <key-json>` reaches the handler with the JSON key intact."""
    key = '{"business_id": "b 1", "keyword_id": "x#en"}'
    assert request_json(sock_path, f"echo keywords {key}") == {"args": ["keywords", key]}


def test_handler_exception_is_an_error_answer(served: tuple[Running, Recorder], sock_path: Path) -> None:
    """A failing handler yields a JSON error (no internal detail) and the server keeps serving."""
    text = request(sock_path, "boom")
    answer = json.loads(text)
    assert answer["ok"] is False and answer["exit_code"] == ExitCode.SOFTWARE
    assert "must not leave" not in text
    with pytest.raises(SeoSyncError) as info:
        request_json(sock_path, "boom")
    assert info.value.exit_code == ExitCode.SOFTWARE
    assert request_json(sock_path, "status") == STATUS


def test_daemon_errors_are_raised_by_the_client_with_their_type(served: tuple[Running, Recorder],
                                                                sock_path: Path) -> None:
    """A SeoSyncError from the handler comes back to request_json as the same class with its hint."""
    with pytest.raises(NotFound) as info:
        request_json(sock_path, "missing")
    assert info.value.hint == "name one of the five tables"
    assert info.value.exit_code == ExitCode.NOINPUT


def test_bad_command_and_bad_utf8(served: tuple[Running, Recorder], sock_path: Path) -> None:
    """Garbage requests get an error answer without reaching the handler."""
    handler = served[1]
    assert json.loads(request(sock_path, "DROP;TABLE"))["kind"] == "bad_request"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock_path))
        s.sendall(b"\xff\xfe\n")
        assert json.loads(_read_all(s))["kind"] == "bad_request"
    assert handler.calls == []


def test_oversized_request_gets_an_error(served: tuple[Running, Recorder], sock_path: Path) -> None:
    """A request longer than the cap is refused with an error answer, not read forever."""
    answer = json.loads(request(sock_path, "echo " + "x" * 10_000))
    assert answer["kind"] == "too_large"
    assert served[1].calls == []


def test_flood_and_slowloris_do_not_starve_a_normal_client(sock_path: Path) -> None:
    """600 simultaneous clients plus slow ones: a normal client is answered, concurrency stays bounded."""
    handler = Recorder(delay=0.002)
    running = Running(sock_path, handler, timeout=1.0, max_clients=4)
    try:
        async def slowloris() -> bytes | None:
            """The answer to a trickled request; None when the server cut the client off first."""
            reader, writer = await asyncio.open_unix_connection(str(sock_path))
            try:
                for _ in range(5):  # trickle bytes, never a newline
                    writer.write(b"s")
                    await writer.drain()
                    await asyncio.sleep(0.1)
                return await reader.read()
            except (BrokenPipeError, ConnectionResetError):
                # On a loaded machine the trickle outlasts the server's 1 s deadline: it answered and
                # closed, which is what a slow client must get; the late write then finds it gone.
                return None
            finally:
                writer.close()

        async def flooder() -> bytes | None:
            """The answer; None when the server cut the client off as silent before it had written."""
            reader, writer = await asyncio.open_unix_connection(str(sock_path))
            try:
                # 600 clients on one event loop: on a loaded machine a client may wait longer than the
                # server's 1 s deadline between connecting and writing, and is cut off, as a silent one must.
                writer.write(b"status\n")
                await writer.drain()
                return await reader.read() or None
            except (BrokenPipeError, ConnectionResetError):
                return None
            finally:
                writer.close()

        async def swarm() -> tuple[list[bytes | None], list[bytes | None], str]:
            slow = [asyncio.create_task(slowloris()) for _ in range(20)]
            await asyncio.sleep(0.05)
            flood = [asyncio.create_task(flooder()) for _ in range(600)]
            normal = await asyncio.to_thread(request, sock_path, "status", 30.0)
            return list(await asyncio.gather(*flood)), list(await asyncio.gather(*slow)), normal

        flood, slow, normal = asyncio.run(swarm())
    finally:
        running.close()
    assert json.loads(normal) == STATUS
    assert all(a is None or json.loads(a) == STATUS for a in flood)
    # "sssss" is not a command they may run; a slow client is answered so, or cut off at the deadline.
    assert all(a is None or json.loads(a)["ok"] is False for a in slow)
    assert handler.peak <= 4 + FAST_WORKERS + IDLE_WORKERS  # the work lane, plus the fast and idle lanes


def test_stale_socket_file_is_replaced(sock_path: Path) -> None:
    """A socket file left by a killed daemon (nothing listening) is replaced at bind."""
    sock_path.parent.mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(sock_path))
    dead.close()  # like kill -9: the file stays
    running = Running(sock_path, Recorder())
    try:
        assert request_json(sock_path, "status") == STATUS
    finally:
        running.close()
    assert not sock_path.exists()


def test_live_socket_is_not_replaced(sock_path: Path) -> None:
    """bind refuses when another daemon answers on the path, and leaves its socket alone."""
    sock_path.parent.mkdir(parents=True)
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(sock_path))
    live.listen(1)
    try:
        with pytest.raises(LockHeld):
            ControlServer(sock_path, Recorder(), allowed_uids=set(), allowed_gid=None).bind()
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    finally:
        live.close()


def test_a_client_that_finds_the_socket_path_is_never_refused(sock_path: Path, monkeypatch) -> None:
    """The socket listens before it is renamed into place: a connect right as the path appears succeeds."""
    from seo_sync.control import server as control_server

    real_rename = os.rename
    refused: list[BaseException] = []

    def rename_then_connect(src, dst):
        real_rename(src, dst)
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(dst))
        except OSError as e:
            refused.append(e)
        finally:
            probe.close()

    monkeypatch.setattr(control_server.os, "rename", rename_then_connect)
    server = ControlServer(sock_path, Recorder(), allowed_uids=set(), allowed_gid=None)
    server.bind()
    try:
        assert refused == []
    finally:
        server.close()


def test_non_socket_file_is_not_replaced(sock_path: Path) -> None:
    """A regular file at the socket path is a configuration error and is left untouched."""
    sock_path.parent.mkdir(parents=True)
    sock_path.write_text("precious")
    with pytest.raises(ConfigError):
        ControlServer(sock_path, Recorder(), allowed_uids=set(), allowed_gid=None).bind()
    assert sock_path.read_text() == "precious"


def test_client_without_daemon(tmp_path: Path) -> None:
    """No socket file, a stale one, or a daemon that never answers: DaemonUnavailable with a hint."""
    with pytest.raises(DaemonUnavailable) as info:
        request(tmp_path / "none.sock", "status")
    assert info.value.hint and info.value.exit_code == ExitCode.DOWN
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    with pytest.raises(DaemonUnavailable, match="nothing listens"):
        request(stale, "status")
    mute = tmp_path / "mute.sock"
    with socket.socket(socket.AF_UNIX) as m:
        m.bind(str(mute))
        m.listen(1)
        with pytest.raises(DaemonUnavailable, match="did not answer"):
            request(mute, "status", timeout=0.2)


# -- peer credentials: a forked child drops to uid 65534 (tests run as root) -------------------------
@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp_path is 0700 under root)."""
    d = Path(tempfile.mkdtemp(prefix="seo-sync-ctl-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _as_user(fn: Callable[[], str], uid: int, gid: int, groups: list[int]) -> str:
    """Run fn in a forked child with the given credentials and return what it returned (or raised)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(r)
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            try:
                out = fn()
            except Exception as e:
                out = f"{type(e).__name__}: {e}"
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read().decode()
    os.waitpid(pid, 0)
    return data


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another uid")
def test_unauthorized_uid_is_refused(open_dir: Path) -> None:
    """A process of another uid that is not in the group is refused by SO_PEERCRED, not served."""
    path = open_dir / "status.sock"
    handler = Recorder()
    running = Running(path, handler, allowed_uids={os.geteuid()}, allowed_gid=4242)
    try:
        path.chmod(0o666)  # let the connect through so that the peer check is what is tested
        out = _as_user(lambda: request(path, "status"), 65534, 65534, [])
    finally:
        running.close()
    answer = json.loads(out)
    assert answer["kind"] == "denied" and "65534" in answer["error"]
    assert handler.calls == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another uid")
@pytest.mark.parametrize(("gid", "groups"), [(4242, []), (65534, [4242])])
def test_group_member_is_answered(open_dir: Path, gid: int, groups: list[int]) -> None:
    """Another uid whose primary or supplementary group is the configured group is served."""
    path = open_dir / "status.sock"
    running = Running(path, Recorder(), allowed_uids={os.geteuid()}, allowed_gid=4242)
    try:
        assert os.stat(path).st_gid == 4242  # the socket file belongs to the configured group
        path.chmod(0o666)
        out = _as_user(lambda: request(path, "status"), 65534, gid, groups)
    finally:
        running.close()
    assert json.loads(out) == STATUS


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another uid")
def test_file_mode_keeps_other_users_out(open_dir: Path) -> None:
    """With the socket's own 0660 mode another user cannot even connect (permission denied)."""
    path = open_dir / "status.sock"
    running = Running(path, Recorder())
    try:
        out = _as_user(lambda: request(path, "status"), 65534, 65534, [])
    finally:
        running.close()
    assert out.startswith("SocketDenied: permission denied")  # a DaemonUnavailable that exits 77


def test_resolve_group() -> None:
    """socket_group resolves by name or number, unset to our own group; an unknown name is a config error."""
    assert peers.resolve_group(None) == os.getegid()
    assert peers.resolve_group("root") == 0
    assert peers.resolve_group("4242") == 4242
    with pytest.raises(ConfigError):
        peers.resolve_group("no-such-group-seo-sync")


@pytest.mark.parametrize(("line", "expected"), [
    ("", ("status", [])),
    ("  \r", ("status", [])),
    ("HEALTH", ("health", [])),
    ("resync keywords", ("resync", ["keywords"])),
    ('refresh keywords {"a": 1, "b": 2}', ("refresh", ["keywords", '{"a": 1, "b": 2}'])),
])
def test_parse_request(line: str, expected: tuple[str, list[str]]) -> None:
    """Request lines split into a command and arguments, the last taking the rest of the line."""
    assert parse_request(line) == expected


# -- metrics -------------------------------------------------------------------------------------------
def test_render_metrics() -> None:
    """A status snapshot renders as Prometheus text with one labelled sample per table and state."""
    snap = {"state": "degraded", "uptime": 12.5, "version": "0.1.0", "tables": {
        "businesses": {"rows": 10, "lag_seconds": 0.25, "dead_letters": 1, "skipped_stale": 2,
                       "records_applied": 300, "get_records_calls": 40, "state": "streaming"},
        'we"ird\n': {"rows": None, "state": "error"},
    }}
    text = render_metrics(snap)
    lines = text.splitlines()
    assert 'seo_sync_state{state="degraded"} 1' in lines
    assert 'seo_sync_state{state="streaming"} 0' in lines
    assert "seo_sync_uptime_seconds 12.5" in lines
    assert 'seo_sync_table_rows{table="businesses"} 10' in lines
    assert 'seo_sync_table_lag_seconds{table="businesses"} 0.25' in lines
    assert 'seo_sync_table_records_applied_total{table="businesses"} 300' in lines
    assert "# TYPE seo_sync_table_records_applied_total counter" in lines
    assert 'seo_sync_table_state{table="we\\"ird\\n",state="error"} 1' in lines
    assert not any(line.startswith('seo_sync_table_rows{table="we') for line in lines)  # None is left out
    for line in lines:  # every sample line is `name{labels} number`
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])
    assert text.endswith("\n")


def test_render_metrics_accepts_a_table_list_and_unknown_state() -> None:
    """Tables given as a list of dicts and a state outside the known set still render."""
    text = render_metrics({"state": "weird", "tables": [{"name": "keywords", "rows": 3}]})
    assert 'seo_sync_state{state="weird"} 1' in text
    assert 'seo_sync_table_rows{table="keywords"} 3' in text


def test_render_metrics_shows_repair_reads_and_the_rolling_verify() -> None:
    """Repair reads (pending, done, changed, failed) and anti-entropy counts per table become samples."""
    text = render_metrics({"state": "degraded", "repairs": {"pending": 2, "done": 5, "changed": 3, "failed": 1},
                           "anti_entropy": {"keywords": {"items_checked": 40, "differences": 3, "passes": 1}}})
    lines = text.splitlines()
    assert "seo_sync_repair_reads_pending 2" in lines
    assert "seo_sync_repair_reads_changed_total 3" in lines and "seo_sync_repair_reads_failed_total 1" in lines
    assert 'seo_sync_anti_entropy_differences_total{table="keywords"} 3' in lines
    assert 'seo_sync_anti_entropy_items_checked_total{table="keywords"} 40' in lines


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
