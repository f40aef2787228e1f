"""`seo-sync changes`: the cache's change log as JSON lines, for shells and other languages.

One line per entry (`{"seq", "table", "key", "op", "at"}`), oldest first. A cursor that fell out of
the log's retention (or belongs to another cache file) prints one line with `"op": "reload"` and
`"table": null`: the reader must read everything again, then go on from that line's `seq`.
`--follow` keeps printing as the daemon commits, like `tail -f`: it wakes on PRAGMA data_version
(a cheap read of the shared WAL index), and ends quietly on Ctrl-C or when stdout is closed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import TextIO

import click

from seo_sync.cache.changelog import Page
from seo_sync.cache.reader import Reader
from seo_sync.cli.kit import AppContext, pass_app, root
from seo_sync.errors import CacheBusy, CacheError, ExitCode
from seo_sync.schema import TABLES

PAGE = 1000
BUSY_BACKOFF = (0.05, 0.1, 0.2, 0.4, 1.0)


def lines(page: Page, since: int) -> list[str]:
    """The JSON lines of one page (a reload line first when the cursor fell out of the log)."""
    out = []
    if page.reload:
        out.append(json.dumps({"seq": page.cursor, "table": None, "key": None, "op": "reload", "at": time.time(),
                               "reason": f"cursor {since} is outside the change log"}))
    for e in page.changes:
        out.append(json.dumps({"seq": e.seq, "table": e.table, "key": e.key, "op": e.op, "at": e.at},
                              ensure_ascii=False))
    return out


class Follower:
    """Reads pages after a cursor, waiting for the next commit between them when following."""

    def __init__(self, reader: Reader, cursor: int, table: str | None, poll: float, stop: threading.Event) -> None:
        self.reader = reader
        self.cursor = cursor
        self.table = table
        self.poll = poll
        self.stop = stop
        self._busy = 0
        self._version: int | None = None

    def next_page(self) -> Page | None:
        """The next page, or None while the cache is busy (retried after a backoff)."""
        try:
            # The version is taken before the read: a commit landing during the read is waited for
            # no longer than one poll.
            self._version = self._data_version()
            page = self.reader.changes(self.cursor, self.table, PAGE)
        except CacheBusy:
            self.stop.wait(BUSY_BACKOFF[min(self._busy, len(BUSY_BACKOFF) - 1)])
            self._busy += 1
            return None
        self._busy = 0
        return page

    def wait_for_commit(self) -> None:
        """Return once another connection has committed since the last page was read (or stop is set)."""
        while not self.stop.wait(self.poll):
            if self._version is None or self._data_version() != self._version:
                return

    def _data_version(self) -> int | None:
        try:
            return self.reader.data_version()
        except CacheError:  # a WAL index being rebuilt: the next page read settles it
            return None


def _write(out: TextIO, text: list[str]) -> None:
    if text:
        out.write("\n".join(text) + "\n")
        out.flush()


@root.command()
@click.option("--since", "since", type=int, default=None,
              help="Print entries after this seq (default: every entry the log still holds).")
@click.option("--table", "table", type=click.Choice(sorted(TABLES)), default=None, help="Only this table.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries as they are committed.")
@click.option("--poll", type=click.FloatRange(0.005, 10.0), default=0.05, show_default=True,
              help="Seconds between checks for a new commit with --follow.")
@pass_app
def changes(app: AppContext, since: int | None, table: str | None, follow: bool, poll: float) -> int:
    """Print the cache's change log as JSON lines (see docs/reader-contract.md)."""
    reader = Reader.open(app.settings().cache_path)
    stop = threading.Event()
    try:
        # Default: everything the log still holds, from its floor.
        start = reader.changes_floor() if since is None else since
        follower = Follower(reader, start, table, poll, stop)
        while True:
            page = follower.next_page()
            if page is None:
                continue
            _write(sys.stdout, lines(page, follower.cursor))
            follower.cursor = page.cursor
            if page.more:
                continue
            if not follow:
                return int(ExitCode.OK)
            follower.wait_for_commit()
    except KeyboardInterrupt:
        return int(ExitCode.OK)
    except BrokenPipeError:
        # Whoever read stdout is gone (`| head`): end quietly; point stdout at /dev/null so the
        # interpreter's flush at exit does not fail on the dead pipe once more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.OK)
    finally:
        reader.close()

