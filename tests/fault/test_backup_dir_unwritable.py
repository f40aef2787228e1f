"""Backup directory unwritable: the delete fails closed (refused), and DynamoDB is not touched.

Root ignores permission bits, so the delete runs in a forked child that drops to an unprivileged
user (nobody, uid 65534, when the test runs as root as in CI; the current user otherwise) against a
backup directory of mode 0500. A fork rather than a new interpreter: the interpreter here lives
under /root, which nobody cannot enter. The same command runs once in this process first (as the
owner, where it succeeds or fails for another reason), so every module the child needs is already
imported. The child runs the real CLI (`seo-sync delete`) against this session's moto server and
reports its exit code through a pipe; the assertions are made here.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cli.main import run
from seo_sync.errors import BackupFailed, ExitCode
from seo_sync.protection.ledger import CONFIRM_TOKEN, Ledger
from seo_sync.schema import BUSINESSES
from seo_sync.write_path.profiles import ProfileStore
from tests.support.settings import make_settings

pytestmark = pytest.mark.timeout(120)

NOBODY = 65534


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A data directory an unprivileged child can reach (pytest's tmp_path is 0700 root's)."""
    path = Path(tempfile.mkdtemp(prefix="seo-sync-fault-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cli_delete(data_dir: Path, business_id: str) -> int:
    return run(["--data-dir", str(data_dir), "delete", "business", business_id, "--confirm", CONFIRM_TOKEN])


def _delete_as_unprivileged(data_dir: Path) -> tuple[int, str]:
    """Fork, drop to nobody (when root), run `seo-sync delete business acme`; returns (exit code, output)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            out = os.fdopen(write_end, "w", buffering=1)
            sys.stdout = sys.stderr = out
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            os.environ["HOME"] = str(data_dir)
            code = _cli_delete(data_dir, "acme")
            out.write(f"\nEXIT={code}\n")
            out.flush()
            os._exit(0)
        except BaseException as e:  # report anything, and never run the parent's code in the child
            os.write(write_end, f"\nCHILD FAILED: {e!r}\n".encode())
            os._exit(99)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    code = int(text.rsplit("EXIT=", 1)[1].strip())
    return code, text


def test_backup_dir_unwritable_refuses_the_delete_and_leaves_dynamodb_untouched(shared_dir, dynamo_endpoint,
                                                                                  monkeypatch):
    """Non-root, backups/ at 0500: exit 73, a clear message, no DynamoDB write, no file, the slot given back."""
    monkeypatch.setenv("SEO_SYNC_AWS__ENDPOINT_URL", dynamo_endpoint)
    monkeypatch.setenv("SEO_SYNC_AWS__REGION", "us-east-1")
    data_dir = shared_dir / "data"
    settings = make_settings(data_dir, dynamo_endpoint)
    source = Source(settings.aws, settings.table_prefix)
    source.create_table(BUSINESSES)
    ProfileStore(settings, source).create(BUSINESSES, codec.item_from_python({"business_id": "acme", "name": "A"}))
    before = source.get_item(BUSINESSES, ("acme",))
    # warm-up in this process: the same command, once succeeding, once failing closed (imports everything)
    warm_settings = make_settings(shared_dir / "warm", dynamo_endpoint)
    for bid in ("warm1", "warm2"):
        ProfileStore(warm_settings, source).create(BUSINESSES, codec.item_from_python({"business_id": bid}))
    assert _cli_delete(shared_dir / "warm", "warm1") == 0
    (shared_dir / "warm" / "backups").rename(shared_dir / "warm" / "moved")
    (shared_dir / "warm" / "backups").write_text("not a directory")
    assert _cli_delete(shared_dir / "warm", "warm2") == ExitCode.CANTCREAT

    backup_dir = data_dir / "backups"
    backup_dir.mkdir(parents=True)
    if os.geteuid() == 0:
        for path in (data_dir, backup_dir):
            os.chown(path, NOBODY, NOBODY)
    data_dir.chmod(0o700)
    backup_dir.chmod(0o500)

    code, output = _delete_as_unprivileged(data_dir)

    assert code == ExitCode.CANTCREAT, output
    assert "nothing was deleted" in output and "Permission denied" in output and "Traceback" not in output
    after = source.get_item(BUSINESSES, ("acme",))
    assert after == before and not codec.is_deleted(after)
    assert list(backup_dir.iterdir()) == []
    assert Ledger(settings.protection_path).used("business", time.time()) == 0


def test_backup_path_taken_by_a_file_refuses_the_delete(settings):
    """A regular file where backups/ should be (ENOTDIR/EEXIST) also fails closed, even for root."""
    source = Source(settings.aws, settings.table_prefix)
    source.create_table(BUSINESSES)
    store = ProfileStore(settings, source)
    store.create(BUSINESSES, codec.item_from_python({"business_id": "acme", "name": "A"}))
    settings.backup_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.backup_dir.write_text("not a directory")
    with pytest.raises(BackupFailed, match="nothing was deleted"):
        store.delete(BUSINESSES, ("acme",), confirm=CONFIRM_TOKEN)
    item = source.get_item(BUSINESSES, ("acme",))
    assert item["_version"] == {"N": "1"} and not codec.is_deleted(item)
