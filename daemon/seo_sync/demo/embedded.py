"""The embedded local DynamoDB (moto's HTTP server) and the demo: sample data and a simulated writer.

moto is a demo/test dependency (`pip install seo-sync[demo]`); it is imported only when used.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.lock import WriterLock
from seo_sync.cache.writer import Cache
from seo_sync.config import Settings
from seo_sync.errors import BadInput
from seo_sync.schema import TABLES

# moto accepts any key: these are nobody's credentials, the same in every demo and test.
FAKE_SECRET = "testing"  # noqa: S105  # nosec B105
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
    "AWS_SESSION_TOKEN": FAKE_SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
SAMPLE_DIR = Path(__file__).resolve().parents[3] / "data" / "sample"  # the repository's data/sample
log = structlog.get_logger()

# The moto DynamoDB backend methods that check a condition and then write. Real DynamoDB makes each
# one atomic; moto's threaded server does not, so two racing conditional puts could both pass.
_MOTO_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_moto_write_lock = threading.RLock()


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` run under the one moto write lock."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _moto_write_lock:
            return method(*args, **kwargs)

    wrapper.seo_sync_serialized = True  # type: ignore[attr-defined]
    return wrapper


def serialize_moto_writes() -> None:
    """Make moto's conditional writes atomic as DynamoDB's are: one write at a time (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend  # demo/test dependency only

    for name in _MOTO_WRITES:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, "seo_sync_serialized", False):
            setattr(DynamoDBBackend, name, _serialized(method))


class EmbeddedDynamo:
    """moto's DynamoDB + Streams HTTP server on a free loopback port, in a background thread."""

    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer  # demo/test dependency only

        for name in ("werkzeug", "moto"):
            logging.getLogger(name).setLevel(logging.ERROR)
        serialize_moto_writes()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint = ""

    def start(self) -> EmbeddedDynamo:
        """Start serving; sets `endpoint`."""
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        """Forget every table (moto keeps state across stop/start in one process)."""
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback moto only (http)  # nosec B310
            resp.read()

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()


def fake_credentials_env() -> dict[str, str]:
    """The environment a process needs to talk to the embedded DynamoDB (fake credentials)."""
    return dict(FAKE_CREDENTIALS)


def install_fake_credentials() -> None:
    """Put fake credentials into this process's environment unless real ones are already set."""
    for k, v in FAKE_CREDENTIALS.items():
        os.environ.setdefault(k, v)


def load_sample_items() -> dict[str, list[dict[str, Any]]]:
    """The sample data set: table name → items in DynamoDB JSON (see data/sample/)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(SAMPLE_DIR.glob("*.json")):
        out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return out


def embedded_settings(settings: Settings, endpoint: str) -> Settings:
    """`settings` pointed at the embedded DynamoDB at `endpoint`, with its fake credentials."""
    aws = settings.aws.model_copy(update={
        "endpoint_url": endpoint, "region": FAKE_CREDENTIALS["AWS_REGION"], "profile": None,
        "access_key_id": SecretStr(FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]),
        "secret_access_key": SecretStr(FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]),
        "session_token": SecretStr(FAKE_CREDENTIALS["AWS_SESSION_TOKEN"]),
    })
    return settings.model_copy(update={"aws": aws, "use_dynamodb": True})


def load_sample_into(source: Source) -> dict[str, int]:
    """Write the sample data set into DynamoDB through `source` (the tables exist); items per table."""
    counts: dict[str, int] = {}
    for name, raw in load_sample_items().items():
        spec = TABLES.get(name)
        if spec is None:
            raise BadInput(f"sample file {name}.json names no table", hint=f"one of: {', '.join(TABLES)}")
        counts[name] = source.batch_write(spec, [codec.item_from_ddb_json(obj) for obj in raw])
    log.info("demo_sample_loaded", **counts)
    return counts


def run_demo_sync(settings: Settings, source: Source,
                  progress: Callable[[str, int | None], Callable[[int], None]] | None = None) -> dict[str, Any]:
    """Create the tables, load the sample data, and full-sync every table into the cache; a summary.

    `progress(table, total)` returns a function the sync calls with the items done so far.
    """
    from seo_sync.sync import fullsync  # only the demo's one-shot sync needs it here

    started = time.monotonic()
    created = [spec.name for spec in TABLES.values() if source.create_table(spec)]
    loaded = load_sample_into(source)
    rows: dict[str, int] = {}
    with WriterLock(settings.cache_path):
        cache = Cache.open(settings.cache_path, settings.service.busy_timeout_ms)
        try:
            for spec in TABLES.values():
                report = progress(spec.name, loaded.get(spec.name)) if progress else None
                fullsync.full_sync_table(cache, source, spec, settings.fullsync, capture_stream=False,
                                         reason="demo", progress=report)
                rows[spec.name] = cache.count(spec.name)
                if report is not None:
                    report(rows[spec.name])
        finally:
            cache.close()
    return {"endpoint": source.endpoint, "cache": str(settings.cache_path), "tables_created": created,
            "loaded": loaded, "rows": rows, "businesses": rows.get("businesses", 0),
            "seconds": round(time.monotonic() - started, 2)}
