"""The command-line toolkit shared by the command modules: the root group, its context, output.

Command modules (`cli/data.py`, `cli/protect.py`, …) add commands to `root`; `cli/main.py` imports
them all, runs it, and is the only place that exits the process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from seo_sync.config import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    """What every command gets: how to load settings, and how to print."""

    config: Path | None = None
    data_dir: Path | None = None
    table_prefix: str | None = None
    socket: Path | None = None
    log_format: str | None = None
    env_file: Path | None = None
    json_output: bool = False
    verbose: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """Settings from defaults < file < environment < these flags (loaded once)."""
        if self._settings is None:
            overrides = {"data_dir": self.data_dir, "table_prefix": self.table_prefix, "socket": self.socket,
                         "log_format": self.log_format}
            self._settings = load_settings(self.config, None, overrides, env_file=self.env_file)
        return self._settings

    @property
    def console(self) -> Console:
        """Rich console on stdout."""
        return Console(soft_wrap=True)

    @property
    def err_console(self) -> Console:
        """Rich console on stderr (progress bars, notes)."""
        return Console(stderr=True)

    @property
    def interactive(self) -> bool:
        """True when stderr is a terminal (progress bars) and JSON output was not asked for."""
        return sys.stderr.isatty() and not self.json_output

    def emit(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """Print `data` as JSON with --json, else call `human` (or pretty-print data)."""
        if self.json_output or human is None:
            click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str))
        else:
            human()

    def table(self, title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Print a terminal table."""
        t = Table(title=title, show_lines=False)
        for c in columns:
            t.add_column(c)
        for r in rows:
            t.add_row(*("" if v is None else str(v) for v in r))
        self.console.print(t)


pass_app = click.make_pass_decorator(AppContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", type=click.Path(path_type=Path), help="TOML config file (default: $SEO_SYNC_CONFIG, "
              "then /etc/seo-sync/seo-sync.toml if it exists).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Directory of cache.db, protection.db, backups/.")
@click.option("--table-prefix", help="DynamoDB table name prefix (default seo_).")
@click.option("--socket", type=click.Path(path_type=Path), help="Status socket path.")
@click.option("--log-format", type=click.Choice(["json", "console", "auto"]), help="Log format.")
@click.option("--env-file", type=click.Path(path_type=Path), help="The platform server's .env (AWS_*, USE_DYNAMODB).")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON output.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(package_name="seo-sync")
@click.pass_context
def root(ctx: click.Context, **opts: Any) -> None:
    """seo-sync: keeps the SEO platform's SQLite read cache in step with DynamoDB."""
    from seo_sync.logs import configure_logging  # logging is set up by the command line, never at import

    ctx.obj = AppContext(**opts)
    # Logs go to stderr so stdout stays the command's own output (JSON with --json); `run` re-routes them.
    configure_logging(opts.get("log_format") or "auto", "DEBUG" if opts.get("verbose") else "WARNING",
                      stream=sys.stderr)
