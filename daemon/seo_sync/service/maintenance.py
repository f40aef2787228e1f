"""Scheduled maintenance: the only module that imports APScheduler.

The service hands in one callable per job; they post work to the writer thread rather than writing
the cache themselves, so they return quickly. Each job runs at most once at a time (a run that is
still busy makes the next one skip), late runs coalesce into one, and a failing job is logged and
counted without stopping the scheduler or the other jobs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from seo_sync.config import MaintenanceSettings
from seo_sync.errors import ConfigError

log = structlog.get_logger()

JOB_NAMES = ("prune_backups", "reset_delete_counters", "expire_tombstones", "trim_changes", "wal_checkpoint",
             "quick_check", "anti_entropy")
DEFAULT_MISFIRE_GRACE = 600  # seconds: a run delayed by a suspend or a busy pool still happens once


@dataclass
class JobState:
    """What the status socket shows about one job."""

    cron: str
    runs: int = 0
    failures: int = 0
    skipped: int = 0
    last_run: float | None = None
    last_duration: float | None = None
    last_error: str | None = None
    running: bool = False


class Maintenance:
    """An APScheduler BackgroundScheduler running the maintenance jobs on their cron schedules."""

    def __init__(self, settings: MaintenanceSettings, jobs: Mapping[str, Callable[[], object]], *,
                 timezone: tzinfo | None = None, misfire_grace_time: int = DEFAULT_MISFIRE_GRACE,
                 workers: int = 2, intervals: Mapping[str, float] | None = None) -> None:
        unknown = set(jobs) - set(JOB_NAMES)
        if unknown:
            raise ValueError(f"unknown maintenance jobs: {sorted(unknown)}")
        self._jobs = dict(jobs)
        # A job in `intervals` runs every so many seconds (the rolling verify's ticks) rather than on a cron.
        intervals = dict(intervals or {})
        self._state = {name: JobState(cron=f"every {intervals[name]:g}s" if name in intervals
                                      else getattr(settings, f"{name}_cron", "")) for name in self._jobs}
        self._lock = threading.Condition()
        self._triggers: dict[str, CronTrigger | IntervalTrigger] = {
            name: IntervalTrigger(seconds=seconds) for name, seconds in intervals.items() if name in self._jobs}
        options: dict[str, Any] = {
            "executors": {"default": ThreadPoolExecutor(workers)},
            "job_defaults": {"coalesce": True, "max_instances": 1, "misfire_grace_time": misfire_grace_time},
        }
        if timezone is not None:
            options["timezone"] = timezone
        self._scheduler = BackgroundScheduler(**options)
        for name in self._jobs:
            if name in intervals:
                continue
            expr = self._state[name].cron.strip()
            if not expr:
                continue  # an empty schedule switches the job off (run_now still works)
            try:
                self._triggers[name] = CronTrigger.from_crontab(expr, timezone=self._scheduler.timezone)
            except ValueError as e:
                raise ConfigError(f"maintenance.{name}_cron = {expr!r}: {e}",
                                  hint="five fields: minute hour day-of-month month day-of-week") from None
        self._scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)

    def start(self) -> None:
        """Schedule every job with a cron expression and start the scheduler thread."""
        for name, trigger in self._triggers.items():
            self._scheduler.add_job(self._run, trigger, args=[name], id=name, name=name, replace_existing=True)
        self._scheduler.start()
        log.info("maintenance_started", jobs={n: self._state[n].cron for n in self._triggers})

    def run_now(self, name: str, wait: bool = True) -> bool:
        """Run a job now: in this thread (True if it ran and succeeded), or handed to the scheduler."""
        if name not in self._jobs:
            raise ValueError(f"unknown maintenance job {name!r}")
        if wait:
            return self._run(name)
        job = self._scheduler.get_job(name) if self._scheduler.running else None
        if job is None:  # switched off or not started: a one-off thread, still one run at a time
            threading.Thread(target=self._run, args=[name], name=f"maintenance-{name}", daemon=True).start()
        else:
            job.modify(next_run_time=datetime.now(self._scheduler.timezone))
            self._scheduler.wakeup()
        return True

    def next_run_time(self, name: str) -> datetime | None:
        """When the job runs next (None when it is not scheduled or the scheduler is stopped)."""
        job = self._scheduler.get_job(name) if self._scheduler.running else None
        return job.next_run_time if job is not None else None

    def status(self) -> dict[str, dict[str, Any]]:
        """Per job: schedule, next and last run, counts and last error (for the status socket)."""
        with self._lock:
            out = {name: dict(vars(st)) for name, st in self._state.items()}
        for name, entry in out.items():
            nxt = self.next_run_time(name)
            entry["next_run"] = nxt.isoformat() if nxt else None
        return out

    def shutdown(self, wait: bool = True, timeout: float = 10.0) -> bool:
        """Stop scheduling; with wait, give running jobs up to `timeout` s. True if none is left running."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if not wait:
            return not any(st.running for st in self._state.values())
        with self._lock:
            done = self._lock.wait_for(lambda: not any(st.running for st in self._state.values()), timeout)
        if not done:
            log.warning("maintenance_jobs_still_running",
                        jobs=[n for n, st in self._state.items() if st.running])
        return done

    def _run(self, name: str) -> bool:
        with self._lock:
            state = self._state[name]
            if state.running:
                state.skipped += 1
                log.info("maintenance_job_skipped", job=name, reason="still running")
                return False
            state.running = True
        started = time.monotonic()
        error: str | None = None
        try:
            result = self._jobs[name]()
        except Exception as e:  # a failing job must never take the scheduler down with it
            error = f"{type(e).__name__}: {e}"[:300]
            log.exception("maintenance_job_failed", job=name)
        duration = time.monotonic() - started
        with self._lock:
            state.running = False
            state.runs += 1
            state.last_run = time.time()
            state.last_duration = round(duration, 3)
            state.last_error = error
            if error is not None:
                state.failures += 1
            self._lock.notify_all()
        if error is None:
            log.info("maintenance_job_done", job=name, seconds=round(duration, 3),
                     **({"result": result} if isinstance(result, int | str | dict) else {}))
        return error is None

    def _on_missed(self, event: JobEvent) -> None:
        log.warning("maintenance_job_missed", job=event.job_id,
                    scheduled=str(getattr(event, "scheduled_run_time", "")))
