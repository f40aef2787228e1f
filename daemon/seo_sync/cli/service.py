"""Daemon commands: `run`, `health`, `resync`."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from seo_sync.cache.connect import private_dir
from seo_sync.cli.kit import AppContext, pass_app, root
from seo_sync.config import Settings
from seo_sync.errors import CannotCreate, DaemonUnavailable, ExitCode, SocketDenied
from seo_sync.logs import url_secret

PRIVATE_UMASK = 0o027


def prepare_directories(settings: Settings) -> None:
    """The data directory (private, 0750) and the status socket's directory, made if missing:
    CannotCreate (exit 73) naming the path and what to do when one cannot be, never a traceback."""
    for what, path, make in (("data directory", settings.data_dir, private_dir),
                             ("status socket directory", settings.socket_path.parent, _plain_dir)):
        try:
            make(path)
        except (FileExistsError, NotADirectoryError):
            raise CannotCreate(f"the {what} {path} is not a directory (a file is in the way)",
                               hint=f"remove or move it, or choose another path for the {what}") from None
        except OSError as e:
            raise CannotCreate(f"cannot create the {what} {path}: {e.strerror or e}",
                               hint=f"create it for the service user (mkdir -p {path}), or choose another "
                                    "path (--data-dir, --socket)") from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise CannotCreate(f"the {what} {path} is not writable by uid {os.geteuid()}",
                               hint=f"chown it to the service user, or choose another path for the {what}")


def _plain_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o750)


@root.command()
@pass_app
def run(app: AppContext) -> int:
    """Run the sync daemon in the foreground (systemd: Type=notify)."""
    from seo_sync.logs import configure_logging
    from seo_sync.service.lifecycle import Service

    settings = app.settings()
    # Whatever umask it inherits (022 outside systemd, even 000): nothing it makes is open to other users.
    os.umask(os.umask(0) | PRIVATE_UMASK)
    prepare_directories(settings)
    aws = settings.aws
    secrets = [v.get_secret_value() for v in (aws.access_key_id, aws.secret_access_key, aws.session_token) if v]
    secrets += [p for p in (url_secret(aws.endpoint_url),) if p]
    configure_logging(settings.log_format, "DEBUG" if app.verbose else settings.log_level, secrets=secrets)
    status = Service(settings, reload_settings=app.load_settings).run()
    # The stop is complete and logged with this status. Worker pools (the scheduler's, the status
    # socket's) are threads Python joins at exit, and one may still sit in an AWS call that only
    # its timeouts end (read timeout times attempts: 30 s by default), which would hold the
    # process past systemd's stop timeout; so the process ends here, after flushing what it wrote.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


@root.command()
@pass_app
def health(app: AppContext) -> int:
    """Ask the daemon whether it is healthy: exit 0 healthy, 1 degraded, 2 not running, 77 no access."""
    from seo_sync.control.client import request_json

    settings = app.settings()
    try:
        answer = request_json(settings.socket_path, "health", timeout=2.0)
    except SocketDenied as e:  # whichever route named the socket (--socket, SEO_SYNC_SOCKET, the config)
        why = e.message
        app.emit({"ok": False, "running": None, "reasons": [why]}, lambda: click.echo(f"no access: {why}"))
        return int(ExitCode.NOPERM)
    except DaemonUnavailable as e:
        why = e.message
        app.emit({"ok": False, "running": False, "reasons": [why]}, lambda: click.echo(f"down: {why}"))
        return int(ExitCode.DOWN)
    ok = bool(answer.get("ok"))
    app.emit(answer, lambda: click.echo(("healthy" if ok else "degraded") + (
        "" if ok else ": " + "; ".join(answer.get("reasons", [])))))
    return int(ExitCode.OK if ok else ExitCode.FAILURE)


@root.command()
@click.argument("table", required=False)
@pass_app
def resync(app: AppContext, table: str | None) -> int:
    """Ask the running daemon for a full resync of one table or all (same as SIGHUP)."""
    from seo_sync.control.client import request_json

    settings = app.settings()
    answer = request_json(settings.socket_path, "resync" + (f" {table}" if table else ""), timeout=5.0)
    app.emit(answer, lambda: click.echo(json.dumps(answer)))
    return int(ExitCode.OK if answer.get("ok") else ExitCode.FAILURE)
