"""The `seo-sync` command line: the root group with every command, and exceptions mapped to exit codes.

Each command module adds its commands to `root` when it is imported; they are imported here, by
name, so a missing or broken module fails loudly at start instead of silently dropping commands.
This is the only module that exits the process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys

import click

# Imported for their commands, which register themselves on `root`.
from seo_sync.cli import changes, data, demo, inspect, kinesis, protect, schema, service, sync  # noqa: F401
from seo_sync.cli.kit import root
from seo_sync.errors import ExitCode, SeoSyncError

# Standard output cannot take what a command prints: a full disk, a quota, an I/O error.
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG})


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code instead of exiting (for tests)."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # here, not at interpreter exit: a full disk must be our message, not Python's
        return code
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (`| head`): nothing to say, and nobody to say it to
        return int(ExitCode.PIPE)
    except OSError as e:
        if e.errno not in OUTPUT_ERRNOS:
            raise
        _silence_stdout()
        click.echo(f"seo-sync: cannot write the output: {e.strerror}", err=True)
        click.echo("  hint: free space where standard output goes, or send it elsewhere", err=True)
        return int(ExitCode.IOERR)


def _run(argv: list[str] | None) -> int:
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the flush at interpreter exit has nothing left to fail on."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main() -> None:
    """Console-script entry point."""
    sys.exit(run(sys.argv[1:]))
