"""The small ones: credentials in an endpoint URL masked, USE_DYNAMODB a boolean or 78, check-config as strict
as run, health refused its socket exits 77."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from seo_sync.cli.main import run
from seo_sync.config import load_settings
from seo_sync.errors import ConfigError
from seo_sync.logs import mask_url

REPO = Path(__file__).resolve().parents[2]


def test_an_endpoint_url_password_is_masked() -> None:
    """http://key:secret@host prints as http://key:***@host; a URL without one is unchanged."""
    assert mask_url("http://key:secret@localhost:9/x") == "http://key:***@localhost:9/x"
    assert mask_url("http://localhost:9") == "http://localhost:9"
    s = load_settings(None, env={"SEO_SYNC_AWS__ENDPOINT_URL": "http://key:hunter2@localhost:9"})
    assert "hunter2" not in json.dumps(s.redacted())


def test_print_and_check_config_never_show_the_url_password(tmp_path: Path, monkeypatch, capsys) -> None:
    """print-config --json and check-config show the endpoint with its password masked."""
    monkeypatch.setenv("SEO_SYNC_AWS__ENDPOINT_URL", "http://key:hunter2@localhost:9")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for args in (["--json", "print-config"], ["check-config"]):
        assert run(["--data-dir", str(tmp_path / "d"), *args]) == 0
        out, err = capsys.readouterr()
        assert "hunter2" not in out + err and "key:***@localhost" in out


def test_use_dynamodb_other_than_a_boolean_is_exit_78(tmp_path: Path) -> None:
    """USE_DYNAMODB=maybe in --env-file is a ConfigError naming it, not silently false."""
    env_file = tmp_path / ".env"
    env_file.write_text("USE_DYNAMODB=maybe\n")
    with pytest.raises(ConfigError, match="use_dynamodb = 'maybe'") as e:
        load_settings(None, env={}, env_file=env_file)
    assert e.value.exit_code == 78
    env_file.write_text("USE_DYNAMODB=false\n")
    assert load_settings(None, env={}, env_file=env_file).use_dynamodb is False


def test_check_config_refuses_what_run_refuses(tmp_path: Path, monkeypatch, capsys) -> None:
    """A cron expression run would refuse, and a data dir blocked by a file: check-config fails too."""
    monkeypatch.setenv("SEO_SYNC_MAINTENANCE__PRUNE_BACKUPS_CRON", "99 * * * *")
    assert run(["--data-dir", str(tmp_path / "d"), "check-config"]) == 78
    assert "prune_backups_cron" in capsys.readouterr().err
    monkeypatch.delenv("SEO_SYNC_MAINTENANCE__PRUNE_BACKUPS_CRON")
    (tmp_path / "file").write_text("x")
    assert run(["--data-dir", str(tmp_path / "file" / "d"), "check-config"]) == 73


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the client as another uid")
def test_health_on_a_socket_it_may_not_open_exits_77_by_either_route(tmp_path: Path) -> None:
    """`health --socket P` and SEO_SYNC_SOCKET=P on a socket nobody may open: both exit 77, one line."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    path = locked / "s.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    os.chmod(tmp_path, 0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "seo_sync"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEO_SYNC_")}
    env["PYTHONPATH"] = str(REPO / "daemon")
    try:
        for extra, more_env in ((["health", "--socket", str(path)], {}), (["health"], {"SEO_SYNC_SOCKET": str(path)})):
            res = subprocess.run([*nobody, "--data-dir", "/tmp", *extra], env={**env, **more_env}, cwd="/",
                                 capture_output=True, text=True, timeout=60)
            assert res.returncode == 77, (extra, res.stdout, res.stderr)
            assert "permission denied" in res.stdout and "Traceback" not in res.stderr
    finally:
        listener.close()
