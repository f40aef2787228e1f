"""What the service reads from botocore's events: threads waiting on AWS within bounds, and DynamoDB unreachable."""

from __future__ import annotations

import threading

import pytest

from seo_sync.aws.reachability import NETWORK, UNREACHABLE_AFTER, Reachability
from seo_sync.aws.tables import Source
from seo_sync.errors import SeoSyncError
from seo_sync.schema import TABLES
from tests.support.clock import ManualClock
from tests.support.settings import make_settings


def test_a_thread_inside_a_call_counts_as_alive_until_the_call_bound():
    """A call in flight marks its thread alive; past the call's bound it no longer does; its end removes it."""
    clock = ManualClock(100.0)
    r = Reachability(clock)
    r.call_bound = 30.0
    r.call_started()
    name = threading.current_thread().name
    clock.now += 29.0
    assert r.waiting() == {name: clock.now}
    clock.now += 2.0
    assert r.waiting() == {}
    r.call_ended()
    assert r.status()["calls_in_flight"] == 0


def test_attempts_without_an_answer_make_dynamodb_unreachable_and_an_answer_clears_it():
    """Attempts unanswered for UNREACHABLE_AFTER seconds give a reason; any HTTP answer clears it."""
    clock = ManualClock(100.0)
    r = Reachability(clock)
    r.attempt_started()
    r.attempt_ended(response_dict=None)
    clock.now += UNREACHABLE_AFTER - 0.5
    assert r.reason() is None
    r.attempt_started()
    clock.now += 1.0
    assert r.reason() is not None and r.reason().startswith("dynamodb unreachable")
    assert r.status()["reachable"] is False
    r.attempt_ended(response_dict={"status_code": 400})
    assert r.reason() is None and r.status()["reachable"] is True


def test_the_clients_of_a_source_feed_the_process_state(tmp_path):
    """A Source's calls reach NETWORK: a refused call counts as a failed attempt, and leaves no call in flight."""
    settings = make_settings(tmp_path, "http://127.0.0.1:9", aws={"endpoint_url": "http://127.0.0.1:9",
                                                                "region": "us-east-1", "max_attempts": 1})
    source = Source(settings.aws, settings.table_prefix)
    before = NETWORK.failed_attempts
    with pytest.raises(SeoSyncError):
        source.describe_table(TABLES["businesses"])
    assert NETWORK.failed_attempts == before + 1
    assert threading.current_thread().name not in NETWORK.waiting()
