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
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import structlog
from pydantic import SecretStr

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.lock import WriterLock
from seo_sync.cache.writer import Cache
from seo_sync.config import Settings
from seo_sync.errors import BadInput, NotFound
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
# The sample data set ships in the wheel (package data), so an installed `seo-sync demo` finds it
# from any working directory.
SAMPLE_PACKAGE, SAMPLE_FOLDER = "seo_sync.demo", "sample"
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

    # A marker on the function object, so patching twice is a no-op; mypy models no attributes on functions.
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


def sample_folder() -> Traversable:
    """The package's sample data folder (one `<table>.json` per table, written by its generate.py)."""
    return files(SAMPLE_PACKAGE) / SAMPLE_FOLDER


def load_sample_items(folder: Traversable | None = None) -> dict[str, list[dict[str, Any]]]:
    """The sample data set: table name → items in DynamoDB JSON, one non-empty file for each table.

    A missing or empty file is an error: a demo without its data would run and show nothing.
    """
    folder = sample_folder() if folder is None else folder
    out: dict[str, list[dict[str, Any]]] = {}
    for name in TABLES:
        path = folder / f"{name}.json"
        if not path.is_file():
            raise NotFound(f"the demo's sample data has no {name}.json (looked in {folder})",
                           hint="reinstall seo-sync: the sample data ships in its wheel")
        items = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(items, list) or not items:
            raise BadInput(f"the demo's sample file {name}.json holds no items (in {folder})",
                           hint="regenerate it with the generate.py beside it")
        out[name] = items
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
        counts[name] = source.batch_write(TABLES[name], [codec.item_from_ddb_json(obj) for obj in raw])
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
