"""What a second shell needs to reach a running demo: its endpoint, the `export` lines, an env file.

The demo's DynamoDB is a moto server inside the demo process on a fixed loopback port, so any
command of `seo-sync` can run against it from another shell once these variables are set.
"""

from __future__ import annotations

import errno
import os
import shlex
import socket
from pathlib import Path

from seo_sync.config import Settings
from seo_sync.demo.embedded import FAKE_CREDENTIALS
from seo_sync.errors import UsageError

ENV_FILE_NAME = "demo.env"
# The cache file for a reader (the Node reader's CacheReader.open). Not SEO_SYNC_*: every variable
# of that prefix is a setting of seo-sync, and the cache's path is not one (it is the data dir's).
CACHE_VARIABLE = "SEO_CACHE_DB"


def check_port_free(port: int) -> None:
    """Raise UsageError when the loopback `port` is already taken (the server would never start)."""
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # The embedded server sets SO_REUSEADDR too, so only a live listener counts as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on 127.0.0.1 is already in use (another demo, or another server)",
                             hint=f"stop it, or pick another port: seo-sync demo --port {port + 1}") from None
        raise UsageError(f"cannot use port {port} on 127.0.0.1: {e.strerror}",
                         hint="pick another port with --port") from None
    finally:
        probe.close()


def demo_environment(settings: Settings, endpoint: str) -> dict[str, str]:
    """The environment variables that point any `seo-sync` command at the running demo."""
    # AWS_DEFAULT_REGION too: AWS CLI v1 reads only that one, v2 and the SDKs either.
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": FAKE_CREDENTIALS["AWS_REGION"],
           "AWS_DEFAULT_REGION": FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
           "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
           "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
           "SEO_SYNC_DATA_DIR": str(settings.data_dir.resolve()),
           "SEO_SYNC_SOCKET": str(settings.socket_path.resolve()),
           CACHE_VARIABLE: str(settings.cache_path.resolve())}
    if settings.table_prefix != Settings().table_prefix:
        env["SEO_SYNC_TABLE_PREFIX"] = settings.table_prefix
    return env


def export_lines(env: dict[str, str]) -> list[str]:
    """One `export NAME=value` line per variable, quoted for a POSIX shell."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


def write_env_file(settings: Settings, env: dict[str, str]) -> Path:
    """Write the export lines to `<data dir>/demo.env` (0600: it holds the demo's fake keys); its path."""
    path = settings.data_dir / ENV_FILE_NAME
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    text = "# Written by `seo-sync demo`: `. " + str(path) + "` in another shell reaches the running demo.\n"
    text += "".join(line + "\n" for line in export_lines(env))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path

