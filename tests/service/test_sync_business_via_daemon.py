"""`sync-from-dynamo BUSINESS` while the real daemon runs: it goes through the daemon's `refresh-business`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from seo_sync import codec
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.schema import KEYWORDS

REPO = Path(__file__).resolve().parents[2]


def _keywords_of(data_dir: Path, business_id: str) -> set[str]:
    reader = Reader.open(data_dir / "cache.db")
    try:
        return {it["keyword_id"]["S"] for it in reader.items(KEYWORDS, business_id)}
    finally:
        reader.close()


def test_one_business_is_refreshed_through_the_running_daemon(seeded, start_daemon, tmp_path: Path) -> None:
    """A row DynamoDB does not hold leaves the cache; exit 0 with the daemon running and holding the lock."""
    daemon = start_daemon()
    daemon.wait_ready()
    stray = codec.item_from_python({"business_id": "biz-001", "keyword_id": "stray#en", "keyword": "stray"})
    cache = Cache.open(daemon.data_dir / "cache.db")
    try:
        cache.apply_item(KEYWORDS, ("biz-001", "stray#en"), stray)  # drift the stream will never repair
    finally:
        cache.close()
    assert "stray#en" in _keywords_of(daemon.data_dir, "biz-001")
    res = subprocess.run([sys.executable, "-m", "seo_sync", "--json", "sync-from-dynamo", "biz-001"], cwd=REPO,
                         env=daemon.env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["via"] == "daemon" and out["tables"]["keywords"] == {"keys": 6, "rows": 5}
    assert _keywords_of(daemon.data_dir, "biz-001") == {f"kw{k}#en" for k in range(5)}
