"""Prometheus text format of the daemon's status document (the `metrics` socket command)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

STATES = ("starting", "syncing", "streaming", "degraded", "stopping")
TABLE_STATES = (*STATES, "error")
TABLE_GAUGES = (("rows", "rows", "gauge", "Rows in the cache table."),
                ("lag_seconds", "lag_seconds", "gauge", "Age of the last applied stream record."),
                ("dead_letters", "dead_letters", "gauge", "Unresolved records in the dead-letter table."))
TABLE_COUNTERS = (("skipped_stale", "skipped_stale_total",
                   "Stream records refused as older than a state read from DynamoDB."),
                  ("records_applied", "records_applied_total", "Stream records applied."),
                  ("full_syncs_started", "full_syncs_started_total", "Full syncs of the table started."),
                  ("resyncs_coalesced", "resyncs_coalesced_total",
                   "Resync requests that joined one already waiting (inside min_resync_interval)."),
                  ("get_records_calls", "get_records_calls_total", "GetRecords calls made."))


def render_metrics(snapshot: dict[str, Any]) -> str:
    """Prometheus text format from a status snapshot ({state, uptime, version, tables: {name: {...}}})."""
    out: list[str] = []
    state = str(snapshot.get("state", "unknown"))
    _family(out, "seo_sync_state", "gauge", "Daemon state (1 for the current one).",
            [({"state": s}, 1 if s == state else 0) for s in _with(STATES, state)])
    _family(out, "seo_sync_uptime_seconds", "gauge", "Seconds since the daemon started.",
            [({}, snapshot.get("uptime"))])
    _family(out, "seo_sync_info", "gauge", "Build information.", [({"version": str(snapshot.get("version", ""))}, 1)])
    _family(out, "seo_sync_wal_bytes", "gauge", "Size of cache.db-wal (grows while a reader holds a transaction).",
            [({}, snapshot.get("wal_bytes"))])
    repairs: dict[str, Any] = snapshot.get("repairs") or {}
    _family(out, "seo_sync_repair_reads_pending", "gauge", "Keys waiting for a repair read (a consistent GetItem).",
            [({}, repairs.get("pending"))])
    for key, help_text in (("done", "Repair reads applied."),
                           ("changed", "Repair reads whose answer differed from the cache: differences repaired."),
                           ("failed", "Repair reads that failed and were put back."),
                           ("in_flight", "Anti-entropy suspects a stream record had put right before their read.")):
        _family(out, f"seo_sync_repair_reads_{key}_total", "counter", help_text, [({}, repairs.get(key))])
    verify: dict[str, Any] = snapshot.get("anti_entropy") or {}
    for key, help_text in (("items_checked", "Items the rolling verify compared with the cache."),
                           ("differences", "Differences the rolling verify found (each gets a repair read)."),
                           ("passes", "Complete rolling-verify passes over a table.")):
        _family(out, f"seo_sync_anti_entropy_{key}_total", "counter", help_text,
                [({"table": t}, v.get(key)) for t, v in verify.items() if isinstance(v, dict)])
    budgets = [(str(k), v) for k, v in (snapshot.get("budgets") or {}).items() if isinstance(v, dict)]
    _family(out, "seo_sync_budget_requests_total", "counter",
            "Socket requests that cost DynamoDB reads, served or refused as over budget (rate_limited).",
            [({"command": c, "outcome": o}, v.get(o)) for c, v in budgets for o in ("served", "refused")])
    _family(out, "seo_sync_budget_reads_total", "counter", "DynamoDB reads the served requests caused.",
            [({"command": c}, v.get("reads")) for c, v in budgets])
    tables = _tables(snapshot.get("tables"))
    for key, name, kind, help_text in TABLE_GAUGES:
        _family(out, f"seo_sync_table_{name}", kind, help_text, [({"table": t}, v.get(key)) for t, v in tables])
    for key, name, help_text in TABLE_COUNTERS:
        _family(out, f"seo_sync_table_{name}", "counter", help_text, [({"table": t}, v.get(key)) for t, v in tables])
    _family(out, "seo_sync_table_state", "gauge", "Table state (1 for the current one).",
            [({"table": t, "state": s}, 1 if s == str(v.get("state")) else 0)
             for t, v in tables if v.get("state") is not None for s in _with(TABLE_STATES, str(v["state"]))])
    _feed_families(out, snapshot.get("feed"))
    return "\n".join(out) + "\n"


def _feed_families(out: list[str], feed: Any) -> None:
    """A Kinesis feed's families: per shard, how far behind the stream's tip and how many calls; in EFO
    mode, the subscription renewals."""
    if not isinstance(feed, dict):
        return
    shards = [(str(k), v) for k, v in (feed.get("shards") or {}).items() if isinstance(v, dict)]
    mode = str(feed.get("mode", ""))
    _family(out, "seo_sync_feed_behind_latest_ms", "gauge", "Milliseconds the shard's reading is behind its tip.",
            [({"shard": sid, "mode": mode}, v.get("behind_latest_ms")) for sid, v in shards])
    _family(out, "seo_sync_feed_get_records_calls_total", "counter", "GetRecords calls made on the shard.",
            [({"shard": sid, "mode": mode}, v.get("calls")) for sid, v in shards])
    _family(out, "seo_sync_feed_pages_shared_total", "counter",
            "Pages served to a second table of a shared stream from memory.",
            [({"mode": mode}, feed.get("pages_shared"))])
    _family(out, "seo_sync_feed_subscription_renewals_total", "counter",
            "Enhanced fan-out subscriptions renewed (each lasts 5 minutes).", [({"mode": mode}, feed.get("renewals"))])


def _tables(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(raw, dict):
        return [(str(k), v) for k, v in raw.items() if isinstance(v, dict)]
    if isinstance(raw, list):
        return [(str(v.get("name", v.get("table", ""))), v) for v in raw if isinstance(v, dict)]
    return []


def _with(known: tuple[str, ...], current: str) -> tuple[str, ...]:
    return known if current in known else (*known, current)


def _family(out: list[str], name: str, kind: str, help_text: str,
            samples: Iterable[tuple[dict[str, str], Any]]) -> None:
    lines = [f"{name}{_labels(labels)} {_number(v)}" for labels, v in samples if _number(v) is not None]
    if lines:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    esc = {k: v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for k, v in labels.items()}
    return "{" + ",".join(f'{k}="{v}"' for k, v in esc.items()) + "}"


def _number(v: Any) -> str | None:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return ("+Inf" if v > 0 else "-Inf") if math.isinf(v) else repr(v)
    return None
