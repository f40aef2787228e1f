"""Maintenance scheduler: cron triggers, job isolation, one instance per job, bounded shutdown."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from seo_sync.config import MaintenanceSettings
from seo_sync.errors import ConfigError
from seo_sync.service.maintenance import JOB_NAMES, Maintenance


class Calls:
    """Fake job callables that count their calls and signal each one."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(JOB_NAMES, 0)
        self.events = {n: threading.Event() for n in JOB_NAMES}

    def job(self, name: str) -> Callable[[], object]:
        """A callable for job `name`."""
        def run() -> object:
            self.counts[name] += 1
            self.events[name].set()
            return 1
        return run

    def all(self) -> dict[str, Callable[[], object]]:
        """One callable per job name."""
        return {n: self.job(n) for n in JOB_NAMES}


@pytest.fixture
def calls() -> Calls:
    """Counting fake jobs."""
    return Calls()


@pytest.fixture
def maint(calls: Calls) -> Iterator[Maintenance]:
    """A started Maintenance with the default schedules, in UTC."""
    m = Maintenance(MaintenanceSettings(), calls.all(), timezone=UTC, intervals={"anti_entropy": 3600})
    m.start()
    yield m
    m.shutdown(wait=True, timeout=5)


def test_default_schedules_become_cron_triggers(maint: Maintenance) -> None:
    """Each *_cron setting schedules its job at the next matching minute."""
    now = datetime.now(UTC)
    prune = maint.next_run_time("prune_backups")
    assert prune is not None and (prune.hour, prune.minute) == (3, 17) and prune - now <= timedelta(days=1)
    reset = maint.next_run_time("reset_delete_counters")
    assert reset is not None and (reset.minute, reset.second) == (0, 0) and reset - now <= timedelta(hours=1)
    wal = maint.next_run_time("wal_checkpoint")
    assert wal is not None and wal.minute % 5 == 0 and wal - now <= timedelta(minutes=5)
    tomb = maint.next_run_time("expire_tombstones")
    assert tomb is not None and tomb.minute in (0, 30)
    check = maint.next_run_time("quick_check")
    assert check is not None and (check.hour, check.minute) == (4, 43)


def test_jobs_coalesce_and_run_one_at_a_time(maint: Maintenance) -> None:
    """Every scheduled job has coalesce, max_instances=1 and a misfire grace time."""
    for name in JOB_NAMES:
        job = maint._scheduler.get_job(name)
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 600


def test_custom_schedule(calls: Calls) -> None:
    """A configured cron expression replaces the default."""
    m = Maintenance(MaintenanceSettings(wal_checkpoint_cron="7 */2 * * *"), calls.all(), timezone=UTC)
    m.start()
    try:
        nxt = m.next_run_time("wal_checkpoint")
        assert nxt is not None and nxt.minute == 7 and nxt.hour % 2 == 0
    finally:
        m.shutdown(wait=True, timeout=5)


def test_run_now_runs_the_job(maint: Maintenance, calls: Calls) -> None:
    """run_now calls the job in the caller's thread and records the run."""
    assert maint.run_now("prune_backups") is True
    assert calls.counts["prune_backups"] == 1
    st = maint.status()["prune_backups"]
    assert st["runs"] == 1 and st["failures"] == 0 and st["last_error"] is None and st["next_run"]


def test_run_now_through_the_scheduler(maint: Maintenance, calls: Calls) -> None:
    """run_now(wait=False) makes the scheduler's own pool run the job."""
    maint.run_now("quick_check", wait=False)
    assert calls.events["quick_check"].wait(10)
    assert calls.counts["quick_check"] == 1


def test_failing_job_does_not_stop_the_scheduler(calls: Calls) -> None:
    """A job that raises is logged and counted; the scheduler and the other jobs keep running."""
    jobs = calls.all()

    def broken() -> object:
        calls.events["wal_checkpoint"].set()
        raise RuntimeError("disk on fire")

    jobs["wal_checkpoint"] = broken
    m = Maintenance(MaintenanceSettings(), jobs, timezone=UTC)
    m.start()
    try:
        assert m.run_now("wal_checkpoint") is False
        m.run_now("wal_checkpoint", wait=False)  # fails again, inside the scheduler's pool
        m.run_now("expire_tombstones", wait=False)
        assert calls.events["expire_tombstones"].wait(10)
        assert m._scheduler.running
        st = m.status()["wal_checkpoint"]
        assert st["failures"] >= 1 and "disk on fire" in st["last_error"]
        assert m.next_run_time("wal_checkpoint") is not None  # still scheduled
    finally:
        m.shutdown(wait=True, timeout=5)


def test_a_running_job_is_not_started_twice(calls: Calls) -> None:
    """While a job runs, another run of the same job is skipped, not stacked."""
    release, started = threading.Event(), threading.Event()
    jobs = calls.all()

    def slow() -> object:
        started.set()
        release.wait(10)
        return None

    jobs["prune_backups"] = slow
    m = Maintenance(MaintenanceSettings(), jobs, timezone=UTC)
    m.start()
    try:
        m.run_now("prune_backups", wait=False)
        assert started.wait(10)
        assert m.run_now("prune_backups") is False
        assert m.status()["prune_backups"]["skipped"] == 1
    finally:
        release.set()
        assert m.shutdown(wait=True, timeout=10) is True
    assert m.status()["prune_backups"]["runs"] == 1


def test_shutdown_with_a_stuck_job_returns(calls: Calls) -> None:
    """shutdown(wait=True) gives up after its timeout and says a job is still running."""
    release, started = threading.Event(), threading.Event()
    jobs = calls.all()
    jobs["quick_check"] = lambda: (started.set(), release.wait(10))
    m = Maintenance(MaintenanceSettings(), jobs, timezone=UTC)
    m.start()
    m.run_now("quick_check", wait=False)
    assert started.wait(10)
    try:
        assert m.shutdown(wait=True, timeout=0.1) is False
        assert m.next_run_time("quick_check") is None  # nothing is scheduled any more
    finally:
        release.set()


def test_empty_schedule_switches_a_job_off(calls: Calls) -> None:
    """An empty cron string leaves the job unscheduled, but run_now still runs it."""
    m = Maintenance(MaintenanceSettings(quick_check_cron=""), calls.all(), timezone=UTC)
    m.start()
    try:
        assert m.next_run_time("quick_check") is None
        m.run_now("quick_check", wait=False)
        assert calls.events["quick_check"].wait(10)
    finally:
        m.shutdown(wait=True, timeout=5)


def test_bad_cron_is_a_config_error(calls: Calls) -> None:
    """A malformed cron expression is a ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=r"maintenance\.wal_checkpoint_cron"):
        Maintenance(MaintenanceSettings(wal_checkpoint_cron="61 * * * *"), calls.all(), timezone=UTC)


def test_unknown_job_name_is_refused(calls: Calls) -> None:
    """Jobs must be among the known names (a typo would silently never run)."""
    with pytest.raises(ValueError):
        Maintenance(MaintenanceSettings(), {"prune_backup": calls.job("prune_backups")}, timezone=UTC)
    m = Maintenance(MaintenanceSettings(), calls.all(), timezone=UTC)
    with pytest.raises(ValueError):
        m.run_now("vacuum")


def test_only_given_jobs_are_scheduled(calls: Calls) -> None:
    """A job the service does not provide is not scheduled."""
    m = Maintenance(MaintenanceSettings(), {"wal_checkpoint": calls.job("wal_checkpoint")}, timezone=UTC)
    m.start()
    try:
        assert m.next_run_time("wal_checkpoint") is not None
        assert m.next_run_time("prune_backups") is None
        assert set(m.status()) == {"wal_checkpoint"}
    finally:
        m.shutdown(wait=True, timeout=5)
