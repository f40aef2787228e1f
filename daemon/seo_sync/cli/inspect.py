"""Read-and-compare commands: `export` (one business as a lossless JSON document) and `verify`."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import click
import structlog

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.reader import Reader
from seo_sync.cli.data import Bars, check_business_id, open_reader, open_source, preflight
from seo_sync.cli.kit import AppContext, pass_app, root
from seo_sync.errors import Deleted, ExitCode, NotFound, SeoSyncError
from seo_sync.schema import TABLES, TableSpec, check_safe_id
from seo_sync.schema import table as table_spec

log = structlog.get_logger()
EXPORT_FORMAT = "seo-sync-export/1"
SINGLE = ("businesses", "questionnaires")  # one item per business: exported as an object, not a list
MAX_KEYS_SHOWN = 100  # differing keys listed per table and kind; the counts are always complete
MAX_RECHECK = 1000  # differing keys re-read one by one (a daemon may have moved the cache meanwhile)
# Rounds of that re-reading, RECHECK_PAUSE s apart: a daemon applies a change about a second after
# it is written, so a key that still differs after the last round differs for real.
RECHECK_ROUNDS = 4
RECHECK_PAUSE = 1.0


class OutputError(SeoSyncError):
    """The export file cannot be created (exists, symlink, no such directory, permission)."""

    exit_code = ExitCode.CANTCREAT


# ---- export --------------------------------------------------------------------------------------


def export_document(business_id: str, items: dict[str, list[codec.Item]]) -> dict[str, Any]:
    """The export document: every item as DynamoDB JSON, lists in key order (same data, same bytes)."""
    doc: dict[str, Any] = {"format": EXPORT_FORMAT, "business_id": business_id}
    for spec in TABLES.values():
        ordered = [codec.item_to_ddb_json(it) for it in sorted(items.get(spec.name, []),
                                                                key=spec.key_of_item)]
        key = {"businesses": "business", "questionnaires": "questionnaire"}.get(spec.name, spec.name)
        doc[key] = (ordered[0] if ordered else None) if spec.name in SINGLE else ordered
    return doc


def _items_from_cache(path: Path, business_id: str) -> dict[str, list[codec.Item]]:
    reader = open_reader(path)
    try:
        with reader.snapshot():
            return {spec.name: list(reader.items(spec, business_id)) for spec in TABLES.values()}
    finally:
        reader.close()


def _items_from_dynamo(source: Source, business_id: str) -> dict[str, list[codec.Item]]:
    """Every item of the business in DynamoDB, soft-deleted ones included (the caller tells them apart)."""
    return {spec.name: source.query_business(spec, business_id) for spec in TABLES.values()}


def refuse_deleted(business_id: str, items: dict[str, list[codec.Item]], where: str) -> None:
    """Raise Deleted when the business is soft-deleted, or gone while its children remain.

    Exporting it would print `"business": null` with exit 0, which a script takes for success.
    """
    business = items.get("businesses", [])
    deleted = any(codec.is_deleted(it) for it in business)
    if business and not deleted:
        return
    left = {name: sum(not codec.is_deleted(it) for it in rows) for name, rows in items.items() if name != "businesses"}
    left = {name: n for name, n in left.items() if n}
    if not deleted and not left:
        return  # nothing at all: not found, not deleted
    remains = ", ".join(f"{n} {name}" for name, n in left.items()) or "none of its children"
    raise Deleted(f"business {business_id!r:.80} is deleted in {where}; {remains} remain",
                  hint=f"`seo-sync backups list --business {business_id}` shows its delete backup "
                       "(`seo-sync backups restore FILE` brings it back)")


def export_target(output: str, business_id: str) -> Path:
    """The file to write: `output`, or `<output>/<business-id>.json` when it names a directory.

    Takes the option as typed: a path object would drop the trailing slash that says "a directory".
    """
    path = Path(output)
    if path.is_dir() or output.endswith(os.sep):
        if not path.is_dir():
            raise OutputError(f"--output {output} names a directory that does not exist",
                              hint=f"create it first (mkdir -p {output})")
        return path / f"{check_safe_id(business_id)}.json"  # the id becomes a file name: validate it
    if not path.name or path.name in (".", ".."):
        raise OutputError(f"--output {output} does not name a file")
    return path


def write_new_file(target: Path, text: str, force: bool) -> None:
    """Write `text` to `target`, never following a symlink; refuses an existing file unless `force`.

    The text goes to a temporary file first, which is linked (or, with `force`, renamed) into place
    only once it is whole: a full disk or an I/O error leaves no file, half-written or empty, behind.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise OutputError(f"cannot open directory {target.parent}: {e.strerror}") from None
    name, tmp = target.name, f".{target.name}.{os.getpid()}.tmp"
    try:
        if not force and _exists(name, dir_fd):
            raise FileExistsError(name)
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            if force:
                existing = _exists(name, dir_fd)
                if existing is not None and not stat.S_ISREG(existing.st_mode):
                    raise OutputError(f"{target} exists and is not a regular file (a symlink?); not replaced")
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # replaces a link, never follows it
            else:
                os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)  # never replaces
                os.unlink(tmp, dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)
    except FileExistsError:
        raise OutputError(f"{target} already exists", hint="pass --force to replace it") from None
    except OSError as e:
        why = "it is a symlink" if e.errno == errno.ELOOP else e.strerror
        raise OutputError(f"cannot write {target}: {why}", hint="nothing was written; free space or choose "
                                                             "another --output") from None
    finally:
        os.close(dir_fd)


def _exists(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


@root.command()
@click.argument("business_id")
@click.option("--output", "-o", type=click.Path(),
              help="File to write, or an existing directory to write <business-id>.json in (default: stdout).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--from-dynamo", is_flag=True, help="Read DynamoDB instead of the cache.")
@pass_app
def export(app: AppContext, business_id: str, output: str | None, force: bool, from_dynamo: bool) -> int:
    """One business as one JSON document: business, questionnaire, keywords, service_areas, prompt_templates.

    Lossless (DynamoDB JSON per item) and in a stable order; soft-deleted items are left out.
    """
    check_business_id(business_id)
    target = export_target(output, business_id) if output is not None and output != "-" else None
    s = app.settings()
    items = _items_from_dynamo(open_source(s, "export --from-dynamo"), business_id) if from_dynamo \
        else _items_from_cache(s.cache_path, business_id)
    refuse_deleted(business_id, items, "DynamoDB" if from_dynamo else f"the cache {s.cache_path}")
    items = {name: [it for it in rows if not codec.is_deleted(it)] for name, rows in items.items()}
    if not any(items.values()):
        where = "DynamoDB" if from_dynamo else f"the cache {s.cache_path}"
        raise NotFound(f"business {business_id!r:.80} is not in {where}",
                       hint="`seo-sync list-businesses` shows the ids" + ("" if from_dynamo else
                                                                         "; --from-dynamo reads DynamoDB"))
    text = json.dumps(export_document(business_id, items), indent=2, ensure_ascii=False) + "\n"
    if target is None:
        click.echo(text, nl=False)
        return ExitCode.OK
    write_new_file(target, text, force)
    counts = {n: len(v) for n, v in items.items()}
    log.info("exported", business_id=business_id, output=str(target), **counts)
    app.emit({"business_id": business_id, "output": str(target), "items": counts},
             lambda: click.echo(f"exported {sum(counts.values())} items of {business_id} to {target}"))
    return ExitCode.OK


# ---- verify --------------------------------------------------------------------------------------


def table_hash(hashes: dict[tuple[str, ...], str]) -> str:
    """One content hash of a whole table: its items' hashes in key order."""
    h = hashlib.sha256()
    for key in sorted(hashes):
        h.update(json.dumps([list(key), hashes[key]], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def compare_table(spec: TableSpec, cache_items: dict[tuple[str, ...], str],
                  dynamo_items: dict[tuple[str, ...], str]) -> dict[str, list[tuple[str, ...]]]:
    """Keys missing from the cache, extra in it, and present in both with different content."""
    return {"missing": sorted(dynamo_items.keys() - cache_items.keys()),
            "extra": sorted(cache_items.keys() - dynamo_items.keys()),
            "different": sorted(k for k in cache_items.keys() & dynamo_items.keys()
                                if cache_items[k] != dynamo_items[k])}


def _verify_table(spec: TableSpec, reader: Reader, source: Source, bars: Bars) -> dict[str, Any]:
    with reader.snapshot():
        cached = {spec.key_of_item(it): codec.item_hash(it) for it in reader.items(spec)}
    done = bars.add(f"{spec.name} (DynamoDB)", None)
    dynamo: dict[tuple[str, ...], str] = {}
    for page in source.scan(spec):
        for it in page:
            if not codec.is_deleted(it):  # the cache never holds soft-deleted items
                dynamo[spec.key_of_item(it)] = codec.item_hash(it)
        done(len(dynamo))
    diff = compare_table(spec, cached, dynamo)
    for attempt in range(RECHECK_ROUNDS):
        suspects = [k for kind in diff.values() for k in kind]
        if not suspects or len(suspects) > MAX_RECHECK:
            break
        if attempt:  # a write made just now reaches the cache within a poll interval of a running daemon
            time.sleep(RECHECK_PAUSE)
        for key in suspects:
            now_cached, now_dynamo = reader.get(spec, key), source.get_item(spec, key)
            if now_dynamo is not None and codec.is_deleted(now_dynamo):
                now_dynamo = None
            for side, item in ((cached, now_cached), (dynamo, now_dynamo)):
                side.pop(key, None)
                if item is not None:
                    side[key] = codec.item_hash(item)
        diff = compare_table(spec, cached, dynamo)
    out: dict[str, Any] = {"cache_count": len(cached), "dynamodb_count": len(dynamo),
                           "cache_hash": table_hash(cached), "dynamodb_hash": table_hash(dynamo)}
    out["identical"] = out["cache_hash"] == out["dynamodb_hash"]
    for kind, keys in diff.items():
        out[f"{kind}_count"] = len(keys)
        out[kind] = [list(k) for k in keys[:MAX_KEYS_SHOWN]]
    return out


@root.command()
@click.option("--table", "tables", multiple=True, help="Only this table (repeatable). Default: all five.")
@pass_app
def verify(app: AppContext, tables: tuple[str, ...]) -> int:
    """Compare the cache with DynamoDB per table: counts, content hashes, and the keys that differ.

    Exit 0 when identical, 5 when they differ. Safe while a daemon runs (reads the cache read-only).
    """
    s = app.settings()
    source = open_source(s, "verify")
    specs = [table_spec(t) for t in tables] or list(TABLES.values())
    preflight(source, specs)
    reader = open_reader(s.cache_path)
    try:
        with Bars(app) as bars:
            report = {spec.name: _verify_table(spec, reader, source, bars) for spec in specs}
    finally:
        reader.close()
    same = all(t["identical"] for t in report.values())
    log.info("verify", identical=same, tables=len(report))

    def human() -> None:
        app.table(f"cache {s.cache_path} vs DynamoDB {source.endpoint}: {'identical' if same else 'DIFFERENT'}",
                  ["table", "cache", "DynamoDB", "missing", "extra", "different", "hash"],
                  ((n, t["cache_count"], t["dynamodb_count"], t["missing_count"], t["extra_count"],
                    t["different_count"], t["cache_hash"][:12] + ("" if t["identical"] else " ≠"))
                   for n, t in report.items()))
        for n, t in report.items():
            for kind in ("missing", "extra", "different"):
                for key in t[kind]:
                    click.echo(f"{kind:9} {n}: {' / '.join(key)}")

    app.emit({"identical": same, "tables": report}, human)
    return ExitCode.OK if same else ExitCode.DIFFERENT
