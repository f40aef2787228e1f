"""Every command with its standard output on a full disk or a closed pipe: one message and a named exit
(74 for a full disk, a quiet exit for a pipe nobody reads), never a traceback."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from seo_sync.cli.main import root, run
from tests.support.disk_full import unshare_works
from tests.support.harness import seed

REPO = Path(__file__).resolve().parents[2]


def _leaf_commands(group: click.Group = root, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


# The commands that print something with this test's data: each with the arguments it needs.
PRINTING = [("status",), ("list-businesses",), ("--json", "list-businesses"), ("print-config",),
            ("--json", "print-config"), ("check-config",), ("verify",), ("--json", "verify"), ("export", "biz-001"),
            ("schema", "--typescript"), ("backups", "list"), ("health",), ("sync-from-dynamo", "biz-002"),
            *((*c, "--help") for c in _leaf_commands())]


@pytest.fixture
def synced(tmp_path: Path, dynamo_endpoint: str) -> Path:
    """A config on moto's seeded tables and a cache made by `sync-from-dynamo`."""
    seed(dynamo_endpoint, tmp_path / "seed", businesses=3)
    config = tmp_path / "seo-sync.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nsocket = "{tmp_path / "none.sock"}"\n'
                      f'[aws]\nendpoint_url = "{dynamo_endpoint}"\nregion = "us-east-1"\nmax_attempts = 2\n')
    assert run(["--config", str(config), "sync-from-dynamo"]) == 0
    return config


def _run_into(stream: io.TextIOWrapper, argv: list[str], monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        code = run(argv)
    except SystemExit as e:  # click's own answer to a closed pipe: exit 1, quietly
        code = int(e.code or 0)
    finally:
        monkeypatch.undo()
    return code, capsys.readouterr().err


def test_every_command_on_a_full_disk_exits_74_with_one_message(synced: Path, monkeypatch, capsys) -> None:
    """stdout on /dev/full: 74 and "cannot write the output", or the command's own error; no traceback."""
    for args in PRINTING:
        full = io.TextIOWrapper(open("/dev/full", "wb"), encoding="utf-8")
        code, err = _run_into(full, ["--config", str(synced), *args], monkeypatch, capsys)
        assert "Traceback" not in err, (args, err)
        assert code == 74 or (code not in (0, 1) and err.startswith("seo-sync: ")), (args, code, err)
        if code == 74 and "cannot write the output" in err:  # one message and its hint, last (a title may precede)
            assert [line for line in err.splitlines() if line.startswith("seo-sync: ")] == \
                ["seo-sync: cannot write the output: No space left on device"], (args, err)


def test_every_command_into_a_closed_pipe_exits_quietly(synced: Path, monkeypatch, capsys) -> None:
    """stdout a pipe whose reader is gone: nothing on stderr but the command's own error, no traceback."""
    for args in PRINTING:
        r, w = os.pipe()
        os.close(r)
        pipe = io.TextIOWrapper(open(w, "wb"), encoding="utf-8")
        code, err = _run_into(pipe, ["--config", str(synced), *args], monkeypatch, capsys)
        assert "Traceback" not in err and "Errno" not in err, (args, err)
        assert code in (1, 141) or (code != 0 and err.startswith("seo-sync: ")), (args, code, err)


def test_a_real_process_on_a_full_disk_or_a_closed_pipe(synced: Path) -> None:
    """The same through a process's own stdout: Python's flush at exit must not speak either."""
    cmd = [sys.executable, "-m", "seo_sync", "--config", str(synced), "list-businesses"]
    with open("/dev/full", "wb") as full:
        res = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 74 and "\nseo-sync: cannot write the output" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr
    r, w = os.pipe()
    os.close(r)
    res = subprocess.run(cmd, stdout=w, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=60)
    os.close(w)
    assert res.returncode in (1, 141) and res.stderr == "3 businesses (cache)\n", res.stderr  # its title only


def test_export_on_a_full_disk_leaves_no_file(synced: Path, tmp_path: Path) -> None:
    """`export -o` on a full disk exits 73 and leaves nothing (no empty file, no .tmp), with or without --force."""
    why = unshare_works()
    if why:
        pytest.fail(f"needs unshare with a tmpfs mount: {why}")
    out = tmp_path / "out"
    out.mkdir()
    export = [sys.executable, "-m", "seo_sync", "--config", str(synced), "export", "biz-001", "-o", f"{out}/b.json"]
    for extra in ([], ["--force"]):
        script = (f'mount -t tmpfs -o size=64k tmpfs {out} && (dd if=/dev/zero of={out}/fill bs=4k 2>/dev/null; true)'
                  f' && "$@"; echo "rc=$?"; ls -A {out}')
        res = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *export, *extra], capture_output=True,
                             text=True, cwd=REPO, timeout=60)
        assert "rc=73" in res.stdout, res.stdout + res.stderr
        assert "Traceback" not in res.stderr and "seo-sync: cannot write" in res.stderr, res.stderr
        assert res.stdout.split("rc=73", 1)[1].split() == ["fill"], res.stdout  # nothing else left behind
