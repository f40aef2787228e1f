"""One real daemon in enhanced fan-out mode, end to end on moto: the relay fills the stream, the
EFO front pushes it over SubscribeToShard, and the cache ends equal to DynamoDB across renewals."""

from __future__ import annotations

import json

import pytest

from seo_sync import codec
from seo_sync.schema import TABLES
from tests.support.efo_front import EfoFront
from tests.support.harness import wait_until
from tests.support.kinesis_fleet import cache_hashes, dynamo_hashes, kinesis_env, start_relay

LIFETIME = 6.0  # seconds a subscription lasts here (AWS: 300), so the test sees it renewed


@pytest.mark.slow
def test_a_daemon_reading_by_enhanced_fan_out_converges_across_renewals(seeded, start_daemon, tmp_path,
                                                                         dynamo_endpoint):
    """Writes made while the daemon runs reach its cache through pushed events, and the subscription
    is renewed after it ends, from where it stood."""
    with start_relay(dynamo_endpoint) as relay, EfoFront(dynamo_endpoint, lifetime=LIFETIME) as front:
        daemon = start_daemon(endpoint=front.endpoint, data_dir=tmp_path / "host",
                              extra_env=kinesis_env(relay.stream_arn, consumer="host-efo"))
        daemon.wait_ready()
        biz = TABLES["businesses"]

        def write(first: int, n: int) -> None:
            for r in range(first, first + n):
                seeded.put_item(biz, codec.item_from_python({"business_id": f"biz-{r:03d}", "name": f"v{r}",
                                                             "_version": 5}))

        def starts() -> list[int]:
            """Where each subscription the daemon opened began, in order, from its log."""
            return [int(json.loads(line)["after"]) for line in daemon.log().splitlines()
                    if '"kinesis_subscribed"' in line]

        write(0, 3)
        # The feed takes a first position (LATEST) to a sequence number by polling; it subscribes from there.
        wait_until(lambda: starts(), timeout=30, what="a first subscription")
        first = starts()[0]
        write(3, 10)
        # The relay forwards the ten in its own time, over the first subscription or a later one; once
        # they were pushed, the next renewal must begin after them, not where the first one began.
        wait_until(lambda: front.stats()["pushed"] >= 10, timeout=60, what="the ten writes pushed")
        wait_until(lambda: any(s > first for s in starts()[1:]), timeout=60,
                   what="a renewal from beyond the first subscription's start")
        assert daemon.status()["feed"]["renewals"] >= 1
        write(13, 1)
        truth = dynamo_hashes(seeded)
        wait_until(lambda: cache_hashes(daemon.data_dir) == truth, timeout=30, what="the cache converged")
        feed = daemon.status()["feed"]
        assert feed["mode"] == "efo" and feed["subscriptions"] >= 1
        stats = front.stats()
        assert stats["subscriptions"] >= 2 and stats["pushed"] >= 11 and stats["consumers"] == 1
        assert starts() == sorted(starts())  # a renewal never goes back before where the last one stood
