"""The traps a newcomer fell into: `export -o dir/`, a deleted business, `delete` leaving children."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seo_sync.cache.lock import WriterLock
from seo_sync.errors import ExitCode
from seo_sync.protection.ledger import CONFIRM_TOKEN
from tests.support.cli_data import FakeDaemon, business_items

SEED = business_items()


@pytest.fixture
def synced(cli, boto):
    """The two test businesses in DynamoDB and in the cache."""
    assert cli("create-tables")[0] == 0
    for name, rows in SEED.items():
        for item in rows:
            boto.put_item(TableName=f"seo_{name}", Item=item)
    assert cli("sync-from-dynamo")[0] == 0
    return cli


def test_export_to_a_directory_with_a_trailing_slash_writes_into_it(synced, tmp_path: Path) -> None:
    """`-o dir/` writes dir/<id>.json; a missing `dir/` is an error, never a file named `dir`."""
    out_dir = tmp_path / "exports"
    code, _, err = synced("export", "acme", "-o", f"{out_dir}/")
    assert code == ExitCode.CANTCREAT and "does not exist" in err and "mkdir -p" in err
    assert not out_dir.exists()
    out_dir.mkdir()
    code, _out, err = synced("export", "acme", "-o", f"{out_dir}/")
    assert code == 0, err
    assert json.loads((out_dir / "acme.json").read_text())["business_id"] == "acme"


def test_a_soft_deleted_business_is_a_deleted_answer_with_its_own_exit_code(synced, boto) -> None:
    """Export of a business deleted without --cascade exits 6 saying it is deleted and what remains."""
    code, out, err = synced("delete", "business", "acme", "--confirm", CONFIRM_TOKEN)
    assert code == 0, err
    for args in (("export", "acme"), ("export", "acme", "--from-dynamo")):
        code, out, err = synced(*args)
        assert code == ExitCode.DELETED == 6, (args, out, err)
        assert "is deleted" in err and "2 keywords" in err and "backups list --business acme" in err
        assert out == ""
    code, _, err = synced("export", "nobody")
    assert code == ExitCode.NOINPUT  # never existed: still "not found"


def test_delete_without_cascade_says_which_children_it_leaves(synced) -> None:
    """Deleting a business alone names its children left in place and how --cascade removes them too."""
    code, out, err = synced("delete", "business", "acme", "--confirm", CONFIRM_TOKEN)
    assert code == 0, err
    assert "left in place, not deleted: 1 questionnaires, 2 keywords, 1 service_areas, 1 prompt_templates" in err
    assert "--cascade" in err
    code, out, err = synced("--json", "delete", "business", "zeta", "--confirm", CONFIRM_TOKEN)
    assert code == 0 and json.loads(out)["children_left"] == {"keywords": 1}
    code, out, err = synced("delete", "keyword", "acme", "drain-cleaning#en", "--confirm", CONFIRM_TOKEN)
    assert code == 0 and "left in place" not in err  # only a business has children


def test_sync_from_dynamo_of_one_business_while_a_daemon_runs_goes_through_it(synced, tmp_path) -> None:
    """With a daemon holding the cache, `sync-from-dynamo BUSINESS` asks it for the business in one request."""
    data = tmp_path / "data"
    tables = {"businesses": {"keys": 1, "rows": 1}, "keywords": {"keys": 3, "rows": 2}}
    with WriterLock(data / "cache.db"):
        daemon = FakeDaemon(data / "seo-sync.sock", {"ok": True, "state": "streaming", "tables": tables})
        try:
            code, out, err = synced("--json", "sync-from-dynamo", "acme")
        finally:
            daemon.close()
    assert code == 0, err
    assert json.loads(out)["via"] == "daemon" and json.loads(out)["tables"] == tables
    # One consistent Query a table in the daemon (refresh-business), not one refresh a key.
    assert daemon.requests == ["status", 'refresh-business "acme"']
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "through the running daemon" in readme


def test_sync_from_dynamo_with_the_lock_held_and_no_daemon_exits_75(synced, tmp_path) -> None:
    """Lock held by something that is not an answering daemon: exit 75 naming the socket nobody answers on."""
    with WriterLock(tmp_path / "data" / "cache.db"):
        code, _, err = synced("sync-from-dynamo", "acme")
    assert code == ExitCode.TEMPFAIL == 75 and "no daemon answers on" in err
