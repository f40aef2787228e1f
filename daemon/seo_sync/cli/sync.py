"""The sync commands: `sync-from-dynamo` (DynamoDB -> cache) and `sync-to-dynamo` (cache -> DynamoDB)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click
import structlog

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.lock import WriterLock
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache, Swap
from seo_sync.cli.data import Bars, ask_daemon, check_business_id, open_reader, open_source, preflight
from seo_sync.cli.kit import AppContext, pass_app, root
from seo_sync.config import Settings
from seo_sync.errors import (
    AccessDenied,
    BadInput,
    ExitCode,
    LockHeld,
    NotFound,
    SourceError,
    SourceUnavailable,
    TableMissing,
)
from seo_sync.schema import TABLES, TableSpec

log = structlog.get_logger()
PUT_WORKERS = 8  # concurrent PutItem calls of sync-to-dynamo (one round trip each)


# ---- sync-from-dynamo ----------------------------------------------------------------------------


def sync_all_tables(cache: Cache, source: Source, s: Settings, reason: str, bars: Bars) -> dict[str, Any]:
    """A full sync of every table: each Scanned into its shadow, then all five swapped in one
    transaction (readers never see some tables new and others old); rows and seconds per table."""
    from seo_sync.sync import fullsync  # kept out of import time of the read commands

    out: dict[str, Any] = {}
    swaps: list[Swap] = []
    reports = {}
    for spec in TABLES.values():
        started = time.monotonic()
        total = source.describe_table(spec).item_count
        reports[spec.name] = report = bars.add(spec.name, total or None)
        try:
            result = fullsync.full_sync_table(cache, source, spec, s.fullsync, capture_stream=False, reason=reason,
                                              progress=report, publish=False)
        except BaseException:
            for done in swaps:
                cache.drop_shadow(done.spec)
            raise
        swaps.append(Swap(spec, result.stream_arn, result.checkpoints, reason))
        out[spec.name] = {"seconds": round(time.monotonic() - started, 3)}
    cache.publish(swaps)
    for spec in TABLES.values():
        out[spec.name] = {"rows": cache.count(spec.name), **out[spec.name]}
        reports[spec.name](out[spec.name]["rows"])
        log.info("sync_from_dynamo_table", table=spec.name, **out[spec.name])
    return out


def sync_business(cache: Cache, source: Source, business_id: str) -> dict[str, Any]:
    """Replace one business's rows in all five tables by what DynamoDB holds, in one transaction."""
    # A stream record older than these reads must not undo them: stamped by DynamoDB's clock (a Date
    # header, whole seconds rounded down, before the reads), never this host's, which may run ahead.
    server_now = source.server_time(TABLES["businesses"])
    read_at = server_now if server_now is not None else time.time()
    items = {spec.name: source.query_business(spec, business_id) for spec in TABLES.values()}
    before = {spec.name: sum(1 for _ in Reader(cache.conn).rows(spec, business_id)) for spec in TABLES.values()}
    if not any(items.values()) and not any(before.values()):
        raise NotFound(f"business {business_id!r:.80} is neither in DynamoDB nor in the cache",
                       hint="check the id with `seo-sync list-businesses --from-dynamo`")
    cache.replace_business(business_id, items, read_at=read_at)
    return {spec.name: {"dynamodb": len(items[spec.name]),
                        "soft_deleted": sum(codec.is_deleted(it) for it in items[spec.name]),
                        "rows_before": before[spec.name],
                        "rows": sum(1 for _ in Reader(cache.conn).rows(spec, business_id))}
            for spec in TABLES.values()}


def refresh_business(s: Settings, business_id: str) -> dict[str, Any]:
    """One business through the running daemon (`refresh-business`): it reads the business with one
    consistent Query a table and applies the answer as the truth, so rows DynamoDB no longer holds
    leave the cache too. The daemon stays the cache's only writer."""
    from seo_sync.control.client import request_json

    answer = request_json(s.socket_path, f"refresh-business {json.dumps(business_id)}", timeout=30.0)
    tables: dict[str, Any] = answer.get("tables", {}) if isinstance(answer, dict) else {}
    if not any(t.get("keys") or t.get("rows") for t in tables.values()):
        raise NotFound(f"business {business_id!r:.80} is neither in DynamoDB nor in the cache",
                       hint="check the id with `seo-sync list-businesses --from-dynamo`")
    return {name: {"keys": t.get("keys", 0), "rows": t.get("rows", 0)} for name, t in tables.items()}


def _through_daemon(app: AppContext, s: Settings, source: Source, held: LockHeld, business_id: str | None) -> int:
    if business_id is None:
        answer = ask_daemon(s, "resync", timeout=5.0)
        if answer is not None:
            app.emit({"via": "daemon", "answer": answer},
                     lambda: click.echo("a daemon runs: asked it for a full resync of every table "
                                        "(`seo-sync status` shows its progress)"))
            return ExitCode.OK if answer.get("ok", True) else ExitCode.FAILURE
    elif ask_daemon(s, "status") is not None:
        tables = refresh_business(s, business_id)
        app.emit({"business_id": business_id, "via": "daemon", "cache": str(s.cache_path), "tables": tables},
                 lambda: app.table(f"a daemon runs: it refreshed business {business_id} in {s.cache_path}",
                                   ["table", "keys refreshed", "rows in cache"],
                                   ((n, t["keys"], t["rows"]) for n, t in tables.items())))
        return ExitCode.OK
    raise LockHeld(held.message, hint=f"no daemon answers on {s.socket_path}; wait for the holder to finish or stop it",
                   pid=held.pid)


@root.command("sync-from-dynamo")
@click.argument("business_id", required=False)
@pass_app
def sync_from_dynamo(app: AppContext, business_id: str | None) -> int:
    """DynamoDB -> cache: every table (all five swapped in together), or one business's rows in all five tables."""
    s = app.settings()
    source = open_source(s, "sync-from-dynamo")
    if business_id is not None:
        check_business_id(business_id)
    preflight(source)  # DynamoDB answers and every table exists, before the cache is touched
    lock = WriterLock(s.cache_path)
    try:
        lock.acquire()
    except LockHeld as held:
        return _through_daemon(app, s, source, held, business_id)
    started = time.monotonic()
    try:
        cache = Cache.open(s.cache_path, s.service.busy_timeout_ms)
        try:
            if business_id is not None:
                tables = sync_business(cache, source, business_id)
            else:
                with Bars(app) as bars:
                    tables = sync_all_tables(cache, source, s, "sync-from-dynamo", bars)
        finally:
            cache.close()
    finally:
        lock.release()
    out = {"business_id": business_id, "cache": str(s.cache_path), "tables": tables,
           "seconds": round(time.monotonic() - started, 3)}
    app.emit(out, lambda: app.table(
        f"synced {'business ' + business_id if business_id else 'all tables'} into {s.cache_path}",
        ["table", "rows in cache"], ((n, t["rows"]) for n, t in tables.items())))
    return ExitCode.OK


# ---- sync-to-dynamo ------------------------------------------------------------------------------


def _put_all(source: Source, spec: TableSpec, items: list[codec.Item], done: Callable[[int], None]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    errors: list[str] = []

    def put(item: codec.Item) -> str:
        try:
            return "written" if source.put_item_unless_newer(spec, item) else "skipped"
        except (SourceUnavailable, AccessDenied, TableMissing):
            raise  # every other item would fail the same way: stop and say why
        except (BadInput, SourceError) as e:
            errors.append(f"{'/'.join(spec.key_of_item(item))}: {e.message}"[:300])
            return "failed"

    pool = ThreadPoolExecutor(max_workers=PUT_WORKERS)
    try:
        for n, result in enumerate(pool.map(put, items), 1):
            counts[result] += 1
            done(n)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a fatal error, queued puts never start
    return {"written": counts["written"], "skipped": counts["skipped"], "failed": counts["failed"],
            "errors": errors[:20]}


@root.command("sync-to-dynamo")
@click.argument("business_id", required=False)
@click.option("--from", "from_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Another SQLite file of the cache's shape (default: the cache).")
@pass_app
def sync_to_dynamo(app: AppContext, business_id: str | None, from_path: Path | None) -> int:
    """Cache (or --from FILE) -> DynamoDB; never overwrites an item whose _version in DynamoDB is newer."""
    s = app.settings()
    source = open_source(s, "sync-to-dynamo")
    if business_id is not None:
        check_business_id(business_id)
    preflight(source)
    path = from_path or s.cache_path
    reader = open_reader(path)
    try:
        with reader.snapshot():  # one consistent state of the file across the five tables
            plan = {spec.name: list(reader.items(spec, business_id)) for spec in TABLES.values()}
    finally:
        reader.close()
    if business_id is not None and not any(plan.values()):
        raise NotFound(f"business {business_id!r:.80} is not in {path}")
    tables = {}
    with Bars(app) as bars:
        for spec in TABLES.values():
            tables[spec.name] = _put_all(source, spec, plan[spec.name], bars.add(spec.name, len(plan[spec.name])))
    totals = {k: sum(t[k] for t in tables.values()) for k in ("written", "skipped", "failed")}
    log.info("sync_to_dynamo", source_file=str(path), **totals)
    out = {"from": str(path), "business_id": business_id, "tables": tables, **totals}

    def human() -> None:
        app.table(f"{path} -> DynamoDB ({source.endpoint})", ["table", "written", "skipped (newer in DynamoDB)",
                                                                "failed"],
                  ((n, t["written"], t["skipped"], t["failed"]) for n, t in tables.items()))
        for t in tables.values():
            for err in t["errors"]:
                click.echo(f"failed: {err}", err=True)

    app.emit(out, human)
    return ExitCode.FAILURE if totals["failed"] else ExitCode.OK
