"""Logging: format choice, stdlib routing, level pins, redaction of secrets, thread stacks."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest
import structlog

from seo_sync.aws.tables import Source
from seo_sync.config import Settings, load_settings
from seo_sync.logs import MASK, configure_logging, dump_thread_stacks, redact_text, use_json
from seo_sync.schema import TABLES

ACCESS_KEY = "AKIAZ7QTESTKEY0SEO42"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSEOSYNC0KEY"
SESSION_TOKEN = "FwoGZXIvYXdzEJr//////////wEaDSeoSyncTestSessionToken0123456789abcdefXYZ="


class TTY(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        """Pretend to be a terminal."""
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the stdlib root logger and structlog as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: logging.getLogger(n).level for n in ("botocore", "urllib3", "apscheduler", "boto3")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for n, lv in levels.items():
        logging.getLogger(n).setLevel(lv)
    structlog.reset_defaults()


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(("fmt", "tty", "env", "expected"), [
    ("json", True, {}, True),
    ("console", False, {"JOURNAL_STREAM": "8:123"}, False),
    ("auto", True, {}, False),
    ("auto", True, {"JOURNAL_STREAM": "8:123"}, True),
    ("auto", False, {}, True),
])
def test_format_choice(fmt: str, tty: bool, env: dict[str, str], expected: bool) -> None:
    """auto means JSON under the journal or without a terminal, console on a terminal."""
    assert use_json(fmt, TTY() if tty else io.StringIO(), env) is expected


def test_json_lines_from_structlog_and_stdlib() -> None:
    """Our events and stdlib records come out as one JSON object per line, with level and logger."""
    buf = io.StringIO()
    configure_logging("json", "INFO", stream=buf, env={})
    structlog.get_logger().info("batch_applied", table="keywords", records=3)
    logging.getLogger("apscheduler.scheduler").warning("job %s missed", "prune")
    logging.getLogger("some.lib").debug("hidden at INFO")
    first, second = _lines(buf)
    assert first["event"] == "batch_applied" and first["records"] == 3 and first["level"] == "info"
    assert "timestamp" in first
    assert second["event"] == "job prune missed" and second["logger"] == "apscheduler.scheduler"
    assert second["level"] == "warning"


def test_console_rendering_on_a_terminal() -> None:
    """On a terminal the output is human text, not JSON."""
    buf = TTY()
    configure_logging("auto", "INFO", stream=buf, env={})
    structlog.get_logger().info("hello_operator", table="businesses")
    out = buf.getvalue()
    assert "hello_operator" in out and "businesses" in out
    with pytest.raises(ValueError):
        json.loads(out.splitlines()[0])


def test_library_loggers_pinned_even_at_debug() -> None:
    """At DEBUG our debug lines appear but botocore/urllib3 stay at WARNING."""
    buf = io.StringIO()
    configure_logging("json", "DEBUG", stream=buf, env={})
    structlog.get_logger().debug("ours")
    logging.getLogger("botocore.endpoint").debug("Sending http request")
    logging.getLogger("urllib3.connectionpool").debug("Starting new HTTP connection")
    logging.getLogger("apscheduler.scheduler").debug("Looking for jobs to run")
    events = [e["event"] for e in _lines(buf)]
    assert events == ["ours", "Looking for jobs to run"]


def test_reconfiguring_does_not_duplicate_lines() -> None:
    """Calling configure_logging twice leaves one handler, so each event is written once."""
    buf = io.StringIO()
    configure_logging("json", "INFO", stream=io.StringIO(), env={})
    configure_logging("json", "INFO", stream=buf, env={})
    structlog.get_logger().info("once")
    assert [e["event"] for e in _lines(buf)] == ["once"]


def test_redaction_by_key_shape_and_text() -> None:
    """Secrets are masked by key name, by the shape of AWS keys and headers, and inside exceptions."""
    buf = io.StringIO()
    configure_logging("json", "DEBUG", stream=buf, env={})
    log = structlog.get_logger()
    log.info("creds", aws_secret_access_key=SECRET_KEY, nested={"SessionToken": SESSION_TOKEN, "ok": 1},
             note=f"using {ACCESS_KEY}", confirmation_token="I-UNDERSTAND")
    log.info("headers {'Authorization': b'AWS4-HMAC-SHA256 Credential=X, Signature=abc', "
             f"'X-Amz-Security-Token': b'{SESSION_TOKEN}'}}")
    try:
        raise RuntimeError(f"boom password={SECRET_KEY}")
    except RuntimeError:
        log.exception("failed")
    out = buf.getvalue()
    for secret in (SECRET_KEY, SESSION_TOKEN, ACCESS_KEY, "I-UNDERSTAND", "Signature=abc"):
        assert secret not in out
    first = _lines(buf)[0]
    assert first["nested"]["ok"] == 1 and first["nested"]["SessionToken"] == MASK
    assert first["note"] == f"using {MASK}"


@pytest.mark.parametrize(("text", "kept"), [
    ("x-amz-security-token:FwoGabc/def=\nhost:localhost", "host:localhost"),
    ("Authorization: AWS4-HMAC-SHA256 Credential=AKIA/..., Signature=ff", "Authorization: "),
    ('{"SecretAccessKey": "abc/def", "Region": "us-east-1"}', '"Region": "us-east-1"'),
    ("password=hunter22 user=alice", "user=alice"),
])
def test_redact_text_keeps_the_rest(text: str, kept: str) -> None:
    """Masking removes the secret value but keeps the surrounding text readable."""
    out = redact_text(text)
    assert MASK in out and kept in out
    assert MASK + "]" not in out  # masked once, not re-masked by a later pattern
    for secret in ("FwoGabc", "Signature=ff", "abc/def", "hunter22"):
        assert secret not in out


def test_ordinary_text_is_untouched() -> None:
    """Sequence numbers, ARNs and keys of items are not mistaken for secrets."""
    text = ("seq=4900000000000000000000001234 arn=arn:aws:dynamodb:us-east-1:123456789012:table/seo_keywords"
            "/stream/2026-11-24T21:00:00.000 key=biz-1#hello-world#en")
    assert redact_text(text) == text


def _settings_with_credentials(endpoint: str, settings: Settings) -> Settings:
    return load_settings(path=None, env={}, overrides={
        "data_dir": settings.data_dir,
        "aws": {"endpoint_url": endpoint, "region": "us-east-1", "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY, "session_token": SESSION_TOKEN}})


def _boto_traffic(s: Settings) -> None:
    """Create a table, write and read an item and scan, through the AWS layer against moto."""
    src = Source(s.aws, s.table_prefix)
    spec = TABLES["businesses"]
    src.create_table(spec)
    item = {"business_id": {"S": "b1"}, "name": {"S": "Cafe"}, "_version": {"N": "1"}}
    src.put_item(spec, item)
    assert src.get_item(spec, ("b1",)) is not None
    list(src.scan(spec))


def test_no_secret_in_debug_logs_against_moto(settings: Settings) -> None:
    """At DEBUG, real boto3 calls to moto leave no key, secret or token in the output."""
    buf = io.StringIO()
    s = _settings_with_credentials(settings.aws.endpoint_url or "", settings)
    configure_logging("json", "DEBUG", stream=buf, env={})
    structlog.get_logger().debug("settings", settings=s.redacted())
    _boto_traffic(s)
    out = buf.getvalue()
    assert out  # something was logged
    for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN):
        assert secret not in out


def test_no_secret_even_when_botocore_is_unpinned(settings: Settings) -> None:
    """If someone lowers botocore to DEBUG, its header dumps are still redacted."""
    buf = io.StringIO()
    s = _settings_with_credentials(settings.aws.endpoint_url or "", settings)
    configure_logging("json", "DEBUG", stream=buf, env={})
    logging.getLogger("botocore").setLevel(logging.DEBUG)
    _boto_traffic(s)
    out = buf.getvalue()
    assert "botocore" in out and "x-amz-security-token" in out.lower()  # the dangerous lines are there
    for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN):
        assert secret not in out


def test_registered_secret_is_masked_anywhere() -> None:
    """A credential value registered at start-up is masked even in text of no known shape."""
    buf = io.StringIO()
    configure_logging("json", "INFO", stream=buf, env={}, secrets=["plain-looking-value-123"])
    structlog.get_logger().info("oops", detail="value was plain-looking-value-123!")
    assert "plain-looking-value-123" not in buf.getvalue()


def test_dump_thread_stacks() -> None:
    """Every live thread's stack is logged, including a thread blocked in a wait."""
    buf = io.StringIO()
    configure_logging("json", "INFO", stream=buf, env={})
    release = threading.Event()
    t = threading.Thread(target=release.wait, name="stuck-writer", daemon=True)
    t.start()
    try:
        n = dump_thread_stacks(structlog.get_logger())
    finally:
        release.set()
        t.join()
    lines = [e for e in _lines(buf) if e["event"] == "thread_stack"]
    assert n == len(lines) >= 2
    stuck = next(e for e in lines if e["thread"] == "stuck-writer")
    assert "wait" in stuck["stack"]
