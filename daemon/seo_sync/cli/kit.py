"""The command-line toolkit shared by the command modules: the root group, its context, output.

Command modules (`cli/data.py`, `cli/protect.py`, …) add commands to `root`; `cli/main.py` imports
them all, runs it, and is the only place that exits the process.
"""

from __future__ import annotations

import json
import os
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
            self._settings = self.load_settings()
        return self._settings

    def load_settings(self) -> Settings:
        """Settings read afresh from the same layers (the daemon's SIGHUP reads its file again)."""
        overrides = {"data_dir": self.data_dir, "table_prefix": self.table_prefix, "socket": self.socket,
                     "log_format": self.log_format}
        return load_settings(self.config, None, overrides, env_file=self.env_file)

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
        """Print a table: drawn on a terminal, tab-separated values when stdout is a pipe or a file.

        Piped, a drawn table is cut to 80 columns and its cells to `ace-aut…`, the very ids the next
        command needs. So, as `gh` does when piped and `sqlite-utils --tsv` prints: one header line
        of column names, then one line a row, cells whole (tabs and newlines in a cell become spaces);
        the title goes to stderr. On a terminal long cells wrap, never end in an ellipsis.
        """
        cells = [["" if v is None else str(v) for v in r] for r in rows]
        if not sys.stdout.isatty():
            if title:
                click.echo(title, err=True)
            for line in [list(columns), *cells]:
                click.echo("\t".join(_tsv_cell(c) for c in line))
            return
        t = Table(title=title, show_lines=False)
        for c in columns:
            t.add_column(c, overflow="fold")
        for r in cells:
            t.add_row(*r)
        self.console.print(t)


def _tsv_cell(value: str) -> str:
    return value.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def command_name() -> str:
    """How the operator can type `seo-sync` from here: the bare name only when it is on PATH.

    `make demo` runs the console script of `.venv`, which is not on PATH unless that venv is active;
    a hint saying `seo-sync …` would then end in "command not found".
    """
    script = Path(sys.executable).parent / "seo-sync"
    if not script.exists() or str(script.parent) in os.environ.get("PATH", "").split(os.pathsep):
        return "seo-sync"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


pass_app = click.make_pass_decorator(AppContext)


class RootGroup(click.Group):
    """The root group; its options are accepted after the subcommand too (`list-businesses --json`).

    Such an option is moved in front of the subcommand before parsing, unless the subcommand has an
    option of the same name (then it is the subcommand's). `--` ends the moving, as it ends options.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse `args` with the root's options that follow the subcommand moved in front of it."""
        return super().parse_args(ctx, self._hoist_root_options(ctx, args))

    def _hoist_root_options(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {name: not p.is_flag for p in self.params if isinstance(p, click.Option)
                       for name in p.opts + p.secondary_opts}
        i = 0
        while i < len(args) and args[i].startswith("-"):  # the root's own options, before the subcommand
            i += 1 + (1 if takes_value.get(args[i], False) else 0)
        if i >= len(args) or (command := self.get_command(ctx, args[i])) is None:
            return args
        own = {name for p in _all_params(command) if isinstance(p, click.Option) for name in p.opts + p.secondary_opts}
        front, rest = list(args[:i]), [args[i]]
        j = i + 1
        while j < len(args):
            arg = args[j]
            name = arg.split("=", 1)[0]
            if arg == "--":
                rest += args[j:]
                break
            if name in takes_value and name not in own:
                with_value = takes_value[name] and "=" not in arg and j + 1 < len(args)
                front += args[j:j + 2] if with_value else [arg]
                j += 2 if with_value else 1
                continue
            rest.append(arg)
            j += 1
        return front + rest


def _all_params(command: click.Command) -> list[click.Parameter]:
    """The parameters of `command` and, for a group, of its subcommands (`backups list --json`)."""
    params = list(command.params)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            params += _all_params(sub)
    return params


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    """seo-sync: keeps the SEO platform's SQLite read cache in step with DynamoDB.

    The options above may also follow the command: `seo-sync list-businesses --json`.
    """
    from seo_sync.logs import configure_logging  # logging is set up by the command line, never at import

    ctx.obj = AppContext(**opts)
    # Logs go to stderr so stdout stays the command's own output (JSON with --json); `run` re-routes them.
    configure_logging(opts.get("log_format") or "auto", "DEBUG" if opts.get("verbose") else "WARNING",
                      stream=sys.stderr)
