"""The one exception tree of seo-sync and the named exit codes the CLI maps it to.

Every error an operator can meet carries a `hint`: the next thing to try. Messages never
contain secrets (credentials are never formatted into them).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (sysexits.h where one fits, so systemd and scripts can tell them apart)."""

    OK = 0
    FAILURE = 1  # generic failure; `health`: degraded
    DOWN = 2  # `health`: the daemon is not running
    CONFLICT = 3  # optimistic-lock conflict (VersionMismatch)
    REFUSED = 4  # a protection rule refused the operation (token, rate limit)
    DIFFERENT = 5  # `verify`: cache and DynamoDB differ
    DELETED = 6  # the item asked for is soft-deleted (`export` of a deleted business)
    USAGE = 64  # EX_USAGE: bad command line
    DATAERR = 65  # EX_DATAERR: bad input data
    NOINPUT = 66  # EX_NOINPUT: a named file or item does not exist
    UNAVAILABLE = 69  # EX_UNAVAILABLE: DynamoDB unreachable, table missing
    SOFTWARE = 70  # EX_SOFTWARE: a bug; a thread died
    CANTCREAT = 73  # EX_CANTCREAT: cannot write a file (backup, export)
    IOERR = 74  # EX_IOERR: disk full, corrupt cache
    TEMPFAIL = 75  # EX_TEMPFAIL: lock held by another process; try again later
    NOPERM = 77  # EX_NOPERM: AWS access denied, bad credentials
    CONFIG = 78  # EX_CONFIG: bad configuration
    PIPE = 141  # standard output's reader went away (128 + SIGPIPE, as a shell reports it): a quiet exit


class SeoSyncError(Exception):
    """Base of every error seo-sync raises on purpose; carries an exit code and an operator hint."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(SeoSyncError):
    """The configuration (file, environment or flags) is invalid."""

    exit_code = ExitCode.CONFIG


class UsageError(SeoSyncError):
    """The command line or an argument is wrong."""

    exit_code = ExitCode.USAGE


class BadInput(SeoSyncError):
    """Input data (an id, a file, an item) is malformed; nothing was changed."""

    exit_code = ExitCode.DATAERR


class NotFound(SeoSyncError):
    """A named item, file or business does not exist."""

    exit_code = ExitCode.NOINPUT


class Deleted(NotFound):
    """The item asked for is soft-deleted (or a business is gone while its children remain)."""

    exit_code = ExitCode.DELETED


class CodecError(BadInput):
    """A DynamoDB value cannot be represented losslessly (e.g. a number of more than 38 digits)."""


class SourceError(SeoSyncError):
    """DynamoDB or DynamoDB Streams failed."""

    exit_code = ExitCode.UNAVAILABLE


class SourceUnavailable(SourceError):
    """DynamoDB cannot be reached (connection refused, timeout, DNS)."""


class IncompleteAnswer(SourceUnavailable):
    """An AWS answer arrived cut off or malformed (no body, a short body, a lost header): retry it.

    Never read as "no records", "item absent" or "empty page": what was cut is not known.
    """


class SourceThrottled(SourceError):
    """DynamoDB throttled the request or answered 5xx; retry later with backoff."""


class AccessDenied(SourceError):
    """The credentials are missing, invalid, expired, or lack a permission."""

    exit_code = ExitCode.NOPERM


class TableMissing(SourceError):
    """A DynamoDB table (or its stream) does not exist."""


class StreamGone(SourceError):
    """The stream position is no longer readable (trimmed, shard gone, stream replaced): resync."""


class IteratorExpired(SourceError):
    """A shard iterator expired; get a new one after the last committed sequence number."""


class DynamoDisabled(ConfigError):
    """USE_DYNAMODB=false in the named .env: commands that need DynamoDB refuse."""


class CacheError(SeoSyncError):
    """The cache database cannot be opened or written."""

    exit_code = ExitCode.IOERR


class CacheCorrupt(CacheError):
    """The cache database failed its integrity check."""


class CacheBusy(CacheError):
    """Another connection holds a write lock on the cache longer than busy_timeout."""

    exit_code = ExitCode.TEMPFAIL


class LockHeld(SeoSyncError):
    """Another process holds the cache writer lock (a running daemon or CLI command)."""

    exit_code = ExitCode.TEMPFAIL

    def __init__(self, message: str, hint: str | None = None, pid: int | None = None) -> None:
        super().__init__(message, hint)
        self.pid = pid


class VersionMismatch(SeoSyncError):
    """An optimistic-lock conflict: the item in DynamoDB is not at the expected `_version`."""

    exit_code = ExitCode.CONFLICT

    def __init__(self, message: str, current: dict | None = None, hint: str | None = None,
                 retried: bool = False) -> None:
        super().__init__(message, hint or "read the current item, re-apply your change, and retry")
        self.current = current
        self.retried = retried  # the SDK sent the request more than once: an earlier copy may be what it met


class ProtectionRefused(SeoSyncError):
    """Delete protection refused the operation (missing token, rate limit)."""

    exit_code = ExitCode.REFUSED


class RateLimited(ProtectionRefused):
    """The delete-rate limit for this entity type is used up for the current hour."""


class OverBudget(SeoSyncError):
    """A socket command over its budget (the reads `refresh` may cause): retry after `retry_after` seconds.

    Its answer on the socket has the kind "rate_limited" (not the class name): a published contract."""

    exit_code = ExitCode.TEMPFAIL
    kind = "rate_limited"

    def __init__(self, message: str, hint: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


class CannotCreate(SeoSyncError):
    """A directory or file the command needs cannot be created or written (data dir, socket dir)."""

    exit_code = ExitCode.CANTCREAT


class BackupFailed(SeoSyncError):
    """A backup file could not be written, so the delete did not happen."""

    exit_code = ExitCode.CANTCREAT


class DaemonUnavailable(SeoSyncError):
    """No daemon answers on the status socket."""

    exit_code = ExitCode.DOWN


class SocketDenied(DaemonUnavailable):
    """The status socket (or its directory) may not be opened by this user: not a member of its group."""

    exit_code = ExitCode.NOPERM


class FullSyncAborted(SeoSyncError):
    """A full sync was asked to stop; its shadow was dropped and the live table is untouched."""


class HaltServer(Exception):
    """Raised inside the daemon's main loop to stop it: the one stop path, carrying the exit status.

    Every way the daemon ends (a stop signal, a dead thread, a corrupt cache, a failed boot) becomes
    one of these, so the exit status that the log's last line reports is the one the process returns.
    """

    def __init__(self, reason: str, exit_status: int = ExitCode.OK) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_status = ExitCode(exit_status)
