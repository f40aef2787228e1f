"""Delete backups: one JSON file per item, written fail-closed, read back losslessly, pruned safely.

A backup file holds the table, the key, the full item as DynamoDB JSON (lossless: exact numbers,
sets, binary as base64), the time and the reason. Its name is built only from validated parts:
``<table>.<business_id>.<UTC time, microseconds>.<random>.json``; the business id must pass
`schema.check_safe_id`, the rest is ours. Writing is exclusive-create + no-follow + 0600 (whatever
the umask) into a temporary name, fsync, then a no-replace link to the final name and an fsync of
the directory: if any step fails the caller gets BackupFailed and must not delete.

Pruning touches only regular files whose name matches our pattern, owned by us (this process's user
or the backup directory's owner, i.e. the service user when root runs the CLI), and whose recorded
time agrees with their name; symlinks, directories and foreign files are left alone.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from seo_sync import codec
from seo_sync.errors import BackupFailed, BadInput, CodecError, NotFound
from seo_sync.schema import TABLES, TableSpec, check_safe_id

FORMAT = "seo-sync-backup/1"
NAME_RE = re.compile(
    r"^(?P<table>[a-z_]{1,32})\.(?P<business>[A-Za-z0-9_-]{1,64})\."
    r"(?P<ts>\d{8}T\d{12}Z)\.(?P<nonce>[0-9a-f]{8})\.json$"
)
TMP_PREFIX = ".tmp."
MAX_BACKUP_BYTES = 8 * 1024 * 1024  # a 400 KB item in DynamoDB JSON (base64) stays far below this
MAX_REASON_CHARS = 500
FILE_MODE = 0o600
DIR_MODE = 0o700
_TS_FORMAT = "%Y%m%dT%H%M%S"

log = structlog.get_logger()


@dataclass(frozen=True)
class Backup:
    """One backup file, parsed and validated."""

    path: Path
    table: str
    key: tuple[str, ...]
    item: codec.Item
    time_us: int
    reason: str

    @property
    def spec(self) -> TableSpec:
        """The table this backup belongs to."""
        return TABLES[self.table]

    @property
    def business_id(self) -> str:
        """The business (hash key) of the backed-up item."""
        return self.key[0]

    @property
    def version(self) -> int | None:
        """The `_version` of the backed-up item (None when it had none)."""
        return codec.version_of(self.item)

    @property
    def time(self) -> float:
        """The backup time as epoch seconds."""
        return self.time_us / 1_000_000

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description (no item body) for listings."""
        return {"file": self.path.name, "path": str(self.path), "table": self.table,
                "key": list(self.key), "version": self.version, "time": iso_time(self.time_us),
                "reason": self.reason}


@dataclass
class PruneResult:
    """What one prune pass did."""

    removed: list[str] = field(default_factory=list)
    kept: int = 0
    skipped_foreign: int = 0
    errors: int = 0


def iso_time(time_us: int) -> str:
    """Epoch microseconds → ISO-8601 UTC text."""
    return datetime.fromtimestamp(time_us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def _name_ts(time_us: int) -> str:
    dt = datetime.fromtimestamp(time_us // 1_000_000, UTC)
    return f"{dt.strftime(_TS_FORMAT)}{time_us % 1_000_000:06d}Z"


def _ts_from_name(ts: str) -> int | None:
    try:
        dt = datetime.strptime(ts[:15], _TS_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(dt.timestamp()) * 1_000_000 + int(ts[15:21])


def backup_name(spec: TableSpec, business_id: str, time_us: int, nonce: str) -> str:
    """The file name for a backup; only validated parts reach it."""
    if spec.name not in TABLES or not re.fullmatch(r"[0-9a-f]{8}", nonce):
        raise BadInput("invalid backup name parts")
    return f"{spec.name}.{check_safe_id(business_id)}.{_name_ts(time_us)}.{nonce}.json"


def _open_dir(backup_dir: Path, create: bool) -> int:
    """An fd on the backup directory itself (never through a symlink at its own name)."""
    if create:
        backup_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return os.open(backup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def write_backup(backup_dir: Path, spec: TableSpec, item: codec.Item, *, reason: str, now: float,
                 nonce: str | None = None) -> Path:
    """Write and fsync one backup file; raise BackupFailed (nothing left behind) if any step fails."""
    key = spec.key_of_item(item)
    codec.validate_item(item)
    time_us = round(now * 1_000_000)
    name = backup_name(spec, key[0], time_us, nonce or secrets.token_hex(4))
    doc = {
        "format": FORMAT, "table": spec.name, "key": dict(zip(spec.key_names, key, strict=True)),
        "version": codec.version_of(item), "time": iso_time(time_us), "time_us": time_us,
        "reason": (reason or "")[:MAX_REASON_CHARS], "item": codec.item_to_ddb_json(item),
    }
    data = (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    tmp = TMP_PREFIX + name
    dir_fd: int | None = None
    step = "open the backup directory"
    try:
        dir_fd = _open_dir(backup_dir, create=True)
        step = "create the backup file"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE,
                     dir_fd=dir_fd)
        try:
            os.fchmod(fd, FILE_MODE)  # the umask may have taken bits away (or a 0277 umask the owner's)
            step = "write the backup file"
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            step = "fsync the backup file"
            os.fsync(fd)
        finally:
            os.close(fd)
        step = "publish the backup file"
        try:
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.unlink(tmp, dir_fd=dir_fd)
        step = "fsync the backup directory"
        os.fsync(dir_fd)
    except OSError as e:
        if dir_fd is not None:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
        what = "a file of that name already exists" if e.errno == errno.EEXIST else (e.strerror or str(e))
        log.error("backup.write_failed", dir=str(backup_dir), step=step, error=what)
        raise BackupFailed(f"cannot {step} in {backup_dir}: {what}; nothing was deleted",
                           hint="check the backup directory's owner, mode and free space") from None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    path = backup_dir / name
    log.info("backup.written", path=str(path), table=spec.name, version=doc["version"])
    return path


def remove_backup(path: Path) -> None:
    """Remove a backup file that backs up nothing (its delete was another's); the directory fsynced."""
    dir_fd = _open_dir(path.parent, create=False)
    try:
        os.unlink(path.name, dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    log.info("backup.removed", path=str(path))


def _read_no_follow(path: Path, dir_fd: int | None = None) -> tuple[bytes, os.stat_result]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"{path} is not a regular file")
        if st.st_size > MAX_BACKUP_BYTES:
            raise BadInput(f"{path} is larger than any backup ({st.st_size} bytes)")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def parse_backup(path: Path, data: bytes) -> Backup:
    """Validate backup file content; BadInput says what is wrong."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"{path} is not a backup file (not JSON: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BadInput(f"{path} is not a seo-sync backup file (format {FORMAT} expected)")
    name = doc.get("table")
    spec = TABLES.get(name) if isinstance(name, str) else None  # any JSON value: a list would not even hash
    if spec is None:
        raise BadInput(f"{path}: unknown table {doc.get('table')!r:.40}")
    try:
        item = codec.item_from_ddb_json(doc.get("item"))
    except CodecError as e:
        raise BadInput(f"{path}: the item is not valid DynamoDB JSON: {e.message}") from None
    key = spec.key_of_item(item)
    recorded = doc.get("key")
    if not isinstance(recorded, dict) or tuple(recorded.get(k) for k in spec.key_names) != key:
        raise BadInput(f"{path}: the recorded key does not match the item")
    check_safe_id(key[0])
    time_us = doc.get("time_us")
    if not isinstance(time_us, int) or isinstance(time_us, bool) or time_us < 0:
        raise BadInput(f"{path}: no valid time_us")
    reason = doc.get("reason")
    return Backup(path, spec.name, key, item, time_us, reason if isinstance(reason, str) else "")


def read_backup(path: Path) -> Backup:
    """Read and validate one backup file (never through a symlink); NotFound / BadInput on failure."""
    path = Path(path)
    try:
        data, _ = _read_no_follow(path)
    except FileNotFoundError:
        raise NotFound(f"backup file {path} does not exist", hint="see `seo-sync backups list`") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise BadInput(f"{path} is a symlink; name the backup file itself") from None
        raise BadInput(f"cannot read {path}: {e.strerror}") from None
    return parse_backup(path, data)


def _owners(dir_fd_or_path: int | Path) -> set[int]:
    """Who counts as "us": this process's user and the backup directory's owner (the service user)."""
    try:
        return {os.geteuid(), os.stat(dir_fd_or_path).st_uid}
    except OSError:
        return {os.geteuid()}


def _ours(entry: os.DirEntry[str], owners: set[int]) -> re.Match[str] | None:
    """The name match when `entry` is a regular file (not a symlink) of ours with our name pattern."""
    m = NAME_RE.fullmatch(entry.name)
    if m is None or m["table"] not in TABLES:
        return None
    try:
        if not entry.is_file(follow_symlinks=False):
            return None
        return m if entry.stat(follow_symlinks=False).st_uid in owners else None
    except OSError:
        return None


def list_backups(backup_dir: Path, business_id: str | None = None, table: str | None = None) -> list[Backup]:
    """Our backups in `backup_dir`, oldest first, optionally of one business and/or table."""
    if business_id is not None:
        check_safe_id(business_id)
    out: list[Backup] = []
    bad = 0
    try:
        entries = list(os.scandir(backup_dir))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise BadInput(f"cannot read the backup directory {backup_dir}: {e.strerror}") from None
    owners = _owners(backup_dir)
    for entry in entries:
        m = _ours(entry, owners)
        if m is None or (business_id and m["business"] != business_id) or (table and m["table"] != table):
            continue
        try:
            out.append(read_backup(Path(entry.path)))
        except (BadInput, NotFound):
            bad += 1
    if bad:
        log.warning("backup.list_unreadable", dir=str(backup_dir), files=bad)
    return sorted(out, key=lambda b: (b.time_us, b.path.name))


def prune_dir(backup_dir: Path, cutoff: float, *, stale_tmp_cutoff: float | None = None) -> PruneResult:
    """Remove our backups recorded before `cutoff` (epoch s); leave everything else alone.

    A file counts only if its recorded time equals the time in its name and its mtime is not much
    later than that (something rewrote it: keep it). Safe to run from several processes at once.
    """
    res = PruneResult()
    cutoff_us = int(cutoff * 1_000_000)
    try:
        dir_fd = _open_dir(backup_dir, create=False)
    except FileNotFoundError:
        return res
    except OSError as e:
        log.error("backup.prune_unreadable", dir=str(backup_dir), error=e.strerror)
        res.errors += 1
        return res
    owners = _owners(dir_fd)
    try:
        for entry in os.scandir(dir_fd):
            if stale_tmp_cutoff is not None and entry.name.startswith(TMP_PREFIX):
                _prune_tmp(entry, dir_fd, stale_tmp_cutoff, res, owners)
                continue
            m = _ours(entry, owners)
            if m is None:
                res.skipped_foreign += 1
                continue
            name_us = _ts_from_name(m["ts"])
            if name_us is None or name_us >= cutoff_us:
                res.kept += 1
                continue
            try:
                data, st = _read_no_follow(Path(entry.name), dir_fd=dir_fd)
                backup = parse_backup(backup_dir / entry.name, data)
            except (OSError, BadInput, NotFound):
                res.skipped_foreign += 1
                continue
            if backup.time_us != name_us or st.st_mtime - backup.time > 86400 or st.st_uid not in owners:
                res.skipped_foreign += 1
                continue
            try:
                os.unlink(entry.name, dir_fd=dir_fd)
                res.removed.append(entry.name)
            except FileNotFoundError:
                pass  # another prune got there first
            except OSError as e:
                res.errors += 1
                log.warning("backup.prune_failed", file=entry.name, error=e.strerror)
    finally:
        os.close(dir_fd)
    return res


def _prune_tmp(entry: os.DirEntry[str], dir_fd: int, cutoff: float, res: PruneResult, owners: set[int]) -> None:
    """Remove a temporary file a killed writer left behind, once it is older than `cutoff`."""
    if not NAME_RE.fullmatch(entry.name[len(TMP_PREFIX):]):
        res.skipped_foreign += 1
        return
    try:
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(st.st_mode) and st.st_uid in owners and st.st_mtime < cutoff:
            os.unlink(entry.name, dir_fd=dir_fd)
            res.removed.append(entry.name)
    except FileNotFoundError:
        pass
    except OSError:
        res.errors += 1
