"""`seo-sync demo`: the real daemon on the embedded DynamoDB, a simulated writer, a live status view."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from seo_sync.cache.reader import Reader
from seo_sync.schema import TABLES
from tests.support.harness import REPO


@pytest.mark.slow
def test_demo_runs_the_daemon_with_a_simulated_writer_and_stops_cleanly(tmp_path):
    """The demo boots the daemon, the writer's edits stream into the cache, and the daemon exits 0 at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEO_SYNC_", "AWS_"))}
    # The simulated writer writes every 2 s from READY until 3 s before the end, so a slow boot eats its
    # writes: with 12 s a machine 4x slower than idle got two writes, the bare minimum; 16 s gets it four.
    proc = subprocess.run([sys.executable, "-m", "seo_sync", "--data-dir", str(tmp_path / "d"), "--json", "demo",
                           "--port", "0", "--seconds", "16"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["daemon_exit_code"] == 0
    writer = summary["writer"]
    assert writer["edits"] + writer["new_keywords"] + writer["soft_deletes"] >= 2
    tables = summary["final_status"]["tables"]
    assert set(tables) == set(TABLES) and tables["businesses"]["rows"] >= 10
    reader = Reader.open(tmp_path / "d" / "cache.db")
    try:
        keywords = reader.count("keywords")
    finally:
        reader.close()
    assert keywords == 160 + writer["new_keywords"] - writer["soft_deletes"]
