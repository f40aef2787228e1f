"""What SIGHUP takes from a configuration read again: live settings applied, the others named for a restart."""

from __future__ import annotations

from seo_sync.service.reload import changed_settings, split_changes, with_live
from tests.support.settings import make_settings


def test_changes_are_split_into_live_ones_and_ones_needing_a_restart(tmp_path):
    """lag_alarm and the repair rate apply live; a Scan setting waits for a restart and is not applied."""
    running = make_settings(tmp_path)
    new = make_settings(tmp_path, stream={"lag_alarm": 5.0}, verify={"repair_reads_per_second": 2.0},
                        fullsync={"batch_size": 7})
    live, restart = split_changes(changed_settings(running, new))
    assert live == ["stream.lag_alarm", "verify.repair_reads_per_second"]
    assert restart == ["fullsync.batch_size"]
    effective = with_live(running, new, live)
    assert effective.stream.lag_alarm == 5.0 and effective.verify.repair_reads_per_second == 2.0
    assert effective.fullsync.batch_size == running.fullsync.batch_size
    assert effective.stream.idle_poll_interval == running.stream.idle_poll_interval


def test_a_changed_secret_is_named_not_shown(tmp_path):
    """A new secret key counts as a change needing a restart; only its name is reported."""
    running = make_settings(tmp_path)
    new = make_settings(tmp_path, aws={"region": "us-east-1", "access_key_id": "AKIAEXAMPLE",
                                       "secret_access_key": "s3cr3t"})
    changed = changed_settings(running, new)
    assert "aws.secret_access_key" in changed and not any("s3cr3t" in k for k in changed)
