"""The write-path commands: put, delete (protected), and backups list / restore / prune."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import structlog

from seo_sync import codec, schema
from seo_sync.cli.data import open_source
from seo_sync.cli.kit import AppContext, pass_app, root
from seo_sync.errors import BadInput, CodecError, NotFound, SeoSyncError, SourceError, VersionMismatch
from seo_sync.protection import backups
from seo_sync.protection.jobs import prune_backups
from seo_sync.protection.ledger import CONFIRM_TOKEN, Ledger
from seo_sync.write_path.profiles import CASCADE_TABLES, ProfileStore, WriteResult

log = structlog.get_logger()
MAX_INPUT_BYTES = 4 * 1024 * 1024


def _store(app: AppContext, command: str) -> ProfileStore:
    settings = app.settings()
    return ProfileStore(settings, open_source(settings, command))


def _echo_results(app: AppContext, verb: str, results: list[WriteResult], extra: dict[str, Any] | None = None) -> None:
    """Print what was written: JSON with --json, else one line per item and notes on stderr."""
    def human() -> None:
        for r in results:
            line = f"{verb} {r.table} {' / '.join(r.key)}: _version {r.version}"
            if r.backup is not None:
                line += f", backup {r.backup}"
            if r.landed_on_retry:
                line += " (an earlier attempt had landed)"
            click.echo(line + f"; cache: {r.cache}")
            if r.note:
                click.echo(f"  note: {r.note}", err=True)
    app.emit({verb: [r.summary() for r in results], **(extra or {})}, human)


@contextmanager
def _show_conflict(app: AppContext) -> Iterator[None]:
    """On a conflict, show the item DynamoDB holds now (stdout with --json, else stderr), then fail."""
    try:
        yield
    except VersionMismatch as e:
        current = None if e.current is None else codec.item_to_ddb_json(e.current)
        if app.json_output:
            click.echo(json.dumps({"error": e.message, "current": current}, indent=2, ensure_ascii=False))
        elif current is not None:
            click.echo("the item in DynamoDB now (DynamoDB JSON):", err=True)
            click.echo(json.dumps(current, indent=2, ensure_ascii=False), err=True)
        raise


def _no_constants(name: str) -> Any:
    raise BadInput(f"{name} is not a number DynamoDB can store")


def load_item_file(path: Path, spec: schema.TableSpec) -> codec.Item:
    """Read an item from DynamoDB JSON or plain JSON (told apart by the hash key's form); numbers exact."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise BadInput(f"{path} is larger than any DynamoDB item can be")
    try:
        obj = json.loads(data.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"{path} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise BadInput(f"{path} must hold one JSON object (one item)")
    hash_value = obj.get(spec.hash_key)
    try:
        if isinstance(hash_value, dict):
            return codec.item_from_ddb_json(obj)
        if isinstance(hash_value, str):
            return codec.item_from_python(obj)
    except CodecError as e:
        raise BadInput(f"{path}: {e.message}") from None
    raise BadInput(f"{path}: the key attribute {spec.hash_key!r} is missing",
                   hint=f'give it as "{spec.hash_key}": "id" (plain JSON) or {{"S": "id"}} (DynamoDB JSON)')


@root.command("put")
@click.argument("entity")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--expected-version", type=click.IntRange(min=0), metavar="N",
              help="Write only if the item is at _version N now (0: it exists without one).")
@pass_app
def put(app: AppContext, entity: str, file: Path, expected_version: int | None) -> int:
    """Create or replace one item from FILE, DynamoDB first, then the cache.

    \b
    ENTITY: business, questionnaire, keyword, service_area or prompt_template.
    FILE holds one item, either as DynamoDB JSON ({"business_id": {"S": "acme"}, "n": {"N": "1.50"}},
    the form `export` and backups use: every type, exact numbers, sets, base64 binary) or as plain
    JSON ({"business_id": "acme", "n": 1.50}: numbers are kept exact, never floats; lists and maps,
    no sets or binary). The form is told by the key attribute: an object means DynamoDB JSON.
    The write is conditional: on --expected-version N if given, else on the file's own _version
    (edit an exported item and put it back), else the item must not exist yet. The new _version
    is that plus one. A conflict exits 3 and shows the item DynamoDB holds now.
    """
    spec = schema.table(entity)
    item = load_item_file(file, spec)
    if expected_version is None and schema.VERSION_ATTR in item:
        expected_version = codec.version_of(item)
    with _show_conflict(app):
        result = _store(app, "put").put(spec, item, expected_version=expected_version)
    _echo_results(app, "written", [result])
    return 0


@root.command("delete")
@click.argument("entity")
@click.argument("key", nargs=-1, required=True)
@click.option("--confirm", "token", metavar="TOKEN", help=f"Must be exactly {CONFIRM_TOKEN}.")
@click.option("--cascade", is_flag=True, help="For a business: also its questionnaire, keywords, service areas "
              "and templates (each backed up and counted).")
@click.option("--reason", default="", help="Why; recorded in the backup file.")
@pass_app
def delete(app: AppContext, entity: str, key: tuple[str, ...], token: str | None, cascade: bool, reason: str) -> int:
    """Soft-delete one item (KEY: business id, then the sort key if the table has one).

    \b
    In order, stopping at the first refusal: the confirmation token; the rate limit (10 deletes
    per entity type per clock hour, counted before the backup so a crash cannot bypass it; given
    back when nothing changed); a backup file in <data dir>/backups; `_deleted: true` with
    `_version` + 1 in DynamoDB, conditional on the backed-up version; the row leaves the cache.
    Undo with `seo-sync backups restore FILE`.
    """
    spec = schema.table(entity)
    store = _store(app, "delete")
    with _show_conflict(app):
        results = store.delete(spec, key, confirm=token, reason=reason, cascade=cascade)
    left = _children(store, key[0]) if spec is schema.BUSINESSES and not cascade else {}
    _echo_results(app, "deleted", results, {"children_left": left} if left else None)
    if left and not app.json_output:
        click.echo(f"note: left in place, not deleted: {', '.join(f'{n} {name}' for name, n in left.items())} of "
                   f"business {key[0]}; `--cascade` deletes a business together with them (each backed up and "
                   "counted). To remove them now, delete each, or restore the business from its backup and delete "
                   "it again with --cascade.", err=True)
    return 0


def _children(store: ProfileStore, business_id: str) -> dict[str, int]:
    """How many live items each child table holds for the business: what a delete without --cascade leaves.

    Asked after the delete, and only to inform: a child table that cannot be read is left out.
    """
    counts: dict[str, int] = {}
    for spec in CASCADE_TABLES:
        try:
            counts[spec.name] = sum(not codec.is_deleted(it) for it in store.source.query_business(spec, business_id))
        except SourceError as e:
            log.warning("delete.children_unknown", table=spec.name, error=e.message)
    return {name: n for name, n in counts.items() if n}


@root.group("backups")
def backups_group() -> None:
    """Delete backups: list, restore, prune."""


@backups_group.command("list")
@click.option("--business", metavar="ID", help="Only this business's backups.")
@click.option("--table", "table_name", metavar="TABLE", help="Only backups of this table or entity type.")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON output.")
@pass_app
def backups_list(app: AppContext, business: str | None, table_name: str | None, json_output: bool) -> int:
    """List backup files, oldest first, with the outcome of their delete when the ledger knows it."""
    app.json_output = app.json_output or json_output
    settings = app.settings()
    spec = schema.table(table_name) if table_name else None
    found = backups.list_backups(settings.backup_dir, business, spec.name if spec else None)
    outcomes: dict[str, str] = {}
    if settings.protection_path.exists():
        try:
            outcomes = Ledger(settings.protection_path).outcomes()
        except SeoSyncError as e:  # a read-only ledger still lets the files be listed
            click.echo(f"note: outcomes unavailable ({e.message})", err=True)
    rows = [{**b.summary(), "outcome": outcomes.get(b.path.name)} for b in found]
    app.emit({"backup_dir": str(settings.backup_dir), "backups": rows}, lambda: app.table(
        f"{len(rows)} backup(s) in {settings.backup_dir}",
        ("file", "table", "key", "_version", "time", "outcome", "reason"),
        [(r["file"], r["table"], " / ".join(r["key"]), r["version"], r["time"], r["outcome"], r["reason"])
         for r in rows]))
    return 0


@backups_group.command("restore")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def backups_restore(app: AppContext, file: Path) -> int:
    """Put a backed-up item back, un-deleted, then refresh the cache.

    Conditional on what DynamoDB holds now: refused (exit 3) when the item is live and differs
    from the backup; a no-op when it is already restored. The restored item gets a new _version.
    """
    with _show_conflict(app):
        result = _store(app, "backups restore").restore(file)
    _echo_results(app, "restored", [result])
    return 0


@backups_group.command("prune")
@click.option("--older-than", "days", type=click.FloatRange(min=0), metavar="DAYS",
              help="Age limit in days (default: protection.backup_retention_days, 30).")
@click.option("--trust-clock", is_flag=True, help="Act on the clock even if it jumped since the last prune.")
@pass_app
def backups_prune(app: AppContext, days: float | None, trust_clock: bool) -> int:
    """Remove our backup files older than DAYS (age from the time recorded in each file).

    Only regular files with our name pattern, owned by us, whose content agrees with their name;
    never follows symlinks. A clock that jumped forward since the last prune is not trusted beyond
    two days (no mass delete) unless --trust-clock.
    """
    settings = app.settings()
    removed = prune_backups(settings, time.time(), days, trust_clock=trust_clock)
    app.emit({"removed": removed, "backup_dir": str(settings.backup_dir)},
             lambda: click.echo(f"removed {removed} backup file(s) from {settings.backup_dir}"))
    return 0
