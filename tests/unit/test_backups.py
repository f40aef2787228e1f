"""Backup files: lossless round trip, fail-closed writing, safe names, and a prune that touches only ours."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from seo_sync import codec
from seo_sync.errors import BackupFailed, BadInput
from seo_sync.protection import backups
from seo_sync.protection.jobs import prune_backups
from seo_sync.protection.ledger import DAY
from seo_sync.schema import BUSINESSES, KEYWORDS, TABLES
from tests.support.strategies import attribute_values

T0 = 1_790_000_000.0  # a fixed "now" (2026-09)

safe_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
items = st.builds(
    lambda bid, attrs: {**{k: v for k, v in attrs.items() if k != "business_id"}, "business_id": {"S": bid}},
    safe_ids, st.dictionaries(st.text(min_size=1, max_size=12), attribute_values, max_size=6),
)


def _canonical_item(item: codec.Item) -> codec.Item:
    return {k: codec.canonical(v) for k, v in item.items()}


def _item(bid: str = "acme", **extra: object) -> codec.Item:
    return codec.item_from_python({"business_id": bid, "name": "Acme", "_version": 3, **extra})


@given(item=items)
@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_backup_then_read_gives_the_identical_item_for_every_attribute_type(item):
    """write_backup → read_backup returns exactly the item (Decimal-exact numbers, sets, binary, nesting)."""
    with tempfile.TemporaryDirectory() as d:
        path = backups.write_backup(Path(d) / "backups", BUSINESSES, item, reason="test", now=T0)
        got = backups.read_backup(path)
    assert _canonical_item(got.item) == _canonical_item(item)
    assert got.key == (item["business_id"]["S"],) and got.table == "businesses"


def test_backup_file_records_table_key_item_time_and_reason(tmp_path):
    """The file holds table, key, the item as DynamoDB JSON, the time and the reason."""
    item = codec.item_from_python({"business_id": "acme", "keyword_id": "plumber#en", "n": codec.Decimal("1.50")})
    path = backups.write_backup(tmp_path, KEYWORDS, item, reason="operator cleanup", now=T0)
    doc = json.loads(path.read_text())
    assert doc["table"] == "keywords" and doc["key"] == {"business_id": "acme", "keyword_id": "plumber#en"}
    assert doc["item"]["n"] == {"N": "1.50"} and doc["reason"] == "operator cleanup"
    assert doc["time"].startswith("2026-") and doc["time_us"] == int(T0 * 1_000_000)
    assert backups.NAME_RE.fullmatch(path.name) and path.name.startswith("keywords.acme.")


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277])
def test_backup_files_are_mode_0600_whatever_the_umask(tmp_path, umask):
    """The file is created 0600 even under a permissive (000) or owner-crippling (277) umask."""
    old = os.umask(umask)
    try:
        path = backups.write_backup(tmp_path / "b", BUSINESSES, _item(), reason="", now=T0)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_planted_symlink_at_the_target_name_refuses_the_backup(tmp_path):
    """A symlink planted at the final name is never followed or replaced: BackupFailed, target untouched."""
    bdir = tmp_path / "backups"
    bdir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    name = backups.backup_name(BUSINESSES, "acme", int(T0 * 1_000_000), "0badf00d")
    (bdir / name).symlink_to(victim)
    with pytest.raises(BackupFailed, match="already exists"):
        backups.write_backup(bdir, BUSINESSES, _item(), reason="", now=T0, nonce="0badf00d")
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in bdir.iterdir()) == [name]  # no temporary file left behind


def test_planted_symlink_at_the_temporary_name_refuses_the_backup(tmp_path):
    """A symlink at the temporary name is not followed (O_EXCL|O_NOFOLLOW)."""
    bdir = tmp_path / "backups"
    bdir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    name = backups.backup_name(BUSINESSES, "acme", int(T0 * 1_000_000), "0badf00d")
    (bdir / (backups.TMP_PREFIX + name)).symlink_to(victim)
    with pytest.raises(BackupFailed):
        backups.write_backup(bdir, BUSINESSES, _item(), reason="", now=T0, nonce="0badf00d")
    assert victim.read_text() == "keep me" and not (bdir / name).exists()


def test_a_symlinked_backup_directory_is_refused(tmp_path):
    """The backup directory itself must not be a symlink (writes could land anywhere)."""
    real = tmp_path / "elsewhere"
    real.mkdir()
    (tmp_path / "backups").symlink_to(real)
    with pytest.raises(BackupFailed):
        backups.write_backup(tmp_path / "backups", BUSINESSES, _item(), reason="", now=T0)
    assert list(real.iterdir()) == []


HOSTILE_IDS = ["../../etc/x", "/etc/passwd", "a\0b", "x" * 300, ".", "..", "café", "", "a/b", "a.b", "a b",
               "..\\..\\x", "\u202eevil"]


@pytest.mark.parametrize("bad_id", HOSTILE_IDS)
def test_hostile_business_ids_never_reach_a_file_name(tmp_path, bad_id):
    """Path-traversal and odd ids are rejected before any file is created."""
    bdir = tmp_path / "backups"
    item = {"business_id": {"S": bad_id}, "name": {"S": "x"}} if bad_id else {"business_id": {"S": ""}}
    with pytest.raises(BadInput):
        backups.write_backup(bdir, BUSINESSES, item, reason="", now=T0)
    created = [p for p in tmp_path.rglob("*")] if tmp_path.exists() else []
    assert all(p == bdir for p in created)
    with pytest.raises(BadInput):
        backups.list_backups(bdir, business_id=bad_id)


def test_read_backup_refuses_a_symlink(tmp_path):
    """`backups restore` on a symlink is refused rather than followed."""
    path = backups.write_backup(tmp_path / "b", BUSINESSES, _item(), reason="", now=T0)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(BadInput, match="symlink"):
        backups.read_backup(link)


def test_list_filters_by_business_and_ignores_foreign_files(tmp_path):
    """list_backups shows our files only, oldest first, optionally of one business."""
    bdir = tmp_path / "b"
    a1 = backups.write_backup(bdir, BUSINESSES, _item("a"), reason="", now=T0)
    backups.write_backup(bdir, BUSINESSES, _item("b"), reason="", now=T0 + 1)
    a2 = backups.write_backup(bdir, BUSINESSES, _item("a"), reason="", now=T0 + 2)
    (bdir / "README.txt").write_text("not ours")
    (bdir / "businesses.zz.20260101T000000000000Z.deadbeef.json").write_text("{broken")
    assert backups.list_backups(bdir)[0].path == a1
    assert [b.path for b in backups.list_backups(bdir, business_id="a")] == [a1, a2]
    assert len(backups.list_backups(bdir)) == 3


# -- prune ------------------------------------------------------------------------------------------


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "backups", tmp_path / "protection.db"


def _backup_at(bdir: Path, bid: str, when: float) -> Path:
    """A backup written at `when` by the injected clock (the file's mtime follows the same clock)."""
    path = backups.write_backup(bdir, BUSINESSES, _item(bid), reason="", now=when)
    os.utime(path, (when, when))
    return path


def test_prune_removes_only_our_old_regular_files(tmp_path):
    """Old backups go; young ones, symlinks, directories, foreign and tampered files stay."""
    bdir, ledger = _dirs(tmp_path)
    old = _backup_at(bdir, "old", T0 - 40 * DAY)
    young = _backup_at(bdir, "young", T0 - 10 * DAY)
    outside = tmp_path / "outside.json"
    outside.write_text(old.read_text())
    old_name = backups.backup_name(BUSINESSES, "lnk", int((T0 - 50 * DAY) * 1e6), "00000001")
    (bdir / old_name).symlink_to(outside)
    (bdir / backups.backup_name(BUSINESSES, "dir", int((T0 - 50 * DAY) * 1e6), "00000002")).mkdir()
    (bdir / "notes.txt").write_text("operator notes")
    tampered = bdir / backups.backup_name(BUSINESSES, "old", int((T0 - 60 * DAY) * 1e6), "00000003")
    tampered.write_text(old.read_text())  # recorded time ≠ the time in its name
    os.utime(tampered, (T0 - 60 * DAY, T0 - 60 * DAY))
    touched = _backup_at(bdir, "touched", T0 - 45 * DAY)
    os.utime(touched, (T0 - 1 * DAY, T0 - 1 * DAY))  # rewritten since: mtime says it is young, keep it
    os.utime(bdir / "notes.txt", (T0 - 400 * DAY, T0 - 400 * DAY))
    assert prune_backups((bdir, ledger), now=T0) == 1
    assert not old.exists() and young.exists() and outside.exists() and (bdir / old_name).is_symlink()
    assert (bdir / "notes.txt").exists() and tampered.exists() and touched.exists()
    assert prune_backups((bdir, ledger), now=T0) == 0  # idempotent


def test_prune_leaves_files_of_another_owner(tmp_path):
    """A backup-named file owned by someone else is not ours to delete."""
    bdir, ledger = _dirs(tmp_path)
    path = _backup_at(bdir, "acme", T0 - 40 * DAY)
    other_uid = 65534 if os.geteuid() == 0 else None
    if other_uid is None:  # without root we cannot give a file away; a foreign-owned copy stands in
        pytest.fail("this check needs root to chown (CI runs as root)")
    os.chown(path, other_uid, -1)
    assert prune_backups((bdir, ledger), now=T0) == 0 and path.exists()


def test_root_pruning_the_service_users_directory_removes_the_service_users_backups(tmp_path):
    """Files owned by the backup directory's owner (the service user) count as ours for an operator's prune."""
    if os.geteuid() != 0:
        pytest.fail("this check needs root to chown (CI runs as root)")
    bdir, ledger = _dirs(tmp_path)
    path = _backup_at(bdir, "acme", T0 - 40 * DAY)
    os.chown(bdir, 65534, 65534)
    os.chown(path, 65534, 65534)
    assert prune_backups((bdir, ledger), now=T0) == 1 and not path.exists()


def test_prune_survives_clock_jumps_of_a_year_either_way(tmp_path):
    """A clock a year ahead prunes at most as of last run + 2 days; a year behind prunes nothing."""
    bdir, ledger = _dirs(tmp_path)
    assert prune_backups((bdir, ledger), now=T0) == 0  # the last run, recorded in protection.db
    very_old = _backup_at(bdir, "a", T0 - 40 * DAY)
    recent = _backup_at(bdir, "b", T0 - 10 * DAY)
    assert prune_backups((bdir, ledger), now=T0 - 365 * DAY) == 0
    assert very_old.exists() and recent.exists()
    assert prune_backups((bdir, ledger), now=T0 + 365 * DAY) == 1  # no mass delete: acts as of T0 + 2 days
    assert not very_old.exists() and recent.exists()
    assert prune_backups((bdir, ledger), now=T0 + 365 * DAY, trust_clock=True) == 1  # operator override
    assert not recent.exists()


def test_prune_from_several_processes_at_once_removes_each_file_once(tmp_path):
    """Concurrent prunes split the work without errors; every old file is removed exactly once."""
    bdir, ledger = _dirs(tmp_path)
    for i in range(40):
        _backup_at(bdir, f"b{i}", T0 - 40 * DAY + i)
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda _: prune_backups((bdir, ledger), now=T0), range(4)))
    assert sum(counts) == 40 and list(bdir.iterdir()) == []


def test_prune_removes_stale_temporary_files_of_killed_writers(tmp_path):
    """A `.tmp.` file a killed writer left behind goes after a day; a fresh one stays."""
    bdir, ledger = _dirs(tmp_path)
    bdir.mkdir()
    stale = bdir / (backups.TMP_PREFIX + backups.backup_name(BUSINESSES, "a", int(T0 * 1e6), "00000009"))
    fresh = bdir / (backups.TMP_PREFIX + backups.backup_name(BUSINESSES, "b", int(T0 * 1e6), "0000000a"))
    stale.write_text("{")
    fresh.write_text("{")
    os.utime(stale, (T0 - 2 * DAY, T0 - 2 * DAY))
    os.utime(fresh, (T0, T0))
    prune_backups((bdir, ledger), now=T0)
    assert not stale.exists() and fresh.exists()


def test_every_table_has_a_name_the_pattern_accepts():
    """The file-name pattern covers all five table names."""
    for spec in TABLES.values():
        assert backups.NAME_RE.fullmatch(backups.backup_name(spec, "acme", int(T0 * 1e6), "01234567"))


@pytest.mark.parametrize("table", [["businesses"], {"name": "businesses"}, 7, None])
def test_a_backup_naming_its_table_by_anything_but_a_string_is_bad_input(tmp_path: Path, table: object) -> None:
    """A backup whose `table` is a list, object, number or null is refused as BadInput, never a TypeError."""
    data = json.dumps({"format": backups.FORMAT, "table": table, "item": {}}).encode()
    with pytest.raises(BadInput, match="unknown table"):
        backups.parse_backup(tmp_path / "b.json", data)
