"""The command line as a newcomer meets it: options after the subcommand, piped tables, demo hints."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest

from seo_sync.cli.demo import DEFAULT_PORT
from seo_sync.cli.kit import command_name
from seo_sync.cli.main import root
from seo_sync.config import Settings
from seo_sync.demo.environment import check_port_free, demo_environment, export_lines, write_env_file
from seo_sync.errors import UsageError


def _parsed(args: list[str]) -> list[str]:
    """The argument list the root group hands to click's parser."""
    ctx = click.Context(root)
    return root._hoist_root_options(ctx, args)  # type: ignore[attr-defined]


def test_root_options_after_the_subcommand_move_in_front_of_it() -> None:
    """`list-businesses --json --data-dir D` is read as `--json --data-dir D list-businesses`."""
    assert _parsed(["list-businesses", "--json", "--data-dir", "D", "--from-dynamo"]) == \
        ["--json", "--data-dir", "D", "list-businesses", "--from-dynamo"]
    assert _parsed(["--json", "export", "b1", "--data-dir=D", "-o", "x"]) == \
        ["--json", "--data-dir=D", "export", "b1", "-o", "x"]


def test_a_subcommands_own_option_and_args_after_double_dash_stay_put() -> None:
    """`backups list --json` keeps its own --json; nothing after `--` moves."""
    assert _parsed(["backups", "list", "--json"]) == ["backups", "list", "--json"]
    assert _parsed(["export", "--", "--json"]) == ["export", "--", "--json"]


def test_json_after_the_subcommand_prints_json(tmp_path: Path) -> None:
    """`seo-sync check-config --json` prints JSON instead of "No such option"."""
    res = subprocess.run([sys.executable, "-m", "seo_sync", "check-config", "--json", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "AWS_REGION": "eu-west-1"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.lstrip().startswith("{") and f'"data_dir": "{tmp_path}"' in res.stdout


def test_a_taken_port_is_a_usage_error_naming_another_port() -> None:
    """The demo refuses a port a listener holds with a hint, instead of hanging in the server thread."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(UsageError) as err:
            check_port_free(port)
    finally:
        holder.close()
    assert str(port) in err.value.message and f"--port {port + 1}" in (err.value.hint or "")
    check_port_free(port)  # free again once the listener is gone
    assert DEFAULT_PORT == 8000


def test_the_env_file_holds_the_export_lines_of_the_demo(tmp_path: Path) -> None:
    """demo.env is 0600 and, sourced by a shell, sets the endpoint, both region names, keys, data dir, socket, cache."""
    settings = Settings(data_dir=tmp_path / "data dir")
    env = demo_environment(settings, "http://127.0.0.1:8000")
    path = write_env_file(settings, env)
    assert path == tmp_path / "data dir" / "demo.env" and (path.stat().st_mode & 0o777) == 0o600
    assert export_lines(env)[0] == "export AWS_ENDPOINT_URL=http://127.0.0.1:8000"
    shown = subprocess.run(["sh", "-c", f'. "{path}" && env'], capture_output=True, text=True, timeout=10,
                           env={"PATH": os.environ["PATH"]}).stdout.splitlines()
    for line in (f"SEO_SYNC_DATA_DIR={tmp_path / 'data dir'}", f"SEO_SYNC_SOCKET={tmp_path / 'data dir'}/seo-sync.sock",
                 "AWS_ENDPOINT_URL=http://127.0.0.1:8000", "AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
                 f"SEO_CACHE_DB={tmp_path / 'data dir'}/cache.db", "AWS_ACCESS_KEY_ID=testing"):
        assert line in shown


def test_hints_name_the_venv_script_when_it_is_not_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With .venv/bin off PATH the hint is `.venv/bin/seo-sync`; on PATH it is the bare name."""
    bindir = tmp_path / ".venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "seo-sync").write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "executable", str(bindir / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name() == ".venv/bin/seo-sync"
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin")
    assert command_name() == "seo-sync"


def test_a_piped_table_is_tsv_with_whole_cells(capsys: pytest.CaptureFixture[str]) -> None:
    """Not on a terminal: a header line, then one tab-separated line a row, nothing cut to 80 columns."""
    from seo_sync.cli.kit import AppContext

    long_id = "ace-auto-repair-of-the-very-long-business-name-" + "x" * 80
    AppContext().table("2 businesses", ["business_id", "name"], [[long_id, "Ace\tAuto"], ["b2", None]])
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["business_id\tname", f"{long_id}\tAce Auto", "b2\t"]
    assert captured.err.strip() == "2 businesses"


def test_check_config_warns_when_no_region_resolves(tmp_path: Path) -> None:
    """No region anywhere: check-config still exits 0 but warns that DynamoDB commands will fail."""
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    bare["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    args = [sys.executable, "-m", "seo_sync", "--data-dir", str(tmp_path), "check-config"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=60, env=bare)
    assert res.returncode == 0 and "warning: no AWS region configured" in res.stderr, res.stderr
    assert "(none resolves)" in res.stdout
    res = subprocess.run(args, capture_output=True, text=True, timeout=60, env={**bare, "AWS_REGION": "eu-west-1"})
    assert res.returncode == 0 and "warning" not in res.stderr and "eu-west-1" in res.stdout


def test_the_files_the_demo_leaves_in_data_are_git_ignored() -> None:
    """`make demo` leaves no untracked files: its cache, log, env file and socket are ignored."""
    repo = Path(__file__).resolve().parents[2]
    names = ["data/cache.db", "data/cache.db-wal", "data/demo-daemon.log", "data/demo.env", "data/seo-sync.sock",
             "data/protection.db", "data/backups/x.json"]
    res = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=repo, capture_output=True, text=True,
                         timeout=30)
    assert sorted(res.stdout.split()) == sorted(names), res.stdout + res.stderr


def test_status_without_a_region_says_why_instead_of_question_marks(tmp_path: Path) -> None:
    """No region: `status` says NOT reachable and why (exit 69), never `at ? (?)`."""
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    bare["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    res = subprocess.run([sys.executable, "-m", "seo_sync", "--data-dir", str(tmp_path), "status"],
                         capture_output=True, text=True, timeout=60, env=bare)
    assert res.returncode == 69, res.stdout + res.stderr
    assert res.stdout.startswith("DynamoDB: NOT reachable\n  no AWS region configured\n  hint: set AWS_REGION")
    assert "?" not in res.stdout.splitlines()[0]
