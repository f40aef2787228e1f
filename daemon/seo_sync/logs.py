"""Logging set-up: structlog for our events, stdlib records (botocore, urllib3, apscheduler) through it.

JSON lines under systemd (JOURNAL_STREAM set) or when stdout is not a terminal, console rendering
on a terminal. Every line, ours or a library's, passes one redaction step that masks AWS keys,
secrets, session tokens and Authorization headers, so even DEBUG output is safe to paste.
Nothing happens at import: the CLI calls `configure_logging` once it knows the settings.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import structlog

MASK = "[REDACTED]"
# Libraries whose DEBUG output prints request headers (botocore: X-Amz-Security-Token, #2626).
PINNED_AT_WARNING = ("botocore", "boto3", "urllib3", "s3transfer")
QUIET_UNLESS_DEBUG = ("apscheduler",)
SECRET_KEY_RE = re.compile(r"secret|token|passw(or)?d|credential|authorization|api[_-]?key|private[_-]?key", re.I)
_SENSITIVE_NAMES = r"[\w-]*(?:secret|token|passw(?:or)?d|credential|authorization|api[_-]?key)[\w-]*"
TEXT_PATTERNS = (
    # Access key ids: AKIA (long-term) and ASIA (temporary), 16 more upper-case letters or digits.
    (re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b"), MASK),
    # 'Authorization': b'AWS4-HMAC-SHA256 Credential=…, Signature=…' and quoted header values alike.
    (re.compile(r"""(?P<k>['"]?(?:authorization|x-amz-security-token)['"]?\s*[:=]\s*b?)(?P<q>['"]).*?(?P=q)""",
                re.I), rf"\g<k>\g<q>{MASK}\g<q>"),
    # Unquoted `Authorization: …` / `X-Amz-Security-Token: …` header lines: mask to the end of the line.
    (re.compile(r"(?P<k>\b(?:authorization|x-amz-security-token)\s*:\s*)(?![\s'\"]|\[REDACTED\])[^\n]+", re.I),
     rf"\g<k>{MASK}"),
    # secret_access_key = …, "SessionToken": "…", password: … in free text (config dumps, repr of dicts).
    (re.compile(rf"""(?P<k>['"]?{_SENSITIVE_NAMES}['"]?\s*[:=]\s*b?)(?P<q>['"]).*?(?P=q)""", re.I),
     rf"\g<k>\g<q>{MASK}\g<q>"),
    (re.compile(rf"""(?P<k>\b{_SENSITIVE_NAMES}\s*[:=]\s*)(?![\s'"]|\[REDACTED\])[^\s,;&}}\]]+""", re.I),
     rf"\g<k>{MASK}"),
)
_HANDLER_MARK = "_seo_sync_handler"


class Redactor:
    """Masks secrets in log values: by key name, by known shapes, and by exact registered values."""

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def register(self, *values: str | None) -> None:
        """Remember literal secret values (the configured credentials) to mask wherever they appear."""
        with self._lock:
            self._known.update(v for v in values if v and len(v) >= 8)

    def text(self, value: str) -> str:
        """`value` with every secret it contains masked."""
        for secret in self._known:
            if secret in value:
                value = value.replace(secret, MASK)
        for pattern, replacement in TEXT_PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any, depth: int = 0) -> Any:
        """A log value with secrets masked (containers recursively; other objects as redacted text)."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.text(value)
        if depth > 8:
            return "…"
        if isinstance(value, Mapping):
            return {k: MASK if _secret_key(k) else self.value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v, depth + 1) for v in value]
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        return self.text(str(value))

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
        """structlog processor: redact every key and value of the event."""
        return {k: MASK if _secret_key(k) and v is not None else self.value(v) for k, v in event_dict.items()}


def _secret_key(key: Any) -> bool:
    return isinstance(key, str) and bool(SECRET_KEY_RE.search(key))


REDACTOR = Redactor()


def register_secrets(*values: str | None) -> None:
    """Mask these literal values (e.g. credentials from the config or boto3's chain) in every log line."""
    REDACTOR.register(*values)


def redact_text(text: str) -> str:
    """Mask secrets in a text that leaves the process (status output, error messages)."""
    return REDACTOR.text(text)


def use_json(fmt: str, stream: TextIO, env: Mapping[str, str]) -> bool:
    """True for JSON lines: asked for, or `auto` under systemd's journal or without a terminal."""
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(env.get("JOURNAL_STREAM")) or not (isatty is not None and isatty())


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None,
                      env: Mapping[str, str] | None = None, secrets: Iterable[str | None] = ()) -> None:
    """Route structlog and stdlib logging to `stream` as JSON lines or console text, redacted."""
    stream = sys.stdout if stream is None else stream
    env = os.environ if env is None else env
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    register_secrets(*secrets)
    as_json = use_json(fmt, stream, env)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any = (structlog.processors.JSONRenderer(sort_keys=False) if as_json
                     else structlog.dev.ConsoleRenderer(colors=bool(getattr(stream, "isatty", lambda: False)())))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # render tracebacks to text so they are redacted too
            REDACTOR,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in PINNED_AT_WARNING:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in QUIET_UNLESS_DEBUG:
        logging.getLogger(name).setLevel(logging.DEBUG if numeric <= logging.DEBUG else logging.WARNING)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def dump_thread_stacks(log: Any) -> int:
    """Log the current stack of every thread (SIGUSR1); returns how many threads were dumped."""
    names = {t.ident: t.name for t in threading.enumerate()}
    frames = sys._current_frames()
    for ident, frame in frames.items():
        log.warning("thread_stack", thread=names.get(ident, str(ident)), thread_id=ident,
                    stack="".join(traceback.format_stack(frame)))
    return len(frames)


def mask_url(url: str | None) -> str | None:
    """`url` with the password of its user part masked (`http://key:***@host`): safe to print or log."""
    if not url or "@" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def url_secret(url: str | None) -> str | None:
    """The password inside an endpoint URL, for the log filter to mask (None when there is none)."""
    return urlsplit(url).password if url and "@" in url else None
