"""The unit tier stays pure: a unit test that starts a process, opens a socket or asks for moto fails.

Pure tests are what `make check` runs in seconds on every change; a test that needs a process, a
socket or the embedded DynamoDB belongs to the component tier or above, where its cost is expected.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

IMPURE_FIXTURES = ("moto_server", "dynamo_endpoint", "settings")


class ImpureUnitTest(AssertionError):
    """A unit test reached for a process, a socket or moto."""


@pytest.fixture(autouse=True)
def _pure(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    used = [f for f in IMPURE_FIXTURES if f in request.fixturenames]
    if used:
        raise ImpureUnitTest(f"{request.node.nodeid} uses {used}: move it to tests/component")

    def no_process(*_a: object, **_k: object) -> None:
        raise ImpureUnitTest(f"{request.node.nodeid} starts a process: move it to tests/component")

    def no_socket(*_a: object, **_k: object) -> None:
        raise ImpureUnitTest(f"{request.node.nodeid} opens a socket: move it to tests/component")

    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    monkeypatch.setattr(socket.socket, "__init__", no_socket)
    yield
