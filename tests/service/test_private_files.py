"""The daemon's files are private whatever the umask, and paths it cannot create are exit 73 with one line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.harness import Daemon

REPO = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", ["000", "022"])
def test_files_are_private_whatever_the_umask(seeded, dynamo_endpoint, tmp_path: Path, umask: str) -> None:
    """Under umask 000 and 022: data dir 0750, cache.db/-wal/-shm 0640, socket 0660, nothing open to others."""
    data_dir = tmp_path / "data"
    d = Daemon(dynamo_endpoint, data_dir, prefix=("sh", "-c", f'umask {umask} && exec "$@"', "sh"))
    try:
        d.wait_ready()
        assert _mode(data_dir) == 0o750
        for name in ("cache.db", "cache.db-wal", "cache.db-shm"):
            assert _mode(data_dir / name) == 0o640, name
        assert _mode(d.socket_path) == 0o660
        for root, dirs, files in os.walk(data_dir):
            for name in dirs + files:
                path = Path(root) / name
                if not path.is_socket():
                    assert _mode(path) & 0o007 == 0, f"{path} is open to other users: {oct(_mode(path))}"
    finally:
        d.close()


def test_an_earlier_world_readable_cache_is_made_private(seeded, dynamo_endpoint, tmp_path: Path) -> None:
    """A data dir and cache left 0755/0644 (an older version under umask 022) are tightened at start."""
    data_dir = tmp_path / "data"
    d = Daemon(dynamo_endpoint, data_dir)
    d.wait_ready()
    d.close()
    os.chmod(data_dir, 0o755)
    for name in ("cache.db", "cache.db-wal", "cache.db-shm"):
        os.chmod(data_dir / name, 0o644)
    d = Daemon(dynamo_endpoint, data_dir)
    try:
        d.wait_ready()
        assert _mode(data_dir) == 0o750
        assert {_mode(data_dir / n) for n in ("cache.db", "cache.db-wal", "cache.db-shm")} == {0o640}
    finally:
        d.close()


def _run(tmp_path: Path, *args: str, user: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEO_SYNC_")}
    return subprocess.run([*user, sys.executable, "-m", "seo_sync", *args, "run"], cwd="/", env={
        **env, "PYTHONPATH": str(REPO / "daemon")}, capture_output=True, text=True, timeout=60)


def test_paths_it_cannot_create_are_exit_73_with_one_message(tmp_path: Path) -> None:
    """A data dir that is a file, one it may not create, a socket dir under a file: 73, the path, no traceback."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    cases = [(("--data-dir", str(a_file)), (), str(a_file)),
             (("--data-dir", str(tmp_path / "ok"), "--socket", str(a_file / "s.sock")), (), str(a_file)),
             (("--data-dir", str(locked / "data")), ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"),
              str(locked / "data"))]
    for args, user, named in cases:
        res = _run(tmp_path, *args, user=user)
        assert res.returncode == 73, (args, res.stderr)
        assert "Traceback" not in res.stderr and named in res.stderr, res.stderr
        assert [line for line in res.stderr.splitlines() if line.startswith("seo-sync: ")] != []
