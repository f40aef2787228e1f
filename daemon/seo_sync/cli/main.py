"""The `seo-sync` command line: the root group with every command, and exceptions mapped to exit codes.

Each command module adds its commands to `root` when it is imported; they are imported here, by
name, so a missing or broken module fails loudly at start instead of silently dropping commands.
This is the only module that exits the process.
"""

from __future__ import annotations

import sys

import click

# Imported for their commands, which register themselves on `root`.
from seo_sync.cli import changes, data, demo, inspect, kinesis, protect, schema, service, sync  # noqa: F401
from seo_sync.cli.kit import root
from seo_sync.errors import ExitCode, SeoSyncError


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code instead of exiting (for tests)."""
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
