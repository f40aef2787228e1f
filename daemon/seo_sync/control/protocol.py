"""The status socket's protocol: one request line in, one JSON answer out, and the shape of errors.

The server (server.py) reads lines and writes answers; this module says what a line means, which
peer asked (for budgets shared per uid), and how every failure becomes one well-formed answer.
"""

from __future__ import annotations

import contextvars
import json
import re
from collections.abc import Callable
from typing import Any

import structlog

from seo_sync import errors
from seo_sync.errors import ExitCode, OverBudget, SeoSyncError

log = structlog.get_logger()

DEFAULT_COMMAND = "status"
COMMAND_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
Handler = Callable[[str, list[str]], str]
# The uid of the peer whose request the current pool thread answers: budgets are shared per peer.
_PEER_UID: contextvars.ContextVar[int | None] = contextvars.ContextVar("seo_sync_peer_uid", default=None)


def current_peer() -> int | None:
    """The uid of the client whose request this thread is answering (None outside an answer)."""
    return _PEER_UID.get()


def set_peer(uid: int | None) -> contextvars.Token[int | None]:
    """Name the peer this thread answers now (reset with the token)."""
    return _PEER_UID.set(uid)


def reset_peer(token: contextvars.Token[int | None]) -> None:
    """The answer is sent: this thread answers nobody."""
    _PEER_UID.reset(token)


def error_answer(message: str, hint: str | None = None, kind: str = "error", exit_code: int | None = None) -> str:
    """The JSON text of an error answer (the only shape of answer that carries an "error" key)."""
    out: dict[str, Any] = {"ok": False, "error": message, "kind": kind}
    if hint:
        out["hint"] = hint
    if exit_code is not None:
        out["exit_code"] = exit_code
    return json.dumps(out)


def parse_request(line: str) -> tuple[str, list[str]]:
    """Split a request line into (command, args); the last argument takes the rest of the line."""
    parts = line.strip().split(None, 2)
    if not parts:
        return DEFAULT_COMMAND, []
    command = parts[0].lower()
    if not COMMAND_RE.fullmatch(command):
        raise errors.BadInput(f"bad command {parts[0][:40]!r}", hint="commands: status health resync refresh metrics")
    return command, parts[1:]


def run_handler(handler: Handler, line: bytes) -> str:
    """Parse one request line and return the answer text; every failure becomes an error answer."""
    try:
        command, args = parse_request(line.decode("utf-8"))
    except UnicodeDecodeError:
        return error_answer("request is not UTF-8", kind="bad_request")
    except SeoSyncError as e:
        return error_answer(e.message, e.hint, kind="bad_request", exit_code=int(e.exit_code))
    try:
        return handler(command, args)
    except OverBudget as e:
        return json.dumps({"ok": False, "kind": e.kind, "retry_after": e.retry_after, "error": e.message,
                           "hint": e.hint, "exit_code": int(e.exit_code)})
    except SeoSyncError as e:
        return error_answer(e.message, e.hint, kind=type(e).__name__, exit_code=int(e.exit_code))
    except Exception as e:
        log.exception("control_handler_failed", command=command)
        return error_answer(f"internal error in {command}: {type(e).__name__}", kind="failed",
                            exit_code=int(ExitCode.SOFTWARE), hint="see the daemon's log")
