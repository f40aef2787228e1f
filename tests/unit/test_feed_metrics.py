"""service/metrics.py: a Kinesis feed's status becomes per-shard metrics; a DynamoDB Streams daemon's has none."""

from __future__ import annotations

from seo_sync.service.metrics import render_metrics


def test_kinesis_feed_shards_become_metrics():
    """Behind-latest and calls per shard, shared pages and renewals appear with the mode as a label."""
    text = render_metrics({"state": "streaming", "feed": {
        "kind": "kinesis", "mode": "efo", "pages_shared": 12, "renewals": 3,
        "shards": {"shardId-000000000000": {"calls": 5, "behind_latest_ms": 40}}}})
    assert 'seo_sync_feed_behind_latest_ms{shard="shardId-000000000000",mode="efo"} 40' in text
    assert 'seo_sync_feed_get_records_calls_total{shard="shardId-000000000000",mode="efo"} 5' in text
    assert 'seo_sync_feed_subscription_renewals_total{mode="efo"} 3' in text


def test_no_feed_no_feed_metrics():
    """A daemon reading DynamoDB Streams shows no feed families: its feed status has no shards, shared
    pages or renewals (its per-shard figures are in each table's status)."""
    assert "seo_sync_feed_" not in render_metrics({"state": "streaming", "tables": {}})
    assert "seo_sync_feed_" not in render_metrics({"state": "streaming", "tables": {}, "feed": {
        "kind": "dynamodb-streams", "get_records_calls": 7, "describe_stream_calls": 1}})
