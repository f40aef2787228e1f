"""`seo-sync demo --fleet N`: N real daemons read one Kinesis stream that the relay fills from the
embedded DynamoDB, under the simulated writer, and end identical to DynamoDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.harness import REPO


@pytest.mark.slow
def test_the_fleet_demo_runs_two_hosts_that_end_identical_to_dynamodb(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEO_SYNC_", "AWS_"))}
    proc = subprocess.run([sys.executable, "-m", "seo_sync", "--data-dir", str(tmp_path / "d"), "--json", "demo",
                           "--fleet", "2", "--port", "0", "--seconds", "14"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert proc.returncode == 0, json.dumps(summary) + proc.stderr[-3000:]
    assert summary["hosts"] == 2 and summary["exit_codes"] == [0, 0]
    assert summary["writer_changes"] >= 1 and summary["relayed"] > 0
    assert summary["identical_to_dynamodb"] == [True, True]
