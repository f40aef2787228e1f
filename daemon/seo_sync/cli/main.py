"""The `seo-sync` command line: loads the command modules, maps exceptions to exit codes.

This is the only module that exits the process.
"""

from __future__ import annotations

import importlib
import sys

import click

from seo_sync.cli.kit import root
from seo_sync.errors import ExitCode, SeoSyncError

COMMAND_MODULES = ("seo_sync.cli.data", "seo_sync.cli.sync", "seo_sync.cli.inspect", "seo_sync.cli.protect",
                   "seo_sync.cli.service")


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code instead of exiting (for tests)."""
    _load_commands()
    try:
        rv = root.main(args=argv, prog_name="seo-sync", standalone_mode=False)
        return int(rv) if isinstance(rv, int) else ExitCode.OK
    except SeoSyncError as e:
        click.echo(f"seo-sync: {e.message}", err=True)
        if e.hint:
            click.echo(f"  hint: {e.hint}", err=True)
        return int(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return int(ExitCode.FAILURE)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        return 130


def main() -> None:
    """Console-script entry point."""
    sys.exit(run(sys.argv[1:]))
