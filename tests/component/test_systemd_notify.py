"""sd_notify against a fake NOTIFY_SOCKET: the test binds the datagram socket systemd would."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from seo_sync.service.systemd import Notifier, ProgressMonitor, socket_address
from tests.support.clock import ManualClock


@pytest.fixture
def notify_sock(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket standing in for systemd's notification socket."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def _recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_status_watchdog_extend_stopping_arrive(notify_sock: tuple[socket.socket, str]) -> None:
    """Each call sends its standard assignment to the socket named by NOTIFY_SOCKET."""
    sock, path = notify_sock
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready()
    assert _recv(sock) == ["READY=1"]
    assert n.status("streaming: 5 tables")
    assert _recv(sock) == ["STATUS=streaming: 5 tables"]
    assert n.watchdog()
    assert _recv(sock) == ["WATCHDOG=1"]
    assert n.extend_timeout(90)
    assert _recv(sock) == ["EXTEND_TIMEOUT_USEC=90000000"]
    assert n.stopping("stopping")
    assert _recv(sock) == ["STOPPING=1", "STATUS=stopping"]
    n.close()


def test_ready_with_status_is_one_datagram(notify_sock: tuple[socket.socket, str]) -> None:
    """READY=1 and its STATUS= travel together so systemd never shows a stale status after READY."""
    sock, path = notify_sock
    Notifier({"NOTIFY_SOCKET": path}).ready("streaming")
    assert _recv(sock) == ["READY=1", "STATUS=streaming"]


def test_status_is_forced_onto_one_line(notify_sock: tuple[socket.socket, str]) -> None:
    """A newline in a status text cannot inject another assignment (e.g. READY=1)."""
    sock, path = notify_sock
    Notifier({"NOTIFY_SOCKET": path}).status("degraded\nREADY=1")
    assert _recv(sock) == ["STATUS=degraded READY=1"]


def test_abstract_namespace_socket() -> None:
    """'@name' addresses the Linux abstract namespace, as systemd may hand it out."""
    name = f"seo-sync-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    """With no NOTIFY_SOCKET nothing is sent and nothing fails (the daemon in a terminal)."""
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False
    assert n.watchdog() is False
    assert n.watchdog_interval() is None


def test_missing_socket_file_is_not_an_error(tmp_path: Path) -> None:
    """A NOTIFY_SOCKET that nobody listens on makes notify return False instead of raising."""
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.enabled
    assert n.status("x") is False
    assert n.status("y") is False


def test_environment_is_read_at_construction(notify_sock: tuple[socket.socket, str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping the Notifier reads os.environ when built, not at import."""
    sock, path = notify_sock
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert Notifier().ready()
    assert _recv(sock) == ["READY=1"]


@pytest.mark.parametrize(("env", "expected"), [
    ({"WATCHDOG_USEC": "60000000"}, 60.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "abc"}, None),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
    ({}, None),
])
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    """The watchdog interval comes from WATCHDOG_USEC, only when WATCHDOG_PID (if set) is ours."""
    assert Notifier(env, pid=4242).watchdog_interval() == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("/run/systemd/notify", "/run/systemd/notify"),
    ("@abc", "\0abc"),
    ("@", None),
    ("vsock:2:1234", None),
    ("", None),
    (None, None),
])
def test_socket_address(value: str | None, expected: str | None) -> None:
    """Path and abstract addresses are understood; anything else disables notification."""
    assert socket_address(value) == expected



def test_progress_monitor_flags_a_silent_worker() -> None:
    """A worker that stops beating for longer than max_age is reported stale; the others are not."""
    clock = ManualClock(1000.0)
    mon = ProgressMonitor(max_age=30, clock=clock)
    mon.register("writer")
    mon.register("poller-keywords")
    clock.now += 20
    mon.beat("poller-keywords")
    assert mon.stale() == {}
    clock.now += 15
    assert mon.stale() == {"writer": 35.0}
    mon.beat("writer")
    assert mon.stale() == {}
    mon.unregister("poller-keywords")
    clock.now += 31
    assert set(mon.stale()) == {"writer"}


def test_watchdog_pings_stop_when_the_writer_is_wedged(notify_sock: tuple[socket.socket, str]) -> None:
    """A hung main loop, at unit level: a main loop that pings only while workers are fresh goes silent."""
    sock, path = notify_sock
    clock = ManualClock(1000.0)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "60000000"})
    interval = notifier.watchdog_interval()
    assert interval == 60.0
    mon = ProgressMonitor(max_age=interval / 2, clock=clock)
    mon.register("writer")
    sent = []
    for tick in range(10):  # one main-loop iteration every 5 fake seconds; the writer wedges at tick 3
        clock.now += 5
        if tick < 3:
            mon.beat("writer")
        sent.append(notifier.watchdog() if not mon.stale() else False)
    assert sent == [True] * 9 + [False]  # stale once silent > 30 s: 7 ticks after the last beat
    sock.setblocking(False)  # local datagrams are queued by the time sendto returns
    received = []
    with pytest.raises(BlockingIOError):
        while True:
            received.append(sock.recv(100))
    assert received == [b"WATCHDOG=1"] * 9
