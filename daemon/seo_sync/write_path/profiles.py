"""The write path: conditional DynamoDB writes first, then the cache; protected deletes; restore.

Writes (create/update, all five entity types) are PutItems conditional on `_version` (a create
must find no item and writes 1; an update names the version it read and writes one more). A
conflict raises VersionMismatch carrying the current item, unless that item is exactly what we
tried to write: then either an earlier attempt of ours that timed out did land (the write
succeeded), or another writer wrote the same item first (said so: this one wrote nothing; a
delete that lost that way refunds its charge and removes its duplicate backup).

After DynamoDB, the cache: through the daemon's `refresh` socket command when a daemon answers,
else directly under the writer lock. If neither can be done (the lock is held but no daemon
answers) the write still stands and the result says the cache will catch up from the stream.

Deletes run, fail-closed, in this order: confirmation token → delete-rate ledger (counted) →
backup file (fsynced, read back and compared) → soft delete in DynamoDB (`_deleted: true`,
`_version` + 1) conditional on the backed-up version → cache refresh.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.backoff import backoff_delay
from seo_sync.cache.lock import WriterLock
from seo_sync.cache.writer import Cache
from seo_sync.config import Settings, load_settings
from seo_sync.control.client import request_json
from seo_sync.errors import (
    BackupFailed,
    BadInput,
    DaemonUnavailable,
    DynamoDisabled,
    LockHeld,
    NotFound,
    SeoSyncError,
    SourceThrottled,
    SourceUnavailable,
    VersionMismatch,
)
from seo_sync.protection import backups
from seo_sync.protection.ledger import Ledger, Reservation, check_confirmation
from seo_sync.schema import (
    BUSINESSES,
    DELETED_ATTR,
    KEYWORDS,
    PROMPT_TEMPLATES,
    QUESTIONNAIRES,
    SERVICE_AREAS,
    VERSION_ATTR,
    TableSpec,
    check_safe_id,
)

log = structlog.get_logger()

CASCADE_TABLES = (QUESTIONNAIRES, KEYWORDS, SERVICE_AREAS, PROMPT_TEMPLATES)
MAX_KEY_CHARS = 1024
WRITE_RETRY_CAP = 5.0  # seconds: the longest wait between two tries of one write
# What a conditional put found: it wrote; an earlier attempt of ours had (its answer lost); another
# writer had written the very same item first (this one wrote nothing).
WRITTEN, LANDED, SAME = "written", "landed", "same"


@dataclass
class WriteResult:
    """One item written to DynamoDB, and what became of the cache."""

    table: str
    key: tuple[str, ...]
    version: int
    cache: str  # "daemon", "direct", "pending" (the stream brings it), or "none" (no cache yet)
    note: str | None = None
    landed_on_retry: bool = False
    backup: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly form for the CLI."""
        out: dict[str, Any] = {"table": self.table, "key": list(self.key), "version": self.version,
                               "cache": self.cache}
        if self.backup is not None:
            out["backup"] = str(self.backup)
        if self.note:
            out["note"] = self.note
        if self.landed_on_retry:
            out["landed_on_retry"] = True
        return out | self.extra


def _without(item: codec.Item, *names: str) -> codec.Item:
    return {k: v for k, v in item.items() if k not in names}


def same_content(a: codec.Item, b: codec.Item) -> bool:
    """True when two items are equal apart from `_version` and a false/absent `_deleted`."""
    def strip(it: codec.Item) -> codec.Item:
        out = _without(it, VERSION_ATTR)
        if out.get(DELETED_ATTR) == {"BOOL": False}:
            del out[DELETED_ATTR]
        return out
    return codec.item_hash(strip(a)) == codec.item_hash(strip(b))


def check_key(spec: TableSpec, key: Sequence[str]) -> tuple[str, ...]:
    """A validated key tuple: the right arity, a file-name-safe business id, sane range key."""
    key = tuple(key)
    if len(key) != len(spec.key_names):
        raise BadInput(f"{spec.entity} needs a key of {len(spec.key_names)} part(s): {', '.join(spec.key_names)}")
    check_safe_id(key[0])
    for part in key[1:]:
        if not isinstance(part, str) or not part or len(part) > MAX_KEY_CHARS or "\0" in part:
            raise BadInput(f"{spec.entity}: invalid {spec.range_key} {str(part)[:40]!r}")
    return key


class ProfileStore:
    """The write path for one configuration: writes, protected deletes, restores."""

    def __init__(self, settings: Settings, source: Source | None = None, *,
                 clock: Callable[[], float] = time.time, attempts: int = 3, retry_delay: float = 0.2) -> None:
        self.settings = settings
        self._source = source
        self.clock = clock
        self.attempts = max(1, attempts)
        self.retry_delay = retry_delay
        self.ledger = Ledger(settings.protection_path)

    @property
    def source(self) -> Source:
        """DynamoDB (created on first use)."""
        if self._source is None:
            if not self.settings.use_dynamodb:
                raise DynamoDisabled("USE_DYNAMODB is false: the write path needs DynamoDB")
            self._source = Source(self.settings.aws, self.settings.table_prefix)
        return self._source

    # -- writes -----------------------------------------------------------------------------------

    def create(self, spec: TableSpec, item: codec.Item) -> WriteResult:
        """Create an item that must not exist yet (`_version` 1)."""
        return self.put(spec, item, expected_version=None)

    def update(self, spec: TableSpec, item: codec.Item, expected_version: int) -> WriteResult:
        """Replace an item that is at `expected_version` now (writes `expected_version` + 1)."""
        return self.put(spec, item, expected_version=expected_version)

    def put(self, spec: TableSpec, item: codec.Item, expected_version: int | None) -> WriteResult:
        """Conditional put: None = must not exist, N = must be at `_version` N (0 = has none)."""
        codec.validate_item(item)
        key = check_key(spec, spec.key_of_item(item))
        if codec.is_deleted(item):
            raise BadInput("an item with _deleted: true is a delete",
                           hint="use `seo-sync delete` (backed up, rate-limited)")
        if expected_version is not None and expected_version < 0:
            raise BadInput("the expected version must be 0 or more")
        version = (expected_version or 0) + 1
        to_write = {**item, VERSION_ATTR: {"N": str(version)}}
        outcome = self._conditional_put(spec, to_write, expected_version)
        cache, note = self.refresh(spec, key)
        log.info("write.done", table=spec.name, version=version, cache=cache, outcome=outcome)
        if outcome == SAME:
            note = ("DynamoDB already held this exact item, written by another writer at the same time; "
                    "this put wrote nothing" + (f"; {note}" if note else ""))
        return WriteResult(spec.name, key, version, cache, note, outcome == LANDED,
                           extra={"already_written": True} if outcome == SAME else {})

    def _conditional_put(self, spec: TableSpec, item: codec.Item, expected_version: int | None) -> str:
        """Put with retries on timeouts: WRITTEN; LANDED when a conflict showed an earlier attempt of ours
        had landed (its answer lost); SAME when it showed this exact item written by another writer."""
        target = codec.item_hash(item)
        may_have_landed = False  # an attempt of ours failed in a way that does not say it was not applied
        for attempt in range(self.attempts):
            try:
                self.source.put_item(spec, item, expected_version=expected_version)
                return WRITTEN
            except VersionMismatch as e:
                if e.current is not None and codec.item_hash(e.current) == target:
                    # Ours only if one of our attempts (or botocore's retry of one) may have written it;
                    # else a parallel writer wrote the same bytes first, and this attempt wrote nothing.
                    return LANDED if may_have_landed or e.retried else SAME
                found = codec.version_of(e.current) if e.current else None
                e.message = (f"{spec.entity} {list(spec.key_of_item(item))} changed: expected "
                             f"{'no item' if expected_version is None else f'_version {expected_version}'}, "
                             f"found {'no item' if e.current is None else f'_version {found}'}; nothing was written")
                raise
            except (SourceUnavailable, SourceThrottled) as e:
                may_have_landed = True
                if attempt + 1 >= self.attempts:
                    e.hint = "the write may or may not have landed: read the item and retry with its _version"
                    raise
                log.warning("write.retry", table=spec.name, attempt=attempt + 1, error=e.message)
                time.sleep(backoff_delay(attempt + 1, base=self.retry_delay, cap=WRITE_RETRY_CAP))
        raise AssertionError("unreachable")

    # -- the cache ----------------------------------------------------------------------------------

    def refresh(self, spec: TableSpec, key: tuple[str, ...]) -> tuple[str, str | None]:
        """Bring one item into the cache: via the daemon, else directly; never raises."""
        command = f"refresh {spec.name} {json.dumps(list(key))}"
        socket_path = self.settings.socket_path
        try:
            answer = request_json(socket_path, command)
            if isinstance(answer, dict) and answer.get("ok"):
                return "daemon", None
            return "pending", f"the daemon did not confirm the refresh ({str(answer)[:100]}); the stream brings it"
        except DaemonUnavailable:
            pass
        except SeoSyncError as e:
            log.warning("write.refresh_failed", via="daemon", error=e.message)
            return "pending", f"the daemon could not refresh the cache ({e.message}); the stream brings it"
        cache_path = self.settings.cache_path
        if not cache_path.exists():
            return "none", "no cache here yet (the daemon builds it with a full sync)"
        try:
            with WriterLock(cache_path):
                # Stamped by DynamoDB's clock; an "absent" answer is read twice before a row goes.
                fresh = self.source.read_item(spec, key, live=True)
                cache = Cache.open(cache_path, busy_timeout_ms=self.settings.service.busy_timeout_ms)
                try:
                    cache.apply_item(spec, key, fresh.item, read_at=fresh.at)
                finally:
                    cache.close()
            return "direct", None
        except LockHeld as e:
            note = (f"the cache is locked by another process{f' (pid {e.pid})' if e.pid else ''} but no daemon "
                    f"answers on {socket_path}; the daemon applies this change from the stream")
        except SeoSyncError as e:
            note = f"the cache was not refreshed ({e.message}); the daemon applies this change from the stream"
        log.warning("write.refresh_pending", table=spec.name, reason=note)
        return "pending", note

    # -- deletes ------------------------------------------------------------------------------------

    def delete(self, spec: TableSpec, key: Sequence[str], *, confirm: str | None, reason: str = "",
               cascade: bool = False) -> list[WriteResult]:
        """Soft-delete one item (and, for a business with `cascade`, everything of it), protected."""
        check_confirmation(confirm)
        key = check_key(spec, key)
        if cascade and spec is not BUSINESSES:
            raise BadInput("--cascade applies to businesses only")
        item = self.source.get_item(spec, key)
        if item is None or codec.is_deleted(item):
            raise NotFound(f"{spec.entity} {list(key)} does not exist or is already deleted; nothing was deleted")
        targets: list[tuple[TableSpec, codec.Item]] = []
        if cascade:
            for child in CASCADE_TABLES:
                targets += [(child, it) for it in self.source.query_business(child, key[0]) if not codec.is_deleted(it)]
        targets.append((spec, item))  # the business last: a failure part-way leaves it visible to retry
        reason = reason or f"seo-sync delete by uid {os.getuid()}"
        reservation = self.ledger.reserve(Counter(s.entity for s, _ in targets), self.clock(),
                                          self.settings.protection.max_deletes_per_hour)
        results: list[WriteResult] = []
        for i, (s, it) in enumerate(targets):
            try:
                results.append(self._delete_one(s, it, reason, reservation))
            except SeoSyncError as e:
                for entity, n in Counter(t.entity for t, _ in targets[i + 1:]).items():
                    self.ledger.refund(reservation.hour, entity, n)  # never attempted
                if results:
                    e.message += (f" ({len(results)} of {len(targets)} items were deleted before this; "
                                  "run the same command again to finish)")
                raise
        return results

    def _delete_one(self, spec: TableSpec, item: codec.Item, reason: str, reservation: Reservation) -> WriteResult:
        key = spec.key_of_item(item)
        try:
            version = codec.version_of(item) or 0
            path = backups.write_backup(self.settings.backup_dir, spec, item, reason=reason, now=self.clock())
            backup = backups.read_backup(path)
            if codec.item_hash(backup.item) != codec.item_hash(item):
                raise BackupFailed(f"the backup {path} does not read back identical; nothing was deleted")
        except SeoSyncError:
            self.ledger.refund(reservation.hour, spec.entity)  # nothing changed in DynamoDB
            raise
        now = self.clock()
        self.ledger.record_backup(backup, "pending", now)
        deleted = {**item, DELETED_ATTR: {"BOOL": True}, VERSION_ATTR: {"N": str(version + 1)}}
        try:
            outcome = self._conditional_put(spec, deleted, expected_version=version)
        except VersionMismatch as e:
            self.ledger.record_backup(backup, "conflict", now)
            self.ledger.refund(reservation.hour, spec.entity)
            e.message += f" (backup kept at {path})"
            raise
        except SeoSyncError:
            self.ledger.record_backup(backup, "unknown", now)
            raise
        if outcome == SAME:
            self._lost_to_a_parallel_delete(spec, key, backup, reservation)
        self.ledger.record_backup(backup, "deleted", now)
        cache, note = self.refresh(spec, key)
        log.info("delete.done", table=spec.name, version=version + 1, backup=path.name, cache=cache)
        return WriteResult(spec.name, key, version + 1, cache, note, outcome == LANDED, backup=path)

    def _lost_to_a_parallel_delete(self, spec: TableSpec, key: tuple[str, ...], backup: backups.Backup,
                                   reservation: Reservation) -> None:
        """Another delete of the same item, from the same version, landed first: it made its backup and
        was charged; this one changed nothing, so its charge is refunded and its duplicate backup removed."""
        self.ledger.refund(reservation.hour, spec.entity)
        try:
            backups.remove_backup(backup.path)
            self.ledger.forget_backups([backup.path.name])
        except OSError as e:
            self.ledger.record_backup(backup, "conflict", self.clock())
            log.warning("delete.duplicate_backup_kept", path=str(backup.path), error=e.strerror)
        raise NotFound(f"{spec.entity} {list(key)} was deleted by a parallel delete at the same moment; "
                       "this one deleted nothing (that delete made the backup)")

    # -- restore ------------------------------------------------------------------------------------

    def restore(self, path: Path) -> WriteResult:
        """Put a backed-up item back, un-deleted, conditional on what DynamoDB holds now."""
        backup = backups.read_backup(path)
        spec = backup.spec
        item = backup.item
        if codec.is_deleted(item):
            item = _without(item, DELETED_ATTR)
        current = self.source.get_item(spec, backup.key)
        if current is not None and not codec.is_deleted(current):
            found = codec.version_of(current)
            if same_content(current, item):
                cache, note = self.refresh(spec, backup.key)
                return WriteResult(spec.name, backup.key, found or 0, cache, note, extra={"already_restored": True})
            raise VersionMismatch(
                f"{spec.entity} {list(backup.key)} is live at _version {found} and differs from the backup; "
                "nothing was restored", current=current,
                hint="compare it with the backup; to overwrite anyway use `seo-sync put` with --expected-version")
        expected = None if current is None else (codec.version_of(current) or 0)
        version = max(expected or 0, backup.version or 0) + 1
        to_write = {**item, VERSION_ATTR: {"N": str(version)}}
        outcome = self._conditional_put(spec, to_write, expected)
        cache, note = self.refresh(spec, backup.key)
        log.info("restore.done", table=spec.name, version=version, backup=backup.path.name, cache=cache)
        return WriteResult(spec.name, backup.key, version, cache, note, outcome == LANDED, backup=backup.path,
                           extra={"already_restored": True} if outcome == SAME else {})


def restore_from_backup(path: Path | str, settings: Settings | None = None) -> WriteResult:
    """Restore one backup file (the platform's `restoreFromBackup`); settings default to the environment's."""
    return ProfileStore(settings or load_settings()).restore(Path(path))
