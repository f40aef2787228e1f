"""The daemon's lifecycle, in the shape of gunicorn's arbiter.

Signal handlers and other threads only post events; the main loop dispatches them to `handle_*`
methods, drives sd_notify (READY, STATUS, EXTEND_TIMEOUT, WATCHDOG, STOPPING) and stops
everything in a fixed order with a timeout on every join. This is the only module that installs
signal handlers and starts long-lived threads.
"""

from __future__ import annotations

import faulthandler
import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import structlog

from seo_sync import __version__
from seo_sync.aws import raw_check
from seo_sync.aws.kinesis_source import make_source
from seo_sync.aws.reachability import NETWORK
from seo_sync.aws.tables import Source
from seo_sync.cache import wal_files
from seo_sync.cache.lock import WriterLock
from seo_sync.cache.quarantine import open_or_set_aside
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.config import Settings
from seo_sync.control.peers import resolve_group
from seo_sync.control.server import ControlServer, ControlThread
from seo_sync.errors import BadInput, ExitCode, HaltServer, SeoSyncError
from seo_sync.logs import dump_thread_stacks
from seo_sync.protection import jobs
from seo_sync.schema import TABLES, table
from seo_sync.service.budgets import CommandBudgets
from seo_sync.service.faults import DebugFaults
from seo_sync.service.maintenance import Maintenance
from seo_sync.service.metrics import render_metrics
from seo_sync.service.reasons import LargeWal, health_reasons, repair_reason
from seo_sync.service.reload import reread
from seo_sync.service.systemd import Notifier
from seo_sync.sync.engine import Engine

log = structlog.get_logger("seo_sync.service")

TICK = 0.25  # main-loop wake-up at the latest; watchdog pings and READY checks run this often
MAX_KEY_BYTES = 2048  # DynamoDB's limit on a partition key value
HANDLED_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Service:
    """One run of the daemon: boot, main loop, ordered stop."""

    def __init__(self, settings: Settings, *, notifier: Notifier | None = None,
                 source_factory: Callable[[Settings], Source] | None = None,
                 env: dict[str, str] | None = None, reload_settings: Callable[[], Settings] | None = None,
                 faults: DebugFaults | None = None) -> None:
        env = dict(os.environ) if env is None else env
        self.settings = settings
        self.reload_settings = reload_settings  # SIGHUP reads the configuration again through this
        self.notifier = notifier or Notifier(env)
        self.source_factory = source_factory or make_source
        # The tests' fault seam (service/faults.py): only when the configuration turns its commands on.
        self.faults = faults or (DebugFaults() if settings.service.debug_commands else None)
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()  # reentrant: signal-safe
        self.state = "starting"
        self.started_at = time.time()
        self.ready = False
        self.degraded_reasons: list[str] = []
        self.stop_event = threading.Event()
        self.force_exit = False
        self.threads: list[threading.Thread] = []
        self.lock: WriterLock | None = None
        self.cache: Cache | None = None
        self.engine: Engine | None = None
        self.control: ControlServer | None = None
        self.maintenance: Maintenance | None = None
        self._last_status = ""
        self._hup_pending = False
        self.large_wal = LargeWal(settings.cache_path)
        self.budgets = CommandBudgets(settings.control)

    # -- boot -----------------------------------------------------------------------------------

    def run(self) -> int:
        """Boot, loop until a HaltServer, stop in order; returns the exit status the log reports.

        An error that ends the boot (DynamoDB unreachable with no cache, the lock held, ...) stops
        the same way and is raised again after the stop, for the command line to print with its hint.
        """
        faulthandler.enable()  # systemd's watchdog SIGABRT leaves a traceback in the journal
        # Before anything slow: a SIGHUP or SIGUSR1 during the start is queued and handled once the
        # loop runs, instead of killing the process with the signal's default action.
        self._install_signals()
        try:
            self.lock = WriterLock(self.settings.cache_path).acquire()
            self._boot()
            self._loop()
        except HaltServer as halt:
            return self._stop(halt)
        except SeoSyncError as e:
            self._stop(HaltServer(e.message, e.exit_code))
            raise
        except BaseException as e:
            self._stop(HaltServer(f"internal error: {type(e).__name__}", ExitCode.SOFTWARE))
            raise
        raise AssertionError("the main loop ends only by HaltServer")

    def _boot(self) -> None:
        s = self.settings
        log.info("starting", version=__version__, data_dir=str(s.data_dir), prefix=s.table_prefix)
        self.cache = open_or_set_aside(s.cache_path, s.service.busy_timeout_ms,
                                       s.maintenance.change_log_diff_limit)
        self.had_complete_cache = self._cache_is_complete()
        self.engine = Engine(s, self.source_factory(s), self.cache, on_thread_death=self._report_thread_death)
        self.control = ControlServer(
            s.socket_path, self.answer_command, allowed_uids={0, os.getuid()},
            allowed_gid=resolve_group(s.service.socket_group), timeout=s.service.socket_timeout,
            max_clients=s.service.socket_max_clients)
        self.control.bind()
        # Start order: the socket first (status answers while the boot sync runs), then the writer,
        # then the pollers; the stop joins them in the same order after the engine's stop event.
        for thread in [ControlThread(self.control, self.stop_event, self._report_thread_death),
                       *self.engine.threads()]:
            self.threads.append(thread)
            thread.start()
        verify = s.verify
        ticks = {"anti_entropy": verify.anti_entropy_tick_seconds} if verify.anti_entropy_period_hours > 0 else {}
        self.maintenance = Maintenance(s.maintenance, self._maintenance_jobs(), intervals=ticks)
        self.maintenance.start()
        self._set_state("syncing")

    def _cache_is_complete(self) -> bool:
        assert self.cache is not None
        states = Reader(self.cache.conn).table_states()
        return all(states.get(name, {}).get("last_full_sync") for name in TABLES)

    def _report_thread_death(self, name: str, why: str) -> None:
        """Called on the dying thread: only enqueue; the main loop decides."""
        self.events.put(("thread_died", (name, why)))

    def _install_signals(self) -> None:
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, self._on_signal)
        # `python -m seo_sync run` blocks SIGHUP and SIGUSR1 while it imports; one that came meanwhile
        # is pending and is delivered to the handler now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Only enqueue. A second SIGTERM/SIGINT while stopping asks for an immediate exit.
        if signum in (signal.SIGTERM, signal.SIGINT) and self.state == "stopping":
            self.force_exit = True
        if signum == signal.SIGHUP:
            if self._hup_pending:  # a burst of SIGHUPs is one reload and one resync
                return
            self._hup_pending = True
        self.events.put(("signal", signum))

    # -- main loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        """Dispatch events to `handle_<kind>` until one raises HaltServer."""
        while True:
            try:
                kind, payload = self.events.get(timeout=TICK)
            except queue.Empty:
                kind, payload = "tick", None
            handler = getattr(self, f"handle_{kind}", None)
            if handler is not None:
                handler(payload)
            if self.faults is not None:
                self.faults.hold_main_loop()
            self._check_boot()
            self._update_state()
            self._watchdog()

    def handle_tick(self, _payload: object) -> None:
        """Nothing arrived within a tick; the loop's periodic checks run next."""

    def handle_signal(self, signum: int) -> None:
        """SIGHUP: resync all; SIGTERM/SIGINT: stop; SIGUSR1: dump thread stacks."""
        if signum == signal.SIGHUP:
            assert self.engine is not None
            self._hup_pending = False
            self._reload_config()
            queued = self.engine.request_resync(None, reason="SIGHUP")
            log.info("resync_requested", source="SIGHUP", queued=queued)
        elif signum in (signal.SIGTERM, signal.SIGINT):
            log.info("stop_requested", signal=signal.Signals(signum).name)
            raise HaltServer(signal.Signals(signum).name, ExitCode.OK)
        elif signum == signal.SIGUSR1:
            dump_thread_stacks(log)

    def _reload_config(self) -> None:
        """Read the configuration again; a bad one is refused and the running one kept (service/reload.py)."""
        if self.reload_settings is not None and self.engine is not None:
            self.settings = new = reread(self.settings, self.reload_settings)
            self.engine.repairs.rate, self.engine.repairs.burst = new.verify.repair_reads_per_second, \
                new.verify.repair_burst

    def handle_thread_died(self, payload: tuple[str, str]) -> None:
        """A worker thread died: log once and stop with a non-zero exit so systemd restarts us."""
        name, why = payload
        log.error("stopping_after_thread_death", thread=name, reason=why)
        raise HaltServer(f"thread {name} died: {why}", ExitCode.SOFTWARE)

    def _check_boot(self) -> None:
        if self.ready or self.engine is None:
            return
        if self.engine.boot_synced.is_set():
            self._become_ready(degraded=False)
            return
        waited = time.time() - self.started_at
        if waited >= self.settings.service.boot_ready_timeout:
            reason = "dynamodb unreachable or boot sync slow; serving the previous cache" if self.had_complete_cache \
                else "boot sync not finished; cache not initialized"
            self.degraded_reasons = [reason]
            self._become_ready(degraded=True)
        else:
            # Keep systemd's start timeout ahead of a boot sync that is making progress.
            self.notifier.extend_timeout(max(30.0, self.settings.service.boot_ready_timeout))

    def _become_ready(self, degraded: bool) -> None:
        self.ready = True
        self._update_state()
        self.notifier.ready()
        log.info("ready", degraded=degraded, boot_seconds=round(time.time() - self.started_at, 3))

    def _reasons(self, tables: dict[str, Any]) -> list[str]:
        """Why the daemon is degraded now (service/reasons.py): tables in error, lagging or holding
        unresolved dead letters, the boot unfinished; before READY, "starting" and what holds it up."""
        assert self.engine is not None
        reasons = health_reasons(tables, prefix=self.settings.table_prefix, lag_alarm=self.settings.stream.lag_alarm,
                                 ready=self.ready, boot_synced=self.engine.boot_synced.is_set(),
                                 had_complete_cache=self.had_complete_cache)
        # Unreachable: said long before the first call gives up and its table reports the error.
        reasons[:0] = [r for r in [NETWORK.reason(), self.large_wal.reason()] if r]
        # A known difference (or a doubt) between the cache and DynamoDB, not yet settled.
        repairs = self.engine.repairs
        return reasons + repair_reason(repairs.pending(known_only=True), repairs.oldest_age())

    def _update_state(self) -> None:
        assert self.engine is not None
        tables = self.engine.snapshot().get("tables", {})
        reasons = self._reasons(tables)
        self.degraded_reasons = reasons
        if not self.ready:
            state = "syncing"
        elif reasons:
            state = "degraded"
        elif any(t.get("state") in ("syncing", "resync_pending") for t in tables.values()):
            state = "syncing"
        else:
            state = "streaming"
        self._set_state(state)

    def _set_state(self, state: str) -> None:
        self.state = state
        text = state if not self.degraded_reasons else f"{state}: {'; '.join(self.degraded_reasons)[:200]}"
        if text != self._last_status:
            self._last_status = text
            self.notifier.status(text)
            log.info("state", state=state, reasons=self.degraded_reasons or None)

    def _watchdog(self) -> None:
        """Ping only while every worker made progress within the watchdog interval: a hung thread gets us restarted."""
        interval = self.notifier.watchdog_interval()
        if interval is None or self.engine is None:
            return
        now = time.monotonic()
        stale = [name for name, at in self.engine.progress().items() if now - at > interval]
        if not stale:
            self.notifier.watchdog()
        elif not getattr(self, "_watchdog_warned", False):
            self._watchdog_warned = True
            log.error("watchdog_withheld", stalled=stale)

    # -- control socket -------------------------------------------------------------------------

    def answer_command(self, command: str, args: list[str]) -> str:
        """Answer one status-socket request (runs on a control-socket thread, not the main loop)."""
        assert self.engine is not None
        if self.faults is not None and (answer := self.faults.answer(self.engine, command, args)) is not None:
            return answer
        if command == "status":
            return json.dumps(self.status(), default=str)
        if command == "health":
            reasons = self._reasons(self.engine.snapshot().get("tables", {}))
            return json.dumps({"ok": self.ready and not reasons, "state": self.state, "reasons": reasons})
        if command == "resync":
            target = table(args[0]).name if args else None
            queued = self.engine.request_resync(target, reason="socket")
            return json.dumps({"ok": True, "queued": queued, "table": target or "all",
                               "starts_in": self.engine.resync_starts_in(target)})
        if command == "refresh":
            if len(args) < 2:
                raise BadInput("usage: refresh <table> <key-json>",
                               hint='e.g. refresh keywords {"business_id": "b1", "keyword_id": "roof-repair#en"}')
            spec = table(args[0])
            key = spec.key_from_json(" ".join(args[1:]))
            self.budgets.charge("refresh")
            return json.dumps({"ok": True, **self.engine.refresh(spec.name, key)}, default=str)
        if command == "refresh-business" and args:
            business_id = _business_arg(" ".join(args))
            self.budgets.charge("refresh-business", reads=len(TABLES))
            return json.dumps({"ok": True, **self.engine.refresh_business(business_id)}, default=str)
        if command == "metrics":
            return render_metrics(self.status())
        raise BadInput(f"unknown command {command[:40]!r}",
                       hint="one of: status, health, resync [table], refresh <table> <key-json>, "
                            "refresh-business <business-id>, metrics")

    def status(self) -> dict[str, Any]:
        """The status document: state, readiness, version, uptime, and each table's part (docs in the README)."""
        assert self.engine is not None
        snap = self.engine.snapshot()
        wal_bytes = wal_files.wal_bytes(self.settings.cache_path)  # a reader holding a read transaction pins it
        return {
            "state": self.state, "ready": self.ready, "initialized": self.engine.boot_synced.is_set()
            or self.had_complete_cache, "reasons": self.degraded_reasons, "version": __version__,
            "pid": os.getpid(), "uptime_seconds": round(time.time() - self.started_at, 3), "wal_bytes": wal_bytes,
            "budgets": self.budgets.status(), "fast_responses": raw_check.state(), **snap,
        }

    def _maintenance_jobs(self) -> dict[str, Callable[[], object]]:
        assert self.engine is not None
        engine, s = self.engine, self.settings
        ttl = s.maintenance.tombstone_ttl_hours * 3600
        changes_age = s.maintenance.change_log_max_age_hours * 3600
        return {
            "prune_backups": lambda: jobs.prune_backups(s, time.time()),
            "reset_delete_counters": lambda: jobs.reset_delete_counters(s, time.time()),
            "expire_tombstones": lambda: engine.submit(lambda c: c.expire_tombstones(time.time() - ttl)),
            "trim_changes": lambda: engine.submit(lambda c: c.trim_changes(time.time() - changes_age,
                                                                           s.maintenance.change_log_max_rows)),
            "wal_checkpoint": lambda: engine.submit(lambda c: c.wal_checkpoint()),
            "quick_check": lambda: self._post_if_corrupt(engine.submit(lambda c: c.quick_check())),
            "anti_entropy": engine.verify.step,
        }

    def _post_if_corrupt(self, result: str) -> str:
        if result != "ok":
            self.events.put(("cache_corrupt", result))
        return result

    def handle_cache_corrupt(self, result: str) -> None:
        """The periodic quick_check failed: stop with EX_IOERR; the next boot sets the file aside and rebuilds."""
        log.error("cache_quick_check_failed", result=result[:200])
        raise HaltServer("cache quick_check failed", ExitCode.IOERR)

    # -- stop -----------------------------------------------------------------------------------

    def _stop(self, halt: HaltServer) -> int:
        """The one stop path: stop in order, each join bounded, and log the exit status returned."""
        self.state = "stopping"
        self.notifier.stopping()
        log.info("stopping", reason=halt.reason)
        exit_status = halt.exit_status
        deadline = time.monotonic() + self.settings.service.stop_timeout
        if self.engine is not None:
            self.engine.stop()
        self.stop_event.set()
        if self.maintenance is not None:
            with suppress(Exception):
                self.maintenance.shutdown(wait=False)
        for t in self.threads:
            while t.is_alive() and time.monotonic() < deadline and not self.force_exit:
                t.join(0.1)
            if t.is_alive():
                log.error("thread_did_not_stop", thread=t.name)
                exit_status = exit_status or ExitCode.SOFTWARE
        if self.control is not None:
            self.control.close()
        if self.cache is not None and not any(t.is_alive() for t in self.threads):
            self.cache.close()
        if self.lock is not None:
            self.lock.release()
        log.info("stopped", exit_code=int(exit_status), reason=halt.reason)
        return int(exit_status)


def _business_arg(text: str) -> str:
    """`refresh-business`'s argument: a business id as a JSON string (ids may hold spaces)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, str) or not 0 < len(value.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES:
        raise BadInput("usage: refresh-business <business-id as a JSON string>", hint='e.g. refresh-business "b1"')
    return value

