"""A rolling verify over a fake world, driven by hand: the clock the tests move, a world of businesses,
the verifier with a small page, and a pass of ticks."""

from __future__ import annotations

from seo_sync.config import VerifySettings
from seo_sync.schema import BUSINESSES
from seo_sync.sync.anti_entropy import RollingVerify
from seo_sync.sync.repair import RepairQueue
from tests.support.clock import ManualClock
from tests.support.fake_streams import FakeWorld, create_tables, fake_source, put


def world_with(n: int) -> FakeWorld:
    world = FakeWorld()
    create_tables(world, ["businesses"])
    for i in range(n):
        put(world, i, version=1, name=f"n{i}")
    return world


def verifier(cache, world: FakeWorld, clock: ManualClock, repairs: RepairQueue) -> RollingVerify:
    settings = VerifySettings(anti_entropy_period_hours=1.0, anti_entropy_items_per_second=4,
                              anti_entropy_tick_seconds=1.0)
    return RollingVerify(fake_source(world), {"businesses": BUSINESSES}, settings, lambda fn: fn(cache), repairs,
                         clock=clock)


def run_pass(v: RollingVerify, clock: ManualClock, ticks: int) -> None:
    for _ in range(ticks):
        v.step()
        clock.now += 1.0
