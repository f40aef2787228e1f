"""A stop is not held up by an AWS call still in flight on a worker thread."""

from __future__ import annotations

import signal

import pytest

from tests.support.harness import wait_until
from tests.support.proxy import FaultProxy

pytestmark = pytest.mark.timeout(180)
HELD_SCAN = 120.0  # seconds the proxy holds each Scan: far longer than any stop may take
STOP_WITHIN = 15.0  # seconds: the stop's own joins are bounded by stop_timeout (20 s); this stop has none


def test_sigterm_while_anti_entropy_waits_on_a_scan_exits_at_once(seeded, start_daemon, dynamo_endpoint):
    """SIGTERM while the scheduler's anti-entropy job waits on a Scan: exit 0 without waiting for the call."""
    with FaultProxy(dynamo_endpoint) as proxy:
        daemon = start_daemon(proxy.endpoint, extra_env={"SEO_SYNC_VERIFY__ANTI_ENTROPY_TICK_SECONDS": "0.2"})
        daemon.wait_ready(60)
        proxy.set_mode("latency", latency=HELD_SCAN, match="DynamoDB_20120810.Scan")
        wait_until(lambda: proxy.stats()["fault_latency"] > 0, timeout=30, what="a Scan held by the proxy")
        daemon.signal(signal.SIGTERM)
        try:
            assert daemon.wait_exit(STOP_WITHIN) == 0
        finally:
            proxy.set_mode("pass")
