"""The write-path commands against moto's HTTP server: put, delete, backups list/restore/prune, exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.writer import Cache
from seo_sync.errors import ExitCode
from seo_sync.protection.ledger import CONFIRM_TOKEN, Ledger
from seo_sync.schema import BUSINESSES, KEYWORDS
from tests.support.settings import make_settings

N38 = "12345678901234567890123456789012345678"


@pytest.fixture
def config(tmp_path, dynamo_endpoint) -> Path:
    """A config file pointing at the moto server and a data dir with an empty cache."""
    path = tmp_path / "seo-sync.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[aws]\nendpoint_url = "{dynamo_endpoint}"\n'
                    'region = "us-east-1"\nmax_attempts = 2\n')
    Cache.open(tmp_path / "data" / "cache.db").close()
    return path


@pytest.fixture
def source(tmp_path, dynamo_endpoint) -> Source:
    """seo-sync's DynamoDB source on the same moto server."""
    settings = make_settings(tmp_path / "data", dynamo_endpoint)
    return Source(settings.aws, settings.table_prefix)


@pytest.fixture
def cli(cli):
    """The shared CLI runner, with the five tables created first."""
    assert cli("create-tables")[0] == 0
    return cli


def _file(tmp_path: Path, name: str, obj: object) -> str:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def test_put_plain_json_keeps_numbers_exact_and_is_version_checked(cli, source, tmp_path):
    """Plain JSON numbers stay exact; a repeated identical create is a no-op, a different one conflicts."""
    text = f'{{"business_id": "acme", "name": "Acme", "revenue": {N38}, "ratio": 0.1000}}'
    code, out, _ = cli("--json", "put", "business", _file(tmp_path, "b.json", text))
    assert code == 0 and json.loads(out)["written"][0]["version"] == 1
    item = source.get_item(BUSINESSES, ("acme",))
    assert item["revenue"] == {"N": N38} and item["ratio"]["N"] in ("0.1000", "0.1")
    code, out, err = cli("put", "business", _file(tmp_path, "b.json", text))
    assert code == 0 and "already held this exact item" in err  # same bytes again: said so, not a conflict
    assert "an earlier attempt had landed" not in out  # it was not an attempt of this run
    other = text.replace('"Acme"', '"Other"')
    code, _, err = cli("put", "business", _file(tmp_path, "b.json", other))
    assert code == ExitCode.CONFLICT and "changed" in err and "nothing was written" in err
    assert '"business_id"' in err and '"Acme"' in err and "Traceback" not in err  # the current item is shown
    code, out, _ = cli("put", "business", _file(tmp_path, "b.json", other), "--expected-version", "1")
    assert code == 0 and "_version 2" in out


def test_put_dynamodb_json_with_sets_and_binary_uses_the_files_own_version(cli, source, tmp_path):
    """An exported item (DynamoDB JSON, with its _version) edited and put back lands as the next version."""
    item = {"business_id": {"S": "acme"}, "keyword_id": {"S": "plumber#en"}, "tags": {"SS": ["b", "a"]},
            "blob": {"B": "AP8="}, "n": {"NS": ["1.50", N38]}}
    assert cli("put", "keyword", _file(tmp_path, "k.json", item))[0] == 0
    exported = codec.item_to_ddb_json(source.get_item(KEYWORDS, ("acme", "plumber#en")))
    exported["tags"] = {"SS": ["c"]}
    code, _, err = cli("put", "keyword", _file(tmp_path, "k2.json", exported))
    assert code == 0, err
    now = source.get_item(KEYWORDS, ("acme", "plumber#en"))
    assert now["_version"] == {"N": "2"} and now["tags"] == {"SS": ["c"]} and now["blob"] == {"B": b"\x00\xff"}


@pytest.mark.parametrize("content", ["{not json", '{"business_id": "acme", "x": NaN}', "[1, 2]",
                                     '{"name": "no key"}', '{"business_id": "../etc"}'])
def test_put_refuses_bad_input_with_a_clear_error(cli, tmp_path, content):
    """Malformed files, NaN, missing keys and hostile ids exit 65 with a message, never a traceback."""
    code, _, err = cli("put", "business", _file(tmp_path, "bad.json", content))
    assert code == ExitCode.DATAERR and err.startswith("seo-sync: ") and "Traceback" not in err


def test_delete_needs_the_token_then_backs_up_and_restore_brings_it_back(cli, source, tmp_path):
    """No token: exit 4, nothing changes. With it: soft delete + backup; list shows it; restore undoes it."""
    assert cli("put", "business", _file(tmp_path, "b.json", {"business_id": "acme", "name": "Acme"}))[0] == 0
    code, _, err = cli("delete", "business", "acme")
    assert code == ExitCode.REFUSED and CONFIRM_TOKEN in err
    assert not codec.is_deleted(source.get_item(BUSINESSES, ("acme",)))
    code, out, err = cli("--json", "delete", "business", "acme", "--confirm", CONFIRM_TOKEN, "--reason", "test")
    assert code == 0, err
    [deleted] = json.loads(out)["deleted"]
    assert deleted["version"] == 2 and deleted["cache"] == "direct"
    assert codec.is_deleted(source.get_item(BUSINESSES, ("acme",)))
    code, out, _ = cli("backups", "list", "--business", "acme", "--json")
    [listed] = json.loads(out)["backups"]
    assert code == 0 and listed["path"] == deleted["backup"] and listed["outcome"] == "deleted"
    assert listed["reason"] == "test" and listed["version"] == 1
    code, out, err = cli("backups", "restore", deleted["backup"])
    assert code == 0, err
    item = source.get_item(BUSINESSES, ("acme",))
    assert not codec.is_deleted(item) and item["_version"] == {"N": "3"} and item["name"] == {"S": "Acme"}


def test_the_eleventh_delete_is_refused_with_exit_4_and_the_reopening_time(cli, source, tmp_path):
    """With ten keyword deletes already counted this hour (and the next), the CLI refuses and says when."""
    assert cli("put", "keyword", _file(tmp_path, "k.json", {"business_id": "acme", "keyword_id": "x#en"}))[0] == 0
    ledger = Ledger(tmp_path / "data" / "protection.db")
    now = time.time()
    ledger.reserve({"keyword": 10}, now, 10)
    ledger.reserve({"keyword": 10}, now + 3600, 10)  # the test may straddle an hour boundary
    code, _, err = cli("delete", "keyword", "acme", "x#en", "--confirm", CONFIRM_TOKEN)
    assert code == ExitCode.REFUSED and "reopens at" in err and "Traceback" not in err
    assert not codec.is_deleted(source.get_item(KEYWORDS, ("acme", "x#en")))


def test_delete_of_a_hostile_id_or_a_missing_item_is_a_clear_error(cli):
    """A path-traversal id exits 65; an absent item exits 66; wrong key arity is a usage-level data error."""
    assert cli("delete", "business", "../../etc", "--confirm", CONFIRM_TOKEN)[0] == ExitCode.DATAERR
    assert cli("delete", "business", "ghost", "--confirm", CONFIRM_TOKEN)[0] == ExitCode.NOINPUT
    assert cli("delete", "keyword", "acme", "--confirm", CONFIRM_TOKEN)[0] == ExitCode.DATAERR


def test_prune_removes_old_backups_and_leaves_symlinks_alone(cli, tmp_path):
    """`backups prune --older-than 0` removes our files but not a symlink or a foreign file beside them."""
    assert cli("put", "business", _file(tmp_path, "b.json", {"business_id": "acme", "name": "A"}))[0] == 0
    assert cli("delete", "business", "acme", "--confirm", CONFIRM_TOKEN)[0] == 0
    bdir = tmp_path / "data" / "backups"
    [ours] = list(bdir.iterdir())
    outside = tmp_path / "outside.json"
    outside.write_text(ours.read_text())
    (bdir / ours.name.replace(".json", "").rsplit(".", 1)[0].__add__(".00000001.json")).symlink_to(outside)
    (bdir / "README").write_text("foreign")
    code, out, _ = cli("--json", "backups", "prune", "--older-than", "0")
    assert code == 0 and json.loads(out)["removed"] == 1
    assert not ours.exists() and outside.exists() and (bdir / "README").exists()
    assert cli("backups", "prune", "--older-than", "-1")[0] == ExitCode.USAGE
