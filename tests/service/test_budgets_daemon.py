"""Budgets against the real daemon: a `refresh` flood, a `resync` loop, and a business sync beside them."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from seo_sync import codec
from seo_sync.control.client import request, request_json
from seo_sync.errors import OverBudget, SeoSyncError
from seo_sync.schema import KEYWORDS
from tests.support.harness import wait_until

REPO = Path(__file__).resolve().parents[2]


def _flood(socket_path: Path, clients: int, requests_each: int) -> dict[str, Any]:
    """`clients` threads each sending `requests_each` refreshes of random absent keys; what came back."""
    out: dict[str, Any] = {"ok": 0, "limited": 0, "retry_after": [], "other": []}
    lock = threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(n)
        for _ in range(requests_each):
            key = json.dumps(["nobody-" + str(rng.randrange(10**9)), "none#en"])
            try:
                request_json(socket_path, f"refresh keywords {key}", timeout=10.0)
                with lock:
                    out["ok"] += 1
            except OverBudget as e:
                with lock:
                    out["limited"] += 1
                    out["retry_after"].append(e.retry_after)
            except SeoSyncError as e:
                with lock:
                    out["other"].append(e.message)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_a_refresh_flood_is_held_to_the_budget(seeded, start_daemon) -> None:
    """40 clients looping `refresh`: answers beyond the bucket are rate_limited with a wait; status counts them."""
    daemon = start_daemon(extra_env={"SEO_SYNC_CONTROL__REFRESH_READS_PER_SECOND": "5",
                                     "SEO_SYNC_CONTROL__REFRESH_BURST": "20"})
    daemon.wait_ready()
    started = time.monotonic()
    out = _flood(daemon.socket_path, clients=40, requests_each=10)
    elapsed = time.monotonic() - started
    assert out["other"] == []
    assert out["limited"] > 0, out
    assert all(r > 0 for r in out["retry_after"])
    budget = daemon.status()["budgets"]["refresh"]
    assert budget["served"] == out["ok"] and budget["refused"] == out["limited"]
    assert budget["reads"] <= 20 + 5 * elapsed + 1  # the DynamoDB reads the flood caused: the bucket, no more
    assert "seo_sync_budget_requests_total" in request(daemon.socket_path, "metrics")


def test_a_refresh_over_budget_exits_75_from_the_command_line(seeded, start_daemon) -> None:
    """`sync-from-dynamo BUSINESS` refused by the daemon's budget exits 75 (try again later) with one message."""
    daemon = start_daemon(extra_env={"SEO_SYNC_CONTROL__BUSINESS_REFRESH_READS_PER_SECOND": "0.01",
                                     "SEO_SYNC_CONTROL__BUSINESS_REFRESH_BURST": "5"})
    daemon.wait_ready()
    cmd = [sys.executable, "-m", "seo_sync", "sync-from-dynamo", "biz-001"]
    first = subprocess.run(cmd, cwd=REPO, env=daemon.env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(cmd, cwd=REPO, env=daemon.env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 75, second.stderr
    assert "over budget" in second.stderr and "Traceback" not in second.stderr


def test_a_resync_loop_starts_one_full_sync_an_interval(seeded, start_daemon) -> None:
    """`resync businesses` sent 40 times in a row starts at most one more full sync, at the interval's end."""
    daemon = start_daemon(extra_env={"SEO_SYNC_CONTROL__MIN_RESYNC_INTERVAL": "4"})
    daemon.wait_ready()

    def started() -> int:
        return int(daemon.status()["tables"]["businesses"]["full_syncs_started"])

    first = daemon.request("resync businesses")
    assert first["ok"]
    wait_until(lambda: started() >= 1, what="the first requested full sync started")
    answers = [daemon.request("resync businesses") for _ in range(40)]
    assert answers[-1]["starts_in"] > 0  # the answer says when the coalesced run starts
    assert started() == 1
    wait_until(lambda: started() >= 2, timeout=30, what="the coalesced full sync ran at the interval's end")
    status = daemon.status()["tables"]["businesses"]
    assert status["full_syncs_started"] == 2 and status["resyncs_coalesced"] >= 40


def test_a_business_of_200_keywords_syncs_beside_a_refresh_flood(seeded, start_daemon) -> None:
    """`sync-from-dynamo BUSINESS` has its own allowance: a flood that uses up `refresh` does not slow it."""
    keywords = [codec.item_from_python({"business_id": "big", "keyword_id": f"k{i}#en", "keyword": f"k {i}"})
                for i in range(200)]
    seeded.batch_write(KEYWORDS, keywords)
    daemon = start_daemon(extra_env={"SEO_SYNC_CONTROL__REFRESH_READS_PER_SECOND": "1",
                                     "SEO_SYNC_CONTROL__REFRESH_BURST": "1"})
    daemon.wait_ready()
    flood = threading.Thread(target=_flood, args=(daemon.socket_path, 10, 30))
    flood.start()
    try:
        wait_until(lambda: daemon.status()["budgets"]["refresh"]["refused"] > 0, what="the flood is refused")
        began = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "seo_sync", "--json", "sync-from-dynamo", "big"], cwd=REPO,
                             env=daemon.env, capture_output=True, text=True, timeout=120)
        seconds = time.monotonic() - began
        began = time.monotonic()
        direct = request_json(daemon.socket_path, 'refresh-business "big"', timeout=30)
        socket_seconds = time.monotonic() - began
    finally:
        flood.join()
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["tables"]["keywords"] == {"keys": 200, "rows": 200}
    assert direct["tables"]["keywords"] == {"keys": 200, "rows": 200}
    print(f"200 keywords beside a refresh flood: sync-from-dynamo {seconds:.2f}s (process start included), "
          f"the daemon's refresh-business {socket_seconds:.2f}s")
