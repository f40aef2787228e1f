"""A host clock ahead of or behind DynamoDB's changes nothing: reads are stamped by DynamoDB's clock.

The engine runs against moto with an injected clock off by seconds or an hour; moto's answers carry
the true time in their Date header, as DynamoDB's do.
"""

from __future__ import annotations

import threading
import time

import pytest
from structlog.testing import capture_logs

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.writer import Cache
from seo_sync.schema import BUSINESSES
from seo_sync.sync.engine import Engine
from tests.support.engine_threads import EngineThreads
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def env(tmp_path, dynamo_endpoint):
    settings = make_settings(tmp_path / "data", dynamo_endpoint, stream={"idle_poll_interval": 0.1})
    source = Source(settings.aws, settings.table_prefix)
    source.create_table(BUSINESSES)
    cache = Cache.open(settings.cache_path)
    yield settings, source, cache
    cache.close()


def item(name: str, version: int) -> codec.Item:
    return codec.item_from_python({"business_id": "b1", "name": name, "_version": version})


def cached_name(engine: Engine) -> str | None:
    row = engine.submit(lambda c: c.row(BUSINESSES, ("b1",)))
    return None if row is None else row[BUSINESSES.column_names.index("name")]


@pytest.mark.parametrize("ahead", [5.0, 3600.0])
def test_a_write_right_after_a_refresh_is_applied_whatever_the_host_clock(env, ahead):
    """With the daemon's clock ahead, the write made just after a refresh is not skipped as stale."""
    settings, source, cache = env
    source.put_item(BUSINESSES, item("before", 1))
    host = lambda: time.time() + ahead  # noqa: E731  # this host's clock, everywhere the daemon reads it
    engine = Engine(settings, Source(settings.aws, settings.table_prefix, wall=host), cache, clock=host,
                    tables=["businesses"])
    with EngineThreads(engine):
        assert engine.boot_synced.wait(30)  # the boot's Scan, which read the first version, is published
        assert engine.join(20)
        assert cached_name(engine) == "before"
        for version in range(2, 5):
            assert engine.refresh("businesses", ("b1",))["present"]
            source.put_item(BUSINESSES, item(f"after{version}", version))
            wait_for(lambda v=version: cached_name(engine) == f"after{v}", 20, f"version {version} in the cache")
        assert engine.snapshot()["tables"]["businesses"]["skipped_stale"] == 0


@pytest.mark.slow
def test_lag_is_not_zero_when_the_host_clock_is_behind(tmp_path, dynamo_endpoint):
    """With the daemon's clock 30 s behind, a write that waited for the next poll shows seconds of lag, not 0."""
    settings = make_settings(tmp_path / "data", dynamo_endpoint, stream={"idle_poll_interval": 6.0})
    source = Source(settings.aws, settings.table_prefix)
    source.create_table(BUSINESSES)
    cache = Cache.open(settings.cache_path)
    host = lambda: time.time() - 30.0  # noqa: E731
    daemon_source = Source(settings.aws, settings.table_prefix, wall=host)
    engine = Engine(settings, daemon_source, cache, clock=host, tables=["businesses"])
    try:
        with capture_logs() as logs, EngineThreads(engine):
            assert engine.boot_synced.wait(30)
            polled = threading.Event()
            get_records = daemon_source.streams.get_records

            def noting(*args, **kwargs):  # an idle poll just answered: the next one is 6 s away
                answer = get_records(*args, **kwargs)
                polled.set()
                return answer

            daemon_source.streams.get_records = noting
            polled.clear()
            assert polled.wait(20), "no idle poll"
            polled.clear()
            assert polled.wait(20), "no second idle poll"
            source.put_item(BUSINESSES, item("late", 1))  # waits for the next idle poll, seconds away
            wait_for(lambda: cached_name(engine) == "late", 20, "the write in the cache")
    finally:
        cache.close()
    lags = [e["lag_ms"] for e in logs if e["event"] == "batch_applied" and e.get("table") == "businesses"]
    assert lags and 1000 < lags[-1] < 20_000  # seconds of waiting; neither 0 nor the 30 s the host is off
