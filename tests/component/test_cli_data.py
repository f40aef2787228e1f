"""The platform's CLI commands against moto's HTTP server, with items written by plain boto3."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.lock import WriterLock
from seo_sync.cache.reader import Reader
from seo_sync.cli.main import run
from seo_sync.demo.embedded import embedded_settings, run_demo_sync
from seo_sync.errors import ExitCode
from seo_sync.schema import TABLES
from tests.support.cli_data import N38, FakeDaemon, business_items


@pytest.fixture
def loaded(cli, boto) -> dict[str, list[dict]]:
    """Tables created by the CLI, then filled by plain boto3 PutItem."""
    assert cli("create-tables")[0] == 0
    items = business_items()
    for name, rows in items.items():
        for item in rows:
            boto.put_item(TableName=f"seo_{name}", Item=item)
    return items


def cache_items(data_dir: Path) -> dict[str, dict[tuple, dict]]:
    """Every item the cache holds, per table, by key.

    Read from the file with a read-only Reader of its own: the CLI process that wrote it has exited,
    so there is no Cache or engine to ask, which the helpers of tests/support/items.py read through."""
    reader = Reader.open(data_dir / "cache.db")
    try:
        return {s.name: {tuple(it[k]["S"] for k in s.key_names): it for it in reader.items(s)} for s in TABLES.values()}
    finally:
        reader.close()


def live(items: dict[str, list[dict]]) -> dict[str, dict[tuple, dict]]:
    """The expected cache content: every item not soft-deleted, by key."""
    return {name: {tuple(it[k]["S"] for k in TABLES[name].key_names): it for it in rows
                   if it.get("_deleted") != {"BOOL": True}} for name, rows in items.items()}


def assert_same(actual: dict[str, dict[tuple, dict]], expected: dict[str, dict[tuple, dict]]) -> None:
    """Same keys per table, and every item identical (canonical hash)."""
    for name in TABLES:
        assert sorted(actual[name]) == sorted(expected[name]), name
        for key, item in expected[name].items():
            assert codec.item_hash(actual[name][key]) == codec.item_hash(item), (name, key)


def test_create_tables_makes_all_five_with_streams_and_reports_existing(cli, boto):
    """create-tables creates the five tables with NEW_AND_OLD_IMAGES streams; a second run says they existed."""
    code, out, _ = cli("--json", "create-tables")
    assert code == 0 and sorted(json.loads(out)["created"]) == sorted(f"seo_{n}" for n in TABLES)
    for name in TABLES:
        spec = boto.describe_table(TableName=f"seo_{name}")["Table"]["StreamSpecification"]
        assert spec == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    code, out, _ = cli("--json", "create-tables")
    assert code == 0 and json.loads(out)["created"] == [] and len(json.loads(out)["existed"]) == 5


def test_sync_from_dynamo_fills_the_cache_exactly(cli, loaded, tmp_path):
    """A full sync-from-dynamo holds every live item exactly: 38-digit numbers, sets, binary, maps, extras."""
    code, out, err = cli("--json", "sync-from-dynamo")
    assert code == 0, err
    assert json.loads(out)["tables"]["keywords"]["rows"] == 3
    assert_same(cache_items(tmp_path / "data"), live(loaded))


def test_sync_from_dynamo_one_business_replaces_only_its_rows(cli, loaded, boto, tmp_path):
    """sync-from-dynamo <id> refreshes that business in all five tables and leaves the others alone."""
    assert cli("sync-from-dynamo", "acme")[0] == 0
    assert_same(cache_items(tmp_path / "data"), {n: {k: v for k, v in rows.items() if k[0] == "acme"}
                                                 for n, rows in live(loaded).items()})
    boto.delete_item(TableName="seo_keywords", Key={"business_id": {"S": "acme"},
                                                    "keyword_id": {"S": "drain-cleaning#en"}})
    code, out, _ = cli("--json", "sync-from-dynamo", "acme")
    assert code == 0 and json.loads(out)["tables"]["keywords"] == {
        "dynamodb": 2, "soft_deleted": 1, "rows_before": 2, "rows": 1}
    assert list(cache_items(tmp_path / "data")["keywords"]) == [("acme", "limpieza-de-drenajes#es")]


def test_export_and_list_businesses_give_the_data_back(cli, loaded):
    """export is lossless DynamoDB JSON in key order; list-businesses --json counts live rows; both sources agree."""
    assert cli("sync-from-dynamo")[0] == 0
    code, out, _ = cli("export", "acme")
    assert code == 0
    doc = json.loads(out)
    expected = live(loaded)
    assert doc["business"] == codec.item_to_ddb_json(expected["businesses"][("acme",)])
    assert codec.item_from_ddb_json(doc["business"])["revenue"] == {"N": N38}
    assert doc["questionnaire"] == codec.item_to_ddb_json(expected["questionnaires"][("acme",)])
    assert [k["keyword_id"]["S"] for k in doc["keywords"]] == ["drain-cleaning#en", "limpieza-de-drenajes#es"]
    assert len(doc["service_areas"]) == 1 and len(doc["prompt_templates"]) == 1
    assert cli("export", "--from-dynamo", "acme")[1] == out  # the cache and DynamoDB export the same bytes
    code, out, _ = cli("--json", "list-businesses")
    rows = json.loads(out)
    assert rows == [
        {"business_id": "acme", "name": "Acme Plumbing", "industry": "plumbing", "keywords": 2, "service_areas": 1,
         "prompt_templates": 1, "updated_at": "2026-01-02T00:00:00Z"},
        {"business_id": "zeta", "name": "Zeta Roofing", "industry": "roofing", "keywords": 1, "service_areas": 0,
         "prompt_templates": 0, "updated_at": "2026-01-03T00:00:00Z"}]
    assert json.loads(cli("--json", "list-businesses", "--from-dynamo")[1]) == rows


def test_export_unknown_business_is_not_found(cli, loaded):
    """Exporting an id that is nowhere exits 66 with a hint."""
    assert cli("sync-from-dynamo", "acme")[0] == 0
    code, _, err = cli("export", "nobody")
    assert code == ExitCode.NOINPUT and "nobody" in err and "list-businesses" in err


@pytest.mark.parametrize("bad_id", ["../../etc/x", "/etc/passwd", "a\x00b", "x" * 300, ".", "..", "café", "a/b", ""])
def test_export_output_rejects_hostile_business_ids(cli, loaded, tmp_path, bad_id):
    """An id that would become a file name in --output DIR is refused (exit 65) and nothing is written."""
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    before = sorted(p for p in tmp_path.rglob("*"))
    code, _, err = cli("export", bad_id, "--output", str(out_dir))
    assert code == ExitCode.DATAERR
    assert "not allowed" in err or "must be 1 to" in err
    assert "Traceback" not in err
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_export_output_file_is_exclusive_and_never_follows_a_symlink(cli, loaded, tmp_path):
    """--output creates a new 0600 file; an existing file needs --force; a planted symlink is never followed."""
    assert cli("sync-from-dynamo", "acme")[0] == 0
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    assert cli("export", "acme", "--output", str(out_dir))[0] == 0
    target = out_dir / "acme.json"
    assert json.loads(target.read_text())["business_id"] == "acme" and (target.stat().st_mode & 0o777) == 0o600
    code, _, err = cli("export", "acme", "--output", str(target))
    assert code == ExitCode.CANTCREAT and "--force" in err
    assert cli("export", "acme", "--output", str(target), "--force")[0] == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = out_dir / "link.json"
    link.symlink_to(victim)
    for extra in ((), ("--force",)):
        code, _, err = cli("export", "acme", "--output", str(link), *extra)
        assert code == ExitCode.CANTCREAT and "Traceback" not in err
    assert victim.read_text() == "keep me" and link.is_symlink()


def test_sync_to_dynamo_never_overwrites_a_newer_version(cli, loaded, boto, tmp_path):
    """sync-to-dynamo writes the cache back but skips an item whose _version in DynamoDB is newer."""
    assert cli("sync-from-dynamo")[0] == 0
    newer = {**loaded["businesses"][0], "_version": {"N": "9"}, "name": {"S": "Acme (renamed)"}}
    boto.put_item(TableName="seo_businesses", Item=newer)
    boto.delete_item(TableName="seo_service_areas", Key={"business_id": {"S": "acme"}, "area_id": {"S": "austin-tx"}})
    code, out, err = cli("--json", "sync-to-dynamo")
    report = json.loads(out)
    assert code == 0, err
    assert report["tables"]["businesses"]["skipped"] == 1 and report["tables"]["businesses"]["written"] == 1
    assert report["tables"]["service_areas"]["written"] == 1 and report["failed"] == 0
    current = boto.get_item(TableName="seo_businesses", Key={"business_id": {"S": "acme"}})["Item"]
    assert current["_version"] == {"N": "9"} and current["name"] == {"S": "Acme (renamed)"}
    area = boto.get_item(TableName="seo_service_areas", Key={"business_id": {"S": "acme"},
                                                             "area_id": {"S": "austin-tx"}})
    assert codec.item_hash(area["Item"]) == codec.item_hash(loaded["service_areas"][0])
    for name in ("questionnaires", "prompt_templates"):  # sets and binary inside JSON columns go back exact
        item = loaded[name][0]
        back = boto.get_item(TableName=f"seo_{name}", Key={k: item[k] for k in TABLES[name].key_names})["Item"]
        assert codec.item_hash(back) == codec.item_hash(item), name


def test_sync_to_dynamo_from_another_file_and_one_business(cli, loaded, boto, tmp_path):
    """--from reads another cache file read-only; a business id limits the copy; a non-cache file is refused."""
    assert cli("sync-from-dynamo")[0] == 0
    for name, rows in loaded.items():
        for item in rows:
            boto.delete_item(TableName=f"seo_{name}", Key={k: item[k] for k in TABLES[name].key_names})
    code, out, _ = cli("--json", "sync-to-dynamo", "zeta", "--from", str(tmp_path / "data" / "cache.db"))
    assert code == 0 and json.loads(out)["written"] == 2
    assert [i["business_id"]["S"] for i in boto.scan(TableName="seo_businesses")["Items"]] == ["zeta"]
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    code, _, err = cli("sync-to-dynamo", "--from", str(junk))
    assert code == ExitCode.IOERR and str(junk) in err and "Traceback" not in err


def test_verify_reports_identical_then_the_differing_keys(cli, loaded, boto):
    """verify exits 0 when the cache equals DynamoDB, else 5 listing missing, extra and different keys."""
    assert cli("sync-from-dynamo")[0] == 0
    code, out, _ = cli("--json", "verify")
    assert code == 0 and json.loads(out)["identical"] is True
    boto.put_item(TableName="seo_keywords", Item={"business_id": {"S": "zeta"}, "keyword_id": {"S": "new#es"}})
    boto.delete_item(TableName="seo_keywords", Key={"business_id": {"S": "zeta"}, "keyword_id": {"S": "roofer#en"}})
    boto.update_item(TableName="seo_businesses", Key={"business_id": {"S": "acme"}},
                     UpdateExpression="SET #n = :n", ExpressionAttributeNames={"#n": "name"},
                     ExpressionAttributeValues={":n": {"S": "Acme 2"}})
    code, out, _ = cli("--json", "verify")
    report = json.loads(out)
    assert code == ExitCode.DIFFERENT and report["identical"] is False
    assert report["tables"]["keywords"]["missing"] == [["zeta", "new#es"]]
    assert report["tables"]["keywords"]["extra"] == [["zeta", "roofer#en"]]
    assert report["tables"]["businesses"]["different"] == [["acme"]]
    assert report["tables"]["service_areas"]["identical"] is True
    code, out, _ = cli("--json", "verify", "--table", "service_areas")
    assert code == 0 and list(json.loads(out)["tables"]) == ["service_areas"]


def test_status_shows_tables_streams_and_the_cache(cli, loaded, tmp_path):
    """status reports reachability, each table's stream and count, and the cache's rows and last full sync."""
    assert cli("sync-from-dynamo")[0] == 0
    code, out, _ = cli("--json", "status")
    st = json.loads(out)
    assert code == 0 and st["dynamodb"]["reachable"] is True and st["dynamodb"]["region"] == "us-east-1"
    kw = st["dynamodb"]["tables"]["keywords"]
    assert kw["status"] == "ACTIVE" and kw["view_type"] == "NEW_AND_OLD_IMAGES" and kw["stream_arn"]
    assert kw["item_count"] == 4
    assert st["cache"]["tables"]["keywords"]["rows"] == 3 and st["cache"]["tables"]["keywords"]["last_full_sync"]
    assert st["cache"]["size_bytes"] > 0 and "daemon" not in st


def test_writer_lock_held_is_a_clear_error_naming_the_pid(cli, loaded, tmp_path):
    """With the writer lock held and no daemon answering, sync-from-dynamo exits 75 naming the holder's pid."""
    with WriterLock(tmp_path / "data" / "cache.db"):
        for args in (("sync-from-dynamo",), ("sync-from-dynamo", "acme")):
            code, _, err = cli(*args)
            assert code == ExitCode.TEMPFAIL and f"pid {os.getpid()}" in err and "hint:" in err


def test_missing_tables_name_the_table_and_create_tables(cli, dynamo_endpoint):
    """Before create-tables, a sync names the missing table and suggests create-tables (exit 69)."""
    code, _, err = cli("sync-from-dynamo", "acme")
    assert code == ExitCode.UNAVAILABLE and "seo_" in err and "create-tables" in err and "Traceback" not in err
    code, out, _ = cli("--json", "status")
    assert code == ExitCode.UNAVAILABLE and json.loads(out)["dynamodb"]["tables"]["businesses"]["status"] == "MISSING"


def test_dynamodb_unreachable_is_one_clear_message(tmp_path, capsys):
    """A refused endpoint: exit 69, the endpoint, region and table named, a next step, no traceback."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[aws]\nendpoint_url = "http://127.0.0.1:9"\nregion = "eu-west-3"\n'
                   "max_attempts = 1\nconnect_timeout = 1\n")
    for args in (["create-tables"], ["sync-from-dynamo"], ["list-businesses", "--from-dynamo"], ["verify"]):
        code = run(["--config", str(cfg), *args])
        err = capsys.readouterr().err
        assert code == ExitCode.UNAVAILABLE, args
        assert "127.0.0.1:9" in err and "eu-west-3" in err and "seo_" in err and "hint:" in err
        assert "Traceback" not in err
    assert not (tmp_path / "cache.db").exists()  # nothing was touched before DynamoDB answered
    code = run(["--config", str(cfg), "--json", "status"])
    st = json.loads(capsys.readouterr().out)
    assert code == ExitCode.UNAVAILABLE and st["dynamodb"]["reachable"] is False and "127.0.0.1:9" in st[
        "dynamodb"]["error"]


def test_use_dynamodb_false_refuses_every_dynamodb_command(tmp_path, capsys):
    """--env-file with USE_DYNAMODB=false: the commands that need DynamoDB refuse with exit 78 and say why."""
    env = tmp_path / ".env"
    env.write_text("USE_DYNAMODB=false\nAWS_REGION=us-east-1\n")
    for args in (["create-tables"], ["sync-from-dynamo"], ["sync-to-dynamo"], ["verify"], ["export", "--from-dynamo",
                                                                                            "acme"]):
        code = run(["--data-dir", str(tmp_path), "--env-file", str(env), *args])
        err = capsys.readouterr().err
        assert code == ExitCode.CONFIG and "USE_DYNAMODB=false" in err, args
    code = run(["--data-dir", str(tmp_path), "--env-file", str(env), "--json", "status"])
    assert code == 0 and json.loads(capsys.readouterr().out)["dynamodb"] == {"enabled": False}


def test_with_a_daemon_running_sync_from_dynamo_asks_it_to_resync(cli, loaded, tmp_path):
    """When the daemon holds the writer lock, a full sync-from-dynamo becomes a resync request on its socket."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    with WriterLock(data / "cache.db"):
        daemon = FakeDaemon(data / "seo-sync.sock", {"ok": True, "state": "streaming"})
        try:
            code, out, _ = cli("--json", "sync-from-dynamo")
            assert code == 0 and json.loads(out)["via"] == "daemon"
            code, out, _ = cli("--json", "status")
            assert json.loads(out)["daemon"]["state"] == "streaming"
        finally:
            daemon.close()
    assert daemon.requests == ["resync", "status"]


def test_demo_no_daemon_loads_the_sample_and_syncs_it(dynamo_endpoint, tmp_path, capsys):
    """`seo-sync demo --no-daemon` runs an embedded DynamoDB, loads data/sample and fills the cache (en+es)."""
    code = run(["--data-dir", str(tmp_path / "demo"), "--json", "demo", "--no-daemon", "--port", "0"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["businesses"] >= 10 and summary["rows"] == summary["loaded"]
    reader = Reader.open(tmp_path / "demo" / "cache.db")
    try:
        assert {r["language"] for r in reader.rows(TABLES["keywords"])} == {"en", "es"}
        assert {r["template_id"].split("#")[1] for r in reader.rows(TABLES["prompt_templates"])} >= {"1", "2"}
        assert all(json.loads(r["data"]) for r in reader.rows(TABLES["questionnaires"]))
    finally:
        reader.close()


@pytest.mark.parametrize("writer", [True, False])
def test_demo_serve_keeps_dynamodb_for_a_daemon_of_your_own(tmp_path, capsys, writer):
    """demo --no-daemon --serve --data-dir D: synced into D, demo.env there, DynamoDB served; --no-writer: no writes."""
    data_dir = tmp_path / "own"
    # Tables of their own: this process's moto keeps every earlier test's tables and writes.
    args = ["--json", "--table-prefix", f"serve_{writer}_", "demo", "--no-daemon", "--serve", "--seconds", "1",
            "--port", "0", "--data-dir", str(data_dir)]
    code = run(args + ([] if writer else ["--no-writer"]))
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert code == 0 and summary["rows"] == summary["loaded"] and summary["cache"] == str(data_dir / "cache.db")
    served = summary["served"]["writer"]
    writes = served["edits"] + served["new_keywords"] + served["soft_deletes"] + served["conflicts"]
    assert (writes >= 1) if writer else (writes == 0), served
    env_file = (data_dir / "demo.env").read_text()
    assert "export AWS_DEFAULT_REGION=us-east-1" in env_file and f"export SEO_CACHE_DB={data_dir}/cache.db" in env_file
    assert "start and stop your own `seo-sync run`" in captured.err


def test_demo_serve_needs_no_daemon(capsys):
    """--serve without --no-daemon is a usage error (64) that says to add --no-daemon."""
    assert run(["demo", "--serve", "--port", "0"]) == ExitCode.USAGE
    assert "add --no-daemon" in capsys.readouterr().err


def test_sample_data_synced_by_the_demo_verifies_identical(cli, settings):
    """The demo's load + full sync leaves a cache that `verify` finds identical to DynamoDB."""
    summary = run_demo_sync(embedded_settings(settings, settings.aws.endpoint_url), Source(settings.aws, "seo_"))
    assert summary["tables_created"] == list(TABLES)
    code, out, _ = cli("--json", "verify")
    report = json.loads(out)
    assert code == 0 and report["identical"] and report["tables"]["keywords"]["cache_count"] == summary["loaded"][
        "keywords"]


def test_wrong_region_names_the_region_and_the_next_step(loaded, tmp_path, dynamo_endpoint, capsys):
    """Tables made in us-east-1, settings saying eu-west-1: exit 69 naming the table and region, hint to check it."""
    cfg = tmp_path / "other-region.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "r"}"\n[aws]\nendpoint_url = "{dynamo_endpoint}"\nregion = "eu-west-1"\n')
    code = run(["--config", str(cfg), "sync-from-dynamo"])
    err = capsys.readouterr().err
    assert code == ExitCode.UNAVAILABLE and "seo_businesses" in err and "eu-west-1" in err and "region" in err
    assert "Traceback" not in err


def test_missing_credentials_exit_77_with_how_to_set_them(config, monkeypatch, tmp_path, capsys):
    """No AWS credentials anywhere: exit 77 (NOPERM) and a hint naming the ways to provide them."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code = run(["--config", str(config), "create-tables"])
    err = capsys.readouterr().err
    assert code == ExitCode.NOPERM and "credentials" in err and "--env-file" in err and "Traceback" not in err
