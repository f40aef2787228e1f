"""DynamoDB unreachable for a while under the real daemon: it says so in health, keeps telling systemd
it is alive, keeps its writer turning, and catches up afterwards without a restart."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from seo_sync import codec
from seo_sync.schema import TABLES
from tests.support.harness import Daemon, cache_counts, wait_until
from tests.support.proxy import FaultProxy

OUTAGE = 40.0  # seconds DynamoDB answers nothing
WATCHDOG = 10.0  # WatchdogSec: shorter than one AWS call can last with the default timeouts
# The default AWS timeouts (the harness shortens them): a call waits up to 3 x 10 s for an answer.
AWS_DEFAULTS = {"SEO_SYNC_AWS__CONNECT_TIMEOUT": "3", "SEO_SYNC_AWS__READ_TIMEOUT": "10",
                "SEO_SYNC_AWS__MAX_ATTEMPTS": "3"}


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time between two pings in [start, end], the window's edges counting as pings."""
    marks = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(marks))


def _writes(seeded, stop: threading.Event, written: list[str]) -> None:
    """About five new businesses a second, straight to DynamoDB (not through the proxy)."""
    while not stop.is_set():
        bid = f"outage-{len(written):04d}"
        seeded.put_item(TABLES["businesses"], codec.item_from_python({"business_id": bid, "_version": 1}))
        written.append(bid)
        stop.wait(0.2)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "seconds"), [("blackhole", OUTAGE), ("reset", OUTAGE / 2)])
def test_an_outage_keeps_the_watchdog_fed_says_unreachable_and_converges(seeded, dynamo_endpoint, tmp_path,
                                                                          mode, seconds):
    """DynamoDB black-holed for 40 s (or refusing for 20 s), with repair reads queued and writes flowing:
    WATCHDOG=1 never more than 5 s apart, health degraded within 10 s, the writer never held, and the
    cache converges after."""
    env = {**AWS_DEFAULTS, "SEO_SYNC_VERIFY__REPAIR_READS_PER_SECOND": "5", "SEO_SYNC_VERIFY__REPAIR_BURST": "1"}
    with FaultProxy(dynamo_endpoint) as proxy:
        d = Daemon(proxy.endpoint, tmp_path / "data", watchdog_sec=WATCHDOG, extra_env=env)
        stop, written = threading.Event(), []
        writer = threading.Thread(target=_writes, args=(seeded, stop, written), daemon=True)
        try:
            d.wait_ready()
            d.notify.wait_for("WATCHDOG=1", 10)
            assert d.request("debug-repair keywords 100")["queued"] == 100
            writer.start()
            wait_until(lambda: d.status()["repairs"]["done"] > 0, what="repair reads under way")
            proxy.set_mode(mode, duration=seconds)
            began = time.monotonic()
            degraded_at = None
            writer_loop_ages: list[float] = []
            while time.monotonic() - began < seconds:
                health = d.request("health")
                if degraded_at is None and any("dynamodb unreachable" in r for r in health["reasons"]):
                    degraded_at = time.monotonic() - began
                    assert health["ok"] is False
                writer_loop_ages.append(d.status()["threads"]["loop_age_seconds"]["writer"])
                time.sleep(0.5)  # sampling, not waiting for an outcome
            ended = time.monotonic()
            gap = longest_gap([at for at, m in list(d.notify.messages) if m == "WATCHDOG=1"], began, ended)
            print(f"{mode} {seconds:g}s: longest WATCHDOG=1 gap {gap:.2f}s; unreachable reported after {degraded_at}s; "
                  f"writer loop age max {max(writer_loop_ages):.2f}s")
            assert degraded_at is not None and degraded_at <= 10.0, degraded_at
            assert gap <= 5.0, gap
            assert max(writer_loop_ages) <= 5.0, max(writer_loop_ages)
            stop.set()
            writer.join(10)
            wait_until(lambda: cache_counts(d.data_dir)["businesses"] == 20 + len(written), timeout=90,
                       what="the writes of the outage applied")
            wait_until(lambda: d.request("health")["ok"] is True, timeout=90, what="healthy again")
            assert d.status()["repairs"]["pending"] == 0 and d.proc.poll() is None
        finally:
            stop.set()
            d.close()
