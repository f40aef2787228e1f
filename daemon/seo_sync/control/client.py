"""The status socket's client side: one request line to the daemon, its answer back.

Used by the CLI (`status`, `health`, `resync`), the demo and the tests; server.py beside it is the server.
"""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path
from typing import Any

from seo_sync import errors
from seo_sync.errors import DaemonUnavailable, ExitCode, SeoSyncError


def request(socket_path: Path, command: str, timeout: float = 5.0) -> str:
    """Send one request line to the daemon and return its answer text; DaemonUnavailable if none."""
    if "\n" in command:
        raise errors.BadInput("a request is one line")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(str(socket_path))
        try:
            sock.sendall(command.encode("utf-8") + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered (a refusal) and closed before reading: its answer is still there
        chunks: list[bytes] = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                if not chunks:
                    raise
                break  # the daemon closed with part of our request unread, after answering
            if not chunk:
                break
            chunks.append(chunk)
    except FileNotFoundError:
        raise DaemonUnavailable(f"the daemon is not running (no status socket at {socket_path})",
                                hint="start it (systemctl start seo-sync) or pass the right --socket") from None
    except ConnectionRefusedError:
        raise DaemonUnavailable(f"nothing listens on {socket_path} (left by a daemon that was killed?)",
                                hint="start the daemon; it replaces a stale socket file") from None
    except PermissionError:
        raise errors.SocketDenied(f"permission denied on {socket_path}",
                                hint="run as root, the service user, or a member of its group") from None
    except TimeoutError:
        raise DaemonUnavailable(f"the daemon did not answer on {socket_path} within {timeout:g}s",
                                hint="it may be stuck: check `journalctl -u seo-sync`") from None
    except OSError as e:
        raise DaemonUnavailable(f"cannot talk to the daemon on {socket_path}: {e.strerror or e}") from None
    finally:
        sock.close()
    return b"".join(chunks).decode("utf-8")


def request_json(socket_path: Path, command: str, timeout: float = 5.0) -> Any:
    """`request` and parse the JSON answer; an error answer is raised as the daemon's exception."""
    text = request(socket_path, command, timeout)
    try:
        data = json.loads(text)
    except ValueError:
        raise DaemonUnavailable(f"the daemon's answer to {command.split()[0]!r} is not JSON") from None
    if isinstance(data, dict) and "error" in data:
        raise _rebuild_error(data)
    return data


def _rebuild_error(data: dict[str, Any]) -> SeoSyncError:
    message, hint = f"daemon: {data['error']}", data.get("hint")
    if data.get("kind") == errors.OverBudget.kind:
        try:
            retry_after = float(data.get("retry_after", 1.0))
        except (TypeError, ValueError):
            retry_after = 1.0
        return errors.OverBudget(message, hint=hint, retry_after=retry_after)
    cls = getattr(errors, str(data.get("kind", "")), None)
    if isinstance(cls, type) and issubclass(cls, SeoSyncError):
        return cls(message, hint=hint)
    err = SeoSyncError(message, hint)
    with contextlib.suppress(ValueError, TypeError):
        err.exit_code = ExitCode(int(data.get("exit_code", ExitCode.FAILURE)))
    return err
