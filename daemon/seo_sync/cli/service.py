"""Daemon commands: `run`, `health`, `resync`."""

from __future__ import annotations

import json
import logging
import os
import sys

import click

from seo_sync.cli.kit import AppContext, pass_app, root
from seo_sync.errors import DaemonUnavailable, ExitCode


@root.command()
@pass_app
def run(app: AppContext) -> int:
    """Run the sync daemon in the foreground (systemd: Type=notify)."""
    from seo_sync.logs import configure_logging
    from seo_sync.service.lifecycle import Service

    settings = app.settings()
    aws = settings.aws
    secrets = [v.get_secret_value() for v in (aws.access_key_id, aws.secret_access_key, aws.session_token) if v]
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
    """Ask the daemon whether it is healthy: exit 0 healthy, 1 degraded, 2 not running."""
    from seo_sync.control.client import request_json

    settings = app.settings()
    try:
        answer = request_json(settings.socket_path, "health", timeout=2.0)
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
