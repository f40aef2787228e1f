"""The layers under the validated settings: the config file's path, the SEO_SYNC_* environment and
the platform's .env file, each read into plain nested dicts that `config.load_settings` merges."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from seo_sync.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/seo-sync/seo-sync.toml")
ENV_PREFIX = "SEO_SYNC_"
# Flat environment names that other tools rely on, for settings that live in a section.
ENV_ALIASES = {"IDLE_POLL_INTERVAL": ("stream", "idle_poll_interval")}


def deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        rest = name[len(ENV_PREFIX):]
        if rest in ENV_ALIASES:
            section, key = ENV_ALIASES[rest]
            out.setdefault(section, {})[key] = value
        elif "__" in rest:
            section, key = rest.lower().split("__", 1)
            out.setdefault(section, {})[key] = value
        else:
            out[rest.lower()] = value
    return out


# The platform .env's AWS variables and the [aws] setting each one sets (pairs, not a dict: a
# security linter reads a dict whose key says SECRET as a hard-coded password).
ENV_FILE_AWS_KEYS = (
    ("AWS_ACCESS_KEY_ID", "access_key_id"), ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    ("AWS_SESSION_TOKEN", "session_token"), ("AWS_REGION", "region"), ("AWS_DEFAULT_REGION", "region"),
    ("AWS_ENDPOINT_URL", "endpoint_url"), ("AWS_ENDPOINT_URL_DYNAMODB", "endpoint_url"), ("AWS_PROFILE", "profile"),
)


def from_env_file(path: Path) -> dict[str, Any]:
    """The platform server's .env: AWS_* settings and USE_DYNAMODB."""
    if not path.is_file():
        raise ConfigError(f"env file {path} does not exist", hint="name the platform's packages/server/.env")
    values = dotenv_values(path)
    aws: dict[str, Any] = {}
    for env_name, key in ENV_FILE_AWS_KEYS:
        if values.get(env_name):
            aws[key] = values[env_name]
    out: dict[str, Any] = {"aws": aws} if aws else {}
    if values.get("USE_DYNAMODB") is not None:
        raw = str(values["USE_DYNAMODB"]).strip()  # a boolean or an error naming it (exit 78), never a guess
        out["use_dynamodb"] = raw if raw else False
    return out


def config_path_from(env: Mapping[str, str], explicit: Path | None) -> Path | None:
    """The TOML file to read: --config, else SEO_SYNC_CONFIG, else the system path if it exists."""
    if explicit is not None:
        return explicit
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def env_origins(env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Which environment variable set each setting (by its location), so errors can name it."""
    out: dict[tuple[str, ...], str] = {}
    for name in env:
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        rest = name[len(ENV_PREFIX):]
        loc = ENV_ALIASES.get(rest) or tuple(rest.lower().split("__", 1))
        out[loc] = name
    return out
