"""Signals during the start are handled, not fatal; SIGHUP reads the configuration again, refusing a bad one."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.support.harness import wait_until

SIGNAL_BITS = ("SigBlk", "SigCgt")


def _started_importing_or_handling(d, sig: int) -> bool:
    """The process has reached our code: it blocks or catches `sig`, or its log has begun."""
    try:
        lines = Path(f"/proc/{d.pid}/status").read_text().splitlines()
    except OSError:
        return False
    masks = {k: int(v, 16) for k, _, v in (line.partition(":\t") for line in lines) if k in SIGNAL_BITS}
    return any(m >> (sig - 1) & 1 for m in masks.values()) or '"starting"' in d.log()


def _events(d, name: str) -> list[dict]:
    out = []
    for line in d.log().splitlines():
        if f'"{name}"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def test_a_sighup_during_the_start_queues_a_resync_instead_of_killing(seeded, start_daemon):
    """SIGHUP as soon as the process runs our code (before READY): it comes up, and the resync is queued."""
    d = start_daemon()
    wait_until(lambda: _started_importing_or_handling(d, signal.SIGHUP), timeout=30, what="process started")
    d.signal(signal.SIGHUP)
    d.wait_ready()
    wait_until(lambda: any(e.get("source") == "SIGHUP" for e in _events(d, "resync_requested")),
               what="the resync of the early SIGHUP")
    assert d.proc.poll() is None


def test_a_sigusr1_during_the_start_dumps_stacks_instead_of_killing(seeded, start_daemon):
    """SIGUSR1 before READY: the daemon comes up and logs its threads' stacks."""
    d = start_daemon()
    wait_until(lambda: _started_importing_or_handling(d, signal.SIGUSR1), timeout=30, what="process started")
    d.signal(signal.SIGUSR1)
    d.wait_ready()
    wait_until(lambda: "\"thread_stack\"" in d.log(), what="stacks dumped")
    assert d.proc.poll() is None


def test_sighup_refuses_a_bad_config_and_applies_a_good_one(seeded, start_daemon, tmp_path):
    """A broken file on SIGHUP: a log line, the old config kept; a good one: live and restart keys named."""
    config = tmp_path / "seo-sync.toml"
    config.write_text("[stream]\nlag_alarm = 60\n\n[fullsync]\nbatch_size = 500\n")
    d = start_daemon(extra_env={"SEO_SYNC_CONFIG": str(config)})
    d.wait_ready()
    config.write_text("[stream]\nlag_alarm = -5\n")
    d.signal(signal.SIGHUP)
    wait_until(lambda: _events(d, "config_reload_refused"), what="the bad config refused")
    refused = _events(d, "config_reload_refused")[0]
    assert "lag_alarm" in refused["error"]
    wait_until(lambda: d.request("health")["ok"] is True, timeout=60, what="still healthy on the old config")
    config.write_text("[stream]\nlag_alarm = 30\n\n[fullsync]\nbatch_size = 400\n")
    d.signal(signal.SIGHUP)
    wait_until(lambda: _events(d, "config_reloaded"), what="the good config read")
    reloaded = _events(d, "config_reloaded")[0]
    assert reloaded["applied"] == ["stream.lag_alarm"]
    assert reloaded["need_restart"] == ["fullsync.batch_size"]
    assert d.proc.poll() is None
