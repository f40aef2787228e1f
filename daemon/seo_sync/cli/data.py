"""The platform's read and set-up commands: create-tables, status, list-businesses, check-config, print-config.

The sync commands live in `sync.py`, `export` and `verify` in `inspect.py`; they share the helpers here.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import structlog
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.reader import Reader
from seo_sync.cli.kit import AppContext, pass_app, root
from seo_sync.config import Settings
from seo_sync.config_env import config_path_from
from seo_sync.errors import (
    BadInput,
    CacheError,
    CannotCreate,
    DaemonUnavailable,
    DynamoDisabled,
    ExitCode,
    SourceError,
    TableMissing,
)
from seo_sync.logs import mask_url
from seo_sync.schema import BUSINESSES, TABLES, TableSpec

log = structlog.get_logger()

MAX_DDB_KEY_BYTES = 2048  # DynamoDB's limit for a partition key value

# ---- helpers shared with sync.py and inspect.py ------------------------------------------------


def need_dynamo(settings: Settings, command: str) -> None:
    """Refuse a command that needs DynamoDB when the platform's .env says USE_DYNAMODB=false."""
    if not settings.use_dynamodb:
        raise DynamoDisabled(f"`{command}` needs DynamoDB, but USE_DYNAMODB=false in the .env named by --env-file",
                             hint="set USE_DYNAMODB=true in that .env, or run without --env-file")


def open_source(settings: Settings, command: str) -> Source:
    """The DynamoDB source for a command that needs it."""
    need_dynamo(settings, command)
    return Source(settings.aws, settings.table_prefix)


def preflight(source: Source, specs: Iterable[TableSpec] | None = None) -> None:
    """Raise the one clear error (unreachable, access denied, table missing) before any work starts."""
    for spec in specs if specs is not None else TABLES.values():
        source.describe_table(spec)


def open_reader(path: Path) -> Reader:
    """A read-only reader of a cache file, checked to hold the five tables."""
    reader = Reader.open(path)
    try:
        reader.check_shape()
    except CacheError as e:
        reader.close()
        raise type(e)(f"{path}: {e.message}", e.hint) from None
    return reader


def check_business_id(value: str) -> str:
    """A business id DynamoDB can hold as a key (1..2048 bytes); BadInput otherwise."""
    if not value or len(value.encode("utf-8", "surrogatepass")) > MAX_DDB_KEY_BYTES:
        raise BadInput(f"business id {value!r:.80} must be 1 to {MAX_DDB_KEY_BYTES} bytes long")
    return value


def when(ts: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class Bars:
    """Rich progress bars on a terminal; silent otherwise (pipes, --json, tests)."""

    def __init__(self, app: AppContext) -> None:
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=app.err_console, transient=True) \
            if app.interactive else None

    def __enter__(self) -> Bars:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def add(self, description: str, total: int | None = None) -> Callable[[int], None]:
        """A new bar; the returned function sets how much of it is done."""
        progress = self._progress
        if progress is None:
            return lambda done: None
        task = progress.add_task(description, total=total)
        return lambda done: progress.update(task, completed=done)


def ask_daemon(settings: Settings, command: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The daemon's answer to `command` on its status socket; None when no daemon answers."""
    try:
        from seo_sync.control.client import request_json  # the service layer may be absent
    except ModuleNotFoundError:
        return None
    try:
        return request_json(settings.socket_path, command, timeout=timeout)
    except DaemonUnavailable:
        return None


# ---- create-tables, status -----------------------------------------------------------------------


@root.command("create-tables")
@pass_app
def create_tables(app: AppContext) -> int:
    """Create the five DynamoDB tables (on-demand, streams with NEW_AND_OLD_IMAGES); idempotent."""
    s = app.settings()
    source = open_source(s, "create-tables")
    created: list[str] = []
    existed: list[str] = []
    for spec in TABLES.values():
        (created if source.create_table(spec) else existed).append(spec.dynamo_name(s.table_prefix))
    log.info("create_tables", created=len(created), existed=len(existed), endpoint=source.endpoint)
    out = {"endpoint": source.endpoint, "region": source.region, "created": created, "existed": existed}

    def human() -> None:
        for name in created:
            click.echo(f"created  {name}")
        for name in existed:
            click.echo(f"existed  {name}")

    app.emit(out, human)
    return ExitCode.OK


def _dynamo_status(s: Settings) -> tuple[dict[str, Any], ExitCode]:
    """DynamoDB's side of `status`, and the exit code it calls for (0 only when all is well)."""
    if not s.use_dynamodb:
        return {"enabled": False}, ExitCode.OK
    out: dict[str, Any] = {"enabled": True, "reachable": False, "tables": {}}
    code = ExitCode.OK
    try:
        source = open_source(s, "status")
        out.update(endpoint=source.endpoint, region=source.region)
        for spec in TABLES.values():
            try:
                t = source.describe_table(spec)
                row = {"name": t.name, "status": t.status, "stream_arn": t.stream_arn, "view_type": t.view_type,
                       "item_count": t.item_count}
                healthy = t.status == "ACTIVE" and t.view_type == "NEW_AND_OLD_IMAGES"
            except TableMissing:
                row, healthy = {"name": spec.dynamo_name(s.table_prefix), "status": "MISSING"}, False
                out["hint"] = "run `seo-sync create-tables`, or check the table prefix and the region"
            out["reachable"] = True
            out["tables"][spec.name] = row
            if not healthy:
                code = ExitCode.UNAVAILABLE
    except SourceError as e:
        out.update(error=e.message, hint=e.hint)
        code = e.exit_code
    return out, code


def _cache_status(s: Settings) -> dict[str, Any]:
    path = s.cache_path
    out: dict[str, Any] = {"path": str(path), "exists": path.exists()}
    if not path.exists():
        out["hint"] = "run `seo-sync sync-from-dynamo` or start the daemon"
        return out
    out["size_bytes"] = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    try:
        reader = open_reader(path)
    except CacheError as e:
        out["error"] = e.message
        return out
    try:
        with reader.snapshot():
            states = reader.table_states()
            out["tables"] = {name: {"rows": reader.count(name),
                                    "last_full_sync": when(states.get(name, {}).get("last_full_sync")),
                                    "full_sync_reason": states.get(name, {}).get("full_sync_reason")}
                             for name in TABLES}
            out["dead_letters"] = reader.dead_letter_count()
    finally:
        reader.close()
    return out


@root.command()
@pass_app
def status(app: AppContext) -> int:
    """Can DynamoDB be reached, the state of each table and its stream, and the cache file."""
    s = app.settings()
    dynamo, code = _dynamo_status(s)
    out: dict[str, Any] = {"dynamodb": dynamo, "cache": _cache_status(s)}
    daemon = ask_daemon(s, "status")
    if daemon is not None:
        out["daemon"] = daemon

    def human() -> None:
        if not dynamo["enabled"]:
            click.echo("DynamoDB: disabled (USE_DYNAMODB=false)")
        else:
            state = "reachable" if dynamo["reachable"] else "NOT reachable"
            where = f" at {dynamo['endpoint']} ({dynamo.get('region')})" if dynamo.get("endpoint") else ""
            click.echo(f"DynamoDB: {state}{where}")
            if dynamo.get("error"):
                click.echo(f"  {dynamo['error']}")
            if dynamo.get("hint"):
                click.echo(f"  hint: {dynamo['hint']}")
        cache = out["cache"]
        rows = [(name, t.get("name"), t.get("status"), t.get("view_type"), t.get("item_count"),
                 cache.get("tables", {}).get(name, {}).get("rows"),
                 cache.get("tables", {}).get(name, {}).get("last_full_sync"))
                for name, t in ((n, dynamo.get("tables", {}).get(n, {})) for n in TABLES)]
        app.table(None, ["table", "DynamoDB name", "state", "stream", "items (approx.)", "cache rows",
                         "last full sync"], rows)
        size = f", {cache['size_bytes']} bytes" if "size_bytes" in cache else " (absent)"
        click.echo(f"cache: {cache['path']}{size}" + "".join(f"; {cache[k]}" for k in ("error", "hint") if k in cache)
                   + (f"; {cache['dead_letters']} dead letters" if cache.get("dead_letters") else ""))
        click.echo("daemon: " + (str(daemon.get("state", "running")) if daemon else "not running"))

    app.emit(out, human)
    return code


# ---- list-businesses -----------------------------------------------------------------------------


def summarize(businesses: Iterable[codec.Item], counts: dict[str, Counter[str]]) -> list[dict[str, Any]]:
    """One summary row a business, sorted by id."""
    rows = []
    for b in businesses:
        bid = b["business_id"]["S"]
        rows.append({"business_id": bid, "name": b.get("name", {}).get("S"),
                     "industry": b.get("industry", {}).get("S"), "keywords": counts["keywords"][bid],
                     "service_areas": counts["service_areas"][bid],
                     "prompt_templates": counts["prompt_templates"][bid],
                     "updated_at": b.get("updated_at", {}).get("S")})
    return sorted(rows, key=lambda r: r["business_id"])


def _summaries_from_cache(path: Path) -> list[dict[str, Any]]:
    reader = open_reader(path)
    try:
        with reader.snapshot():
            counts = {n: Counter(r["business_id"] for r in reader.rows(TABLES[n]))
                      for n in ("keywords", "service_areas", "prompt_templates")}
            return summarize(reader.items(BUSINESSES), counts)
    finally:
        reader.close()


def _summaries_from_dynamo(source: Source) -> list[dict[str, Any]]:
    def live(spec: TableSpec) -> Iterable[codec.Item]:
        return (it for page in source.scan(spec) for it in page if not codec.is_deleted(it))

    counts = {n: Counter(it["business_id"]["S"] for it in live(TABLES[n]))
              for n in ("keywords", "service_areas", "prompt_templates")}
    return summarize(live(BUSINESSES), counts)


@root.command("list-businesses")
@click.option("--from-dynamo", is_flag=True, help="Scan DynamoDB instead of reading the cache.")
@pass_app
def list_businesses(app: AppContext, from_dynamo: bool) -> int:
    """One row a business: id, name, industry, keyword/area/template counts, updated_at (soft-deleted left out)."""
    s = app.settings()
    rows = _summaries_from_dynamo(open_source(s, "list-businesses --from-dynamo")) if from_dynamo \
        else _summaries_from_cache(s.cache_path)
    cols = ["business_id", "name", "industry", "keywords", "service_areas", "prompt_templates", "updated_at"]
    app.emit(rows, lambda: app.table(f"{len(rows)} businesses ({'DynamoDB' if from_dynamo else 'cache'})",
                                     cols, ([r[c] for c in cols] for r in rows)))
    return ExitCode.OK


# ---- check-config, print-config ----------------------------------------------------------------


@root.command("check-config")
@pass_app
def check_config(app: AppContext) -> int:
    """Validate the configuration (exit 78 naming the field, the value and why when it is wrong)."""
    s = app.settings()
    check_like_run(s)
    file = config_path_from(os.environ, app.config)
    region, warnings = _resolved_region(s)
    out: dict[str, Any] = {
        "ok": True, "config_file": str(file) if file else None, "env_file": str(app.env_file or "") or None,
        "data_dir": str(s.data_dir), "data_dir_exists": s.data_dir.is_dir(), "table_prefix": s.table_prefix,
        "use_dynamodb": s.use_dynamodb, "endpoint": mask_url(s.aws.endpoint_url) or "(boto3 default chain)",
        "region": region or "(none resolves)", "socket": str(s.socket_path), "warnings": warnings}

    def human() -> None:
        for k, v in out.items():
            if k == "ok" and warnings:
                v = f"{v}, with {len(warnings)} warning(s)"
            if k != "warnings":
                click.echo(f"{k:16} {v}")
        for w in warnings:
            click.echo(f"warning: {w}", err=True)

    app.emit(out, human)
    return ExitCode.OK


def check_like_run(s: Settings) -> None:
    """The checks `run` makes before it starts, without starting anything: every maintenance schedule
    parses, the socket group exists, and the data and socket paths are not blocked by a file."""
    from seo_sync.control.peers import resolve_group
    from seo_sync.service.maintenance import JOB_NAMES, Maintenance

    Maintenance(s.maintenance, dict.fromkeys(JOB_NAMES, lambda: None))  # ConfigError naming a bad cron
    resolve_group(s.service.socket_group)
    for what, path in (("data directory", s.data_dir), ("status socket directory", s.socket_path.parent)):
        blocked = next((p for p in (path, *path.parents) if p.exists()), None)
        if blocked is not None and not blocked.is_dir():
            raise CannotCreate(f"the {what} {path} cannot be made: {blocked} is not a directory",
                               hint=f"remove or move it, or choose another path for the {what}")


def _resolved_region(s: Settings) -> tuple[str | None, list[str]]:
    """The AWS region every DynamoDB command would use, and a warning when none resolves.

    The file and the flags may all be valid while boto3's chain (AWS_REGION, AWS_DEFAULT_REGION,
    the profile's config) holds no region: then every command that needs DynamoDB fails, so the
    check that claims the configuration is fine says so now.
    """
    if not s.use_dynamodb:
        return None, []
    try:
        return Source(s.aws, s.table_prefix).region, []
    except SourceError as e:
        return None, [f"{e.message}: every command that needs DynamoDB will fail" + (f" ({e.hint})" if e.hint else "")]


def _flatten(data: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in data.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@root.command("print-config")
@pass_app
def print_config(app: AppContext) -> int:
    """The effective configuration, every layer applied, secrets masked."""
    data = app.settings().redacted()

    def human() -> None:
        for k, v in _flatten(data):
            click.echo(f"{k} = {v!r}")

    app.emit(data, human)
    return ExitCode.OK

