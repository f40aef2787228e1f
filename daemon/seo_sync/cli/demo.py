"""`seo-sync demo`: the daemon on an embedded local DynamoDB with sample data and a simulated writer.

The embedded DynamoDB listens on a fixed loopback port (8000 unless `--port`), and the demo prints,
and writes to `<data dir>/demo.env`, the `export` lines that let a second shell run any command
against it while it runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from seo_sync.aws.tables import Source
from seo_sync.cli.data import Bars
from seo_sync.cli.kit import AppContext, command_name, pass_app, root
from seo_sync.config import Settings
from seo_sync.errors import ExitCode, UsageError
from seo_sync.schema import TABLES

DEFAULT_PORT = 8000  # fixed, so the export lines a newcomer copied keep working across demo runs


@root.command()
@click.option("--no-daemon", is_flag=True, help="Only load the sample data and run one full sync, then stop.")
@click.option("--serve", is_flag=True,
              help="With --no-daemon: after the sync keep the DynamoDB (and the writer) running for a daemon of "
                   "your own, until Ctrl-C or --seconds.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Loopback port of the embedded DynamoDB (0: any free port).")
@click.option("--seconds", type=float, default=None,
              help="Stop after this long (default: run until Ctrl-C); with --fleet, counted once every host is ready.")
@click.option("--fleet", type=click.IntRange(1, 5), default=None,
              help="N daemons reading one Kinesis stream (polling), fed by a relay playing DynamoDB's part.")
@click.option("--no-writer", is_flag=True,
              help="No simulated writer: the data changes only when you write (the daemon still streams).")
@click.option("--data-dir", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Where the demo's cache, socket, log and demo.env go (same as seo-sync --data-dir).")
@pass_app
def demo(app: AppContext, no_daemon: bool, serve: bool, port: int, seconds: float | None, fleet: int | None,
         no_writer: bool, data_dir: Path | None) -> int:
    """The daemon on an embedded local DynamoDB (moto) with the sample data and a simulated writer."""
    if data_dir is not None:
        app.data_dir = data_dir
    if serve and not no_daemon:
        raise UsageError("--serve keeps the DynamoDB running for a daemon of your own", hint="add --no-daemon")
    try:
        from seo_sync.demo.embedded import EmbeddedDynamo, embedded_settings
        from seo_sync.demo.environment import check_port_free
    except ModuleNotFoundError as e:
        raise UsageError(f"the demo needs moto ({e.name} is missing)", hint="pip install 'seo-sync[demo]'") from None
    check_port_free(port)
    server = EmbeddedDynamo(port).start()
    try:
        s = embedded_settings(app.settings(), server.endpoint)
        if fleet is not None:
            return _fleet_demo(app, s, server.endpoint, fleet, seconds)
        if not no_daemon:
            return _live_demo(app, s, server.endpoint, seconds, writer=not no_writer)
        summary, show = _sync_demo(app, s, server.endpoint, serve, seconds, writer=not no_writer)
    finally:
        server.stop()
    app.emit(summary, show)
    return ExitCode.OK


def _fleet_demo(app: AppContext, s: Settings, endpoint: str, hosts: int, seconds: float | None) -> int:
    """`--fleet N`: N daemons on one Kinesis stream; DIFFERENT unless every cache equals DynamoDB."""
    from seo_sync.demo.fleet import run_fleet_demo

    result = run_fleet_demo(s, endpoint, app.err_console, hosts, seconds)
    app.emit(result, lambda: click.echo(f"hosts identical to DynamoDB: {result['identical_to_dynamodb']}; "
                                        f"data: {', '.join(result['data_dirs'])}"))
    return ExitCode.OK if all(result["identical_to_dynamodb"]) else ExitCode.DIFFERENT


def _live_demo(app: AppContext, s: Settings, endpoint: str, seconds: float | None, writer: bool) -> int:
    """The default: the daemon streaming the writer's edits, shown live; FAILURE if it stopped badly."""
    from seo_sync.demo.live import run_live_demo
    from seo_sync.demo.view import DemoView

    # The view goes where the output goes (stdout: `make demo | tee demo.txt` records it), or
    # to stderr when stdout is for the --json summary alone.
    view = DemoView(app.err_console) if app.json_output else DemoView(Console(), fallback=app.err_console)
    _show_second_shell(view.say, s, endpoint)
    summary = run_live_demo(s, endpoint, view, seconds, writer=writer)
    _emit_even_without_stdout(app, summary, lambda: _live_summary(app, summary))
    stopped_well = summary["daemon_exit_code"] in (0, None)  # None: Ctrl-C came before it started
    return ExitCode.OK if stopped_well else ExitCode.FAILURE


def _sync_demo(app: AppContext, s: Settings, endpoint: str, serve: bool, seconds: float | None,
               writer: bool) -> tuple[dict[str, Any], Callable[[], None]]:
    """`--no-daemon`: load the sample data and sync it once (with `--serve`, then keep DynamoDB up);
    the summary and how to show it."""
    from seo_sync.demo.embedded import run_demo_sync

    source = Source(s.aws, s.table_prefix)
    with Bars(app) as bars:
        summary = run_demo_sync(s, source, progress=bars.add)

    def human() -> None:
        app.table(f"demo: {summary['businesses']} businesses from the sample data, synced in "
                  f"{summary['seconds']} s", ["table", "items loaded", "rows in cache"],
                  ((n, summary["loaded"].get(n, 0), summary["rows"].get(n, 0)) for n in TABLES))
        click.echo(f"cache: {summary['cache']}\nnext:  {command_name()} --data-dir {s.data_dir} list-businesses")

    if not serve:
        return summary, human
    from seo_sync.demo.serve import serve_until_stopped

    human_out = app.err_console if app.json_output else Console()
    if not app.json_output:
        human()  # what is loaded and synced, before the wait

    # Whole lines (soft_wrap): an export line cut in two would not paste into a shell.
    def say(line: str) -> None:
        human_out.print(line, markup=False, highlight=False, soft_wrap=True)

    _show_second_shell(say, s, endpoint)
    summary["served"] = serve_until_stopped(source, seconds, writer=writer, say=say)
    return summary, lambda: _served_line(summary)


def _served_line(summary: dict[str, Any]) -> None:
    w = summary["served"]["writer"]
    click.echo(f"served {summary['served']['served_seconds']:.0f} s; the writer made {w['edits']} edits, "
               f"{w['new_keywords']} new keywords, {w['soft_deletes']} soft deletes")


def _show_second_shell(say: Callable[[str], None], s: Settings, endpoint: str) -> None:
    """Say where the demo's DynamoDB is and how another shell reaches it; write demo.env."""
    from seo_sync.demo.environment import demo_environment, export_lines, write_env_file

    env = demo_environment(s, endpoint)
    env_file = write_env_file(s, env)
    cmd = command_name()
    lines = [f"seo-sync demo: DynamoDB (moto, in this process) at {endpoint}, cache {s.cache_path}",
             "In a second shell, these lines point every seo-sync command at this demo:",
             *(f"  {line}" for line in export_lines(env)),
             f"  (or: . {env_file})",
             f"then: {cmd} status · {cmd} list-businesses · {cmd} verify · {cmd} health",
             "Ctrl-C stops the demo and prints a summary.", ""]
    for line in lines:
        say(line)


def _emit_even_without_stdout(app: AppContext, data: dict[str, Any], human: Callable[[], None]) -> None:
    """Print the summary; on stderr when whoever read stdout is gone.

    In `make demo | tee demo.txt` Ctrl-C ends `tee` too, so the summary would meet a closed pipe
    and be lost; the terminal still shows stderr.
    """
    try:
        app.emit(data, human)
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so the flush at exit does not fail on the dead pipe once more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        with contextlib.redirect_stdout(sys.stderr):
            app.emit(data, human)


def _live_summary(app: AppContext, summary: dict[str, Any]) -> None:
    status = summary.get("final_status") or {}
    code = summary["daemon_exit_code"]
    daemon = "never started" if code is None else f"daemon exit code {code}"
    w = summary["writer"]
    writes = (f"{w['edits']} edits, {w['new_keywords']} new keywords, {w['soft_deletes']} soft deletes, "
              f"{w['conflicts']} conflicts")
    # A line of its own, not the table's title: piped, a title goes to stderr and a log would lack it.
    click.echo(f"demo stopped ({daemon}) after {summary['seconds']:.0f} s; the writer made {writes}")
    app.table(None, ["table", "rows in cache", "records applied"],
              ((n, t.get("rows"), t.get("records_applied")) for n, t in (status.get("tables") or {}).items()))
    click.echo(f"cache: {summary['cache']}\ndaemon log: {summary['daemon_log']}")
    click.echo(f"next: {command_name()} --data-dir {app.settings().data_dir} list-businesses")
