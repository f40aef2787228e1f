"""Per-table failures in the running daemon: access denied, expired credentials, a deleted table:
that table reports the error in status and health, the others keep streaming,
and it recovers without a restart."""

from __future__ import annotations

import pytest

from seo_sync import codec
from seo_sync.schema import TABLES
from tests.support.harness import Daemon, cache_counts, wait_until
from tests.support.proxy import FaultProxy


def _table_state(d: Daemon, table: str) -> dict:
    return d.status()["tables"][table]


def test_access_denied_on_one_table_is_reported_and_the_others_keep_streaming(seeded, dynamo_endpoint, tmp_path):
    """AccessDenied for seo_keywords only: keywords in error, health not ok; businesses still stream; then recovery."""
    with FaultProxy(dynamo_endpoint) as proxy:
        d = Daemon(proxy.endpoint, tmp_path / "data")
        try:
            d.wait_ready()
            proxy.set_mode("error", code="AccessDeniedException", match="seo_keywords")
            wait_until(lambda: _table_state(d, "keywords")["state"] == "error", what="keywords in error")
            assert "AccessDenied" in (_table_state(d, "keywords")["error"] or "")
            assert d.request("health")["ok"] is False
            seeded.put_item(TABLES["businesses"], codec.item_from_python({"business_id": "during", "_version": 1}))
            wait_until(lambda: cache_counts(d.data_dir)["businesses"] == 21, what="businesses still streaming")
            seeded.put_item(TABLES["keywords"], codec.item_from_python(
                {"business_id": "during", "keyword_id": "late#en", "_version": 1}))
            proxy.set_mode("pass")
            wait_until(lambda: cache_counts(d.data_dir)["keywords"] == 101, timeout=60, what="keywords recovered")
            wait_until(lambda: d.request("health")["ok"] is True, timeout=60, what="healthy again")
            assert d.proc.poll() is None
        finally:
            d.close()


@pytest.mark.slow
def test_expired_credentials_that_come_back_need_no_restart(seeded, dynamo_endpoint, tmp_path):
    """ExpiredTokenException on every call for a while: errors in status, no crash; streaming resumes after."""
    with FaultProxy(dynamo_endpoint) as proxy:
        d = Daemon(proxy.endpoint, tmp_path / "data")
        try:
            d.wait_ready()
            proxy.set_mode("error", code="ExpiredTokenException", duration=6)
            seeded.put_item(TABLES["businesses"], codec.item_from_python({"business_id": "later", "_version": 1}))
            wait_until(lambda: any(t["state"] == "error" for t in d.status()["tables"].values()),
                       what="an error reported")
            wait_until(lambda: cache_counts(d.data_dir)["businesses"] == 21, timeout=60, what="write applied after")
            wait_until(lambda: d.request("health")["ok"] is True, timeout=60, what="healthy again")
            assert d.proc.poll() is None
        finally:
            d.close()


@pytest.mark.slow
def test_deleted_table_is_an_error_and_a_recreated_one_is_resynced(seeded, start_daemon):
    """Deleting seo_service_areas marks that table in error; re-creating it (new stream ARN) resyncs it alone."""
    # A deleted table is noticed at the next DescribeTable: every 2 s here instead of every 30 s.
    d = start_daemon(extra_env={"SEO_SYNC_STREAM__DESCRIBE_INTERVAL": "2"})
    d.wait_ready()
    spec = TABLES["service_areas"]
    seeded.delete_table(spec)
    wait_until(lambda: _table_state(d, "service_areas")["state"] == "error", timeout=30, what="table in error")
    assert d.request("health")["ok"] is False
    seeded.put_item(TABLES["businesses"], codec.item_from_python({"business_id": "meanwhile", "_version": 1}))
    wait_until(lambda: cache_counts(d.data_dir)["businesses"] == 21, what="other tables keep streaming")
    seeded.create_table(spec)
    seeded.put_item(spec, codec.item_from_python({"business_id": "x", "area_id": "only", "city": "New"}))
    wait_until(lambda: cache_counts(d.data_dir)["service_areas"] == 1, timeout=60, what="re-created table resynced")
    wait_until(lambda: d.request("health")["ok"] is True, timeout=60, what="healthy again")
