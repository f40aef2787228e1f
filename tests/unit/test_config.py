"""Settings: layers, unknown keys, exit 78 with field/value/why, secrets masked, the platform's .env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seo_sync.cli.main import run
from seo_sync.config import load_settings
from seo_sync.errors import ConfigError, ExitCode

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
TOKEN = "FQoGZXIvYXdzEXAMPLETOKEN"


def write(path: Path, text: str) -> Path:
    """Write `text` to `path` and return it."""
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_match_the_documented_table():
    """With nothing set: data dir ./data, prefix seo_, socket in the data dir, idle poll 1 s, log format auto."""
    s = load_settings(None, env={})
    assert s.data_dir == Path("data") and s.table_prefix == "seo_" and s.log_format == "auto"
    assert s.socket_path == Path("data/seo-sync.sock") and s.cache_path == Path("data/cache.db")
    assert s.stream.idle_poll_interval == 1.0 and s.use_dynamodb is True


def test_layers_file_then_environment_then_flags(tmp_path):
    """Defaults < TOML file < SEO_SYNC_* environment < flags, for top-level and section settings."""
    cfg = write(tmp_path / "c.toml", 'table_prefix = "file_"\ndata_dir = "/from/file"\n'
                                     "[stream]\nidle_poll_interval = 2.0\n[fullsync]\nscan_segments = 2\n")
    s = load_settings(cfg, env={})
    assert (s.table_prefix, s.data_dir, s.stream.idle_poll_interval, s.fullsync.scan_segments) == (
        "file_", Path("/from/file"), 2.0, 2)
    env = {"SEO_SYNC_TABLE_PREFIX": "env_", "SEO_SYNC_IDLE_POLL_INTERVAL": "3", "SEO_SYNC_FULLSYNC__SCAN_SEGMENTS": "8"}
    s = load_settings(cfg, env=env)
    assert (s.table_prefix, s.data_dir, s.stream.idle_poll_interval, s.fullsync.scan_segments) == (
        "env_", Path("/from/file"), 3.0, 8)
    s = load_settings(cfg, env=env, overrides={"table_prefix": "flag_", "data_dir": None})
    assert s.table_prefix == "flag_" and s.data_dir == Path("/from/file")


def test_config_file_named_by_the_environment(tmp_path):
    """SEO_SYNC_CONFIG names the file when --config is not given; --config wins over it."""
    a = write(tmp_path / "a.toml", 'table_prefix = "a_"\n')
    b = write(tmp_path / "b.toml", 'table_prefix = "b_"\n')
    assert load_settings(None, env={"SEO_SYNC_CONFIG": str(a)}).table_prefix == "a_"
    assert load_settings(b, env={"SEO_SYNC_CONFIG": str(a)}).table_prefix == "b_"


@pytest.mark.parametrize("text, field", [("bogus = 1\n", "bogus"), ("[aws]\nregoin = 'us-east-1'\n", "aws.regoin"),
                                         ("[nosuchsection]\nx = 1\n", "nosuchsection")])
def test_unknown_keys_are_errors(tmp_path, text, field):
    """A key the settings do not know is a ConfigError naming it (exit 78), never silently ignored."""
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path / "c.toml", text), env={})
    assert field in exc.value.message and exc.value.exit_code == ExitCode.CONFIG
    with pytest.raises(ConfigError):
        load_settings(None, env={"SEO_SYNC_" + field.upper().replace(".", "__"): "1"})


def test_bad_value_names_the_field_the_value_and_why(tmp_path):
    """An out-of-range value: the message names the dotted field, the value and the rule it breaks."""
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path / "c.toml", "[stream]\nidle_poll_interval = 0.001\n"), env={})
    msg = exc.value.message
    assert "stream.idle_poll_interval" in msg and "0.001" in msg and "greater than or equal to 0.05" in msg
    assert "c.toml" in msg


def test_bad_table_prefix_and_bad_toml_are_clear(tmp_path):
    """A prefix with SQL-ish characters and a file that is not TOML are both ConfigErrors."""
    with pytest.raises(ConfigError, match="table_prefix"):
        load_settings(None, env={"SEO_SYNC_TABLE_PREFIX": "seo; DROP"})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path / "c.toml", "this is = = not toml"), env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})


def test_cli_bad_config_exits_78_with_the_field_and_no_traceback(tmp_path, capsys):
    """`seo-sync --config bad.toml check-config` exits 78 and says which field, which value, and why."""
    cfg = write(tmp_path / "c.toml", "[fullsync]\nscan_segments = 999\n")
    code = run(["--config", str(cfg), "check-config"])
    err = capsys.readouterr().err
    assert code == ExitCode.CONFIG == 78
    assert "fullsync.scan_segments" in err and "999" in err and "less than or equal to 64" in err
    assert "Traceback" not in err


def test_check_config_reports_the_effective_essentials(tmp_path, capsys):
    """check-config exits 0 and shows the config file, data dir, prefix and endpoint in use."""
    cfg = write(tmp_path / "c.toml", f'data_dir = "{tmp_path}"\ntable_prefix = "t_"\n[aws]\nregion = "eu-west-1"\n')
    assert run(["--config", str(cfg), "--json", "check-config"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["config_file"] == str(cfg) and out["table_prefix"] == "t_"
    assert out["region"] == "eu-west-1" and out["data_dir_exists"] is True


def test_secrets_are_masked_in_print_config_and_errors(tmp_path, capsys):
    """Keys from the .env never appear in print-config (text or JSON) or in a validation error."""
    env = write(tmp_path / ".env", f"AWS_ACCESS_KEY_ID={KEY_ID}\nAWS_SECRET_ACCESS_KEY={SECRET}\n"
                                   f"AWS_SESSION_TOKEN={TOKEN}\nAWS_REGION=us-west-2\nUSE_DYNAMODB=true\n")
    for args in (["print-config"], ["--json", "print-config"], ["check-config"]):
        assert run(["--env-file", str(env), *args]) == 0
        out = capsys.readouterr().out
        assert SECRET not in out and KEY_ID not in out and TOKEN not in out
    assert run(["--env-file", str(env), "--json", "print-config"]) == 0
    aws = json.loads(capsys.readouterr().out)["aws"]
    assert aws["secret_access_key"] == "**********" and aws["region"] == "us-west-2"
    cfg = write(tmp_path / "c.toml", "[aws]\nsecret_access_key = 123456789\nmax_attempts = 0\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, env={})
    assert "123456789" not in exc.value.message and "aws.secret_access_key" in exc.value.message


def test_env_file_maps_aws_settings_and_use_dynamodb(tmp_path):
    """The platform's .env: AWS_* become aws.*, USE_DYNAMODB=false turns DynamoDB off."""
    env = write(tmp_path / ".env", "AWS_REGION=eu-central-1\nAWS_ENDPOINT_URL=http://localhost:8000\n"
                                   "USE_DYNAMODB=false\n")
    s = load_settings(None, env={}, env_file=env)
    assert s.aws.region == "eu-central-1" and s.aws.endpoint_url == "http://localhost:8000"
    assert s.use_dynamodb is False
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(None, env={}, env_file=tmp_path / "nope.env")


def test_use_dynamodb_false_refuses_with_a_clear_message(tmp_path, capsys):
    """With USE_DYNAMODB=false in the named .env, create-tables refuses (exit 78) and says how to fix it."""
    env = write(tmp_path / ".env", "USE_DYNAMODB=false\n")
    code = run(["--data-dir", str(tmp_path), "--env-file", str(env), "create-tables"])
    err = capsys.readouterr().err
    assert code == ExitCode.CONFIG and "USE_DYNAMODB=false" in err and "USE_DYNAMODB=true" in err


def test_an_unknown_key_close_to_a_known_one_gets_a_did_you_mean(tmp_path):
    """A misspelt key names the setting it is close to, in the file's and the environment's spelling."""
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path / "c.toml", "[aws]\nregoin = 'us-east-1'\n"), env={})
    assert "did you mean 'aws.region'?" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        load_settings(None, env={"SEO_SYNC_STREAM__LAG_ALRM": "5"})
    assert "SEO_SYNC_STREAM__LAG_ALRM" in exc.value.message
    assert "did you mean SEO_SYNC_STREAM__LAG_ALARM?" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path / "c.toml", "zzz = 1\n"), env={})
    assert "did you mean" not in exc.value.message  # nothing close: no guess


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path):
    """A bad value set by an environment variable names that variable, not only the dotted field."""
    for name, field in (("SEO_SYNC_STREAM__LAG_ALARM", "stream.lag_alarm"),
                        ("SEO_SYNC_IDLE_POLL_INTERVAL", "stream.idle_poll_interval"),
                        ("SEO_SYNC_TABLE_PREFIX", "table_prefix")):
        with pytest.raises(ConfigError) as exc:
            load_settings(None, env={name: "not valid!"})
        assert f"{field} (environment variable {name}) = 'not valid!'" in exc.value.message


@pytest.mark.parametrize("args", [["status"], ["verify"]])
def test_unknown_aws_profile_exits_78_with_one_line_and_no_traceback(tmp_path, monkeypatch, capsys, args):
    """AWS_PROFILE naming no profile in the AWS files: a configuration error that names the profile and
    says what to do (botocore raises ProfileNotFound while the session is built, before any call)."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(write(tmp_path / "aws-config", "[profile other]\nregion = eu-west-1\n")))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(write(tmp_path / "aws-credentials", "")))
    monkeypatch.setenv("AWS_PROFILE", "nope")
    code = run(["--data-dir", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == ExitCode.CONFIG
    assert "Traceback" not in err and "ProfileNotFound" not in err
    assert err.splitlines()[0] == "seo-sync: AWS profile 'nope' not found"
    assert "~/.aws/config" in err and "unset it" in err
