"""The delete-rate ledger: 10 deletes per entity type per clock hour, atomic across processes, persistent."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seo_sync.errors import ProtectionRefused, RateLimited
from seo_sync.protection.jobs import reset_delete_counters
from seo_sync.protection.ledger import CONFIRM_TOKEN, HOUR, Ledger, check_confirmation, hour_of

T0 = 1_790_000_000.0 + 600  # ten minutes into an hour
LIMIT = 10


def _reserve_one(args: tuple[str, float]) -> bool:
    """Worker: try to take one `business` slot; True when granted."""
    path, now = args
    try:
        Ledger(Path(path)).reserve({"business": 1}, now, LIMIT)
        return True
    except RateLimited:
        return False


def test_the_eleventh_delete_in_an_hour_is_refused_with_the_reopening_time(tmp_path):
    """Ten deletes of one entity type pass; the 11th is refused and says when the window reopens."""
    ledger = Ledger(tmp_path / "protection.db")
    for _ in range(LIMIT):
        ledger.reserve({"business": 1}, T0, LIMIT)
    with pytest.raises(RateLimited) as exc:
        ledger.reserve({"business": 1}, T0 + 60, LIMIT)
    reopen = hour_of(T0) + HOUR
    assert "10 of 10" in exc.value.message
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reopen)) in exc.value.message
    ledger.reserve({"keyword": 1}, T0, LIMIT)  # other entity types have their own limit
    ledger.reserve({"business": 1}, reopen, LIMIT)  # the next clock hour is a new window


def test_a_restart_of_every_process_does_not_reset_the_count(tmp_path):
    """Deletes counted by another process that has exited still count in a new process."""
    path = tmp_path / "protection.db"
    code = ("import sys; from pathlib import Path; from seo_sync.protection.ledger import Ledger; "
            f"[Ledger(Path(sys.argv[1])).reserve({{'business': 1}}, {T0}, {LIMIT}) for _ in range(10)]")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    with pytest.raises(RateLimited):
        Ledger(path).reserve({"business": 1}, T0 + 120, LIMIT)
    assert Ledger(path).used("business", T0) == 10


def test_twenty_parallel_deletes_from_separate_processes_grant_exactly_ten(tmp_path):
    """Check-and-count is atomic across processes: of 20 racing reservations exactly 10 win."""
    path = str(tmp_path / "protection.db")
    Ledger(Path(path)).used("business", T0)  # create the schema once; the race is on the counting
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        granted = pool.map(_reserve_one, [(path, T0)] * 20)
    assert sum(granted) == 10
    assert Ledger(Path(path)).used("business", T0) == 10


def test_a_clock_stepped_back_cannot_reopen_a_used_hour(tmp_path):
    """Windows from the clock's 'future' still count, so an NTP step back does not grant ten more."""
    ledger = Ledger(tmp_path / "protection.db")
    for _ in range(LIMIT):
        ledger.reserve({"keyword": 1}, T0, LIMIT)
    with pytest.raises(RateLimited):
        ledger.reserve({"keyword": 1}, T0 - HOUR, LIMIT)


def test_a_cascade_reserves_all_of_its_slots_or_none(tmp_path):
    """A reservation over several entity types is refused whole when one of them would pass the limit."""
    ledger = Ledger(tmp_path / "protection.db")
    ledger.reserve({"keyword": 7}, T0, LIMIT)
    with pytest.raises(RateLimited, match="keyword: 7 of 10"):
        ledger.reserve({"business": 1, "keyword": 4}, T0, LIMIT)
    assert ledger.used("business", T0) == 0 and ledger.used("keyword", T0) == 7
    with pytest.raises(RateLimited, match="exceed the limit"):
        ledger.reserve({"keyword": 11}, T0 + HOUR, LIMIT)


def test_refund_gives_back_a_slot_of_a_delete_that_changed_nothing(tmp_path):
    """A refunded slot can be used again in the same hour."""
    ledger = Ledger(tmp_path / "protection.db")
    res = ledger.reserve({"business": LIMIT}, T0, LIMIT)
    ledger.refund(res.hour, "business")
    ledger.reserve({"business": 1}, T0, LIMIT)
    with pytest.raises(RateLimited):
        ledger.reserve({"business": 1}, T0, LIMIT)


def test_reset_drops_past_windows_only_and_is_idempotent(tmp_path):
    """reset_delete_counters drops windows before the current hour, keeps the current one, and repeats as a no-op."""
    path = tmp_path / "protection.db"
    ledger = Ledger(path)
    ledger.reserve({"business": 3}, T0 - 2 * HOUR, LIMIT)
    ledger.reserve({"keyword": 2}, T0 - HOUR, LIMIT)
    ledger.reserve({"business": 10}, T0, LIMIT)
    assert reset_delete_counters(path, T0) == 2
    assert reset_delete_counters(path, T0) == 0
    with pytest.raises(RateLimited):  # the current hour is untouched
        ledger.reserve({"business": 1}, T0, LIMIT)


def test_reset_drops_windows_far_in_the_future_left_by_a_wrong_clock(tmp_path):
    """A window more than two days ahead (clock was wrong) is dropped instead of blocking deletes for long."""
    path = tmp_path / "protection.db"
    ledger = Ledger(path)
    ledger.reserve({"business": 10}, T0 + 365 * 86400, LIMIT)
    with pytest.raises(RateLimited):
        ledger.reserve({"business": 1}, T0, LIMIT)
    assert reset_delete_counters(path, T0) == 1
    ledger.reserve({"business": 1}, T0, LIMIT)


def test_the_ledger_is_a_rollback_journal_database_readable_by_its_owner_only(tmp_path):
    """protection.db is not WAL (several short-lived writers) and is created 0600."""
    path = tmp_path / "protection.db"
    Ledger(path).reserve({"business": 1}, T0, LIMIT)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not Path(str(path) + "-wal").exists()


@pytest.mark.parametrize("token", [None, "", "yes", CONFIRM_TOKEN.lower(), CONFIRM_TOKEN + " ", "I-UNDERSTAND"])
def test_a_missing_or_wrong_confirmation_token_is_refused(token):
    """Only the exact token passes; the refusal names it."""
    with pytest.raises(ProtectionRefused, match="confirmation token") as exc:
        check_confirmation(token)
    assert CONFIRM_TOKEN in str(exc.value)


def test_the_exact_confirmation_token_passes():
    """The platform's token is accepted."""
    check_confirmation("I-UNDERSTAND-THIS-IS-DESTRUCTIVE")
