"""`seo-sync changes`: the change log as JSON lines, with --since, --table and --follow (which ends
quietly on a closed pipe and on Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from seo_sync.cache.writer import Cache, Swap
from seo_sync.cli.main import run
from seo_sync.schema import TABLES
from tests.support.items import biz

ROOT = str(Path(__file__).resolve().parents[2])
BUSINESSES = TABLES["businesses"]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    """A booted cache in tmp_path with two businesses written after the boot."""
    c = Cache.open(tmp_path / "cache.db")
    for spec in TABLES.values():
        c.create_shadow(spec)
    c.publish([Swap(spec, "arn:test", []) for spec in TABLES.values()])
    c.apply_item(BUSINESSES, ("a",), biz("a"))
    c.apply_item(BUSINESSES, ("b",), biz("b"))
    yield c
    c.close()


def changes(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    """Run `seo-sync changes ARGS`; its JSON lines."""
    assert run(["--data-dir", str(tmp_path), "changes", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def follow(tmp_path: Path) -> subprocess.Popen[str]:
    """`seo-sync changes --follow` as a process, its stdout a pipe."""
    return subprocess.Popen([sys.executable, "-m", "seo_sync", "--data-dir", str(tmp_path), "changes", "--follow"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT + "/daemon"})


def test_prints_every_retained_entry_then_only_newer_and_one_table(cache, tmp_path, capsys):
    """Without --since every entry is printed in order; --since and --table narrow it."""
    lines = changes(tmp_path, capsys)
    assert [(x["table"], x["op"], x["key"]) for x in lines] == [
        *((t, "reload", None) for t in TABLES), ("businesses", "upsert", ["a"]), ("businesses", "upsert", ["b"])]
    assert [x["seq"] for x in lines] == sorted(x["seq"] for x in lines)
    after_a = lines[-2]["seq"]
    assert [x["key"] for x in changes(tmp_path, capsys, "--since", str(after_a))] == [["b"]]
    assert {x["table"] for x in changes(tmp_path, capsys, "--table", "keywords")} == {"keywords"}


def test_a_cursor_behind_retention_prints_reload(cache, tmp_path, capsys):
    """A --since below the log's floor prints one reload line whose seq is where to go on from."""
    lines = changes(tmp_path, capsys, "--since", "1")
    assert len(lines) == 1 and lines[0]["op"] == "reload" and lines[0]["table"] is None
    assert lines[0]["seq"] == max(x["seq"] for x in changes(tmp_path, capsys))


def test_follow_prints_new_commits_and_ends_on_a_closed_pipe(cache, tmp_path):
    """--follow prints what is committed after it started, and exits 0 without a traceback when its
    reader closes the pipe."""
    proc = follow(tmp_path)
    assert proc.stdout is not None
    seen = [json.loads(proc.stdout.readline()) for _ in range(7)]  # the five reloads, a and b
    cache.apply_item(BUSINESSES, ("c",), biz("c"))
    new = json.loads(proc.stdout.readline())
    assert (new["key"], new["op"], new["seq"] > seen[-1]["seq"]) == (["c"], "upsert", True)
    proc.stdout.close()  # the reader goes away; the next line meets a closed pipe
    cache.apply_item(BUSINESSES, ("d",), biz("d"))
    assert proc.wait(30) == 0
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_follow_ends_quietly_on_ctrl_c(cache, tmp_path):
    """--follow exits 0 without a traceback on SIGINT (Ctrl-C)."""
    proc = follow(tmp_path)
    assert proc.stdout is not None
    proc.stdout.readline()  # it is running and has printed
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
