"""The soak's platform writer: versioned puts, updates, soft and hard deletes straight to DynamoDB.

Run as a process: ``python -m tests.support.soak_writer ENDPOINT SECONDS RATE OUT.json``. Keys are
never re-created, and every write raises `_version`, so a reader must never see a version go down.
"""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.config import load_settings
from seo_sync.errors import SeoSyncError, VersionMismatch
from seo_sync.schema import TABLES


def main(endpoint: str, seconds: float, rate: float, out: str) -> int:
    """Write for `seconds` at about `rate` writes a second; the counts go to `out`."""
    s = load_settings(env={}, overrides={"aws": {"endpoint_url": endpoint, "region": "us-east-1"}})
    source = Source(s.aws, s.table_prefix)
    rng = random.Random(11)
    live: dict[tuple[str, tuple[str, ...]], int] = {}  # (table, key) -> version
    counts = {"put": 0, "update": 0, "soft_delete": 0, "hard_delete": 0, "conflict": 0, "error": 0}
    serial = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        serial += 1
        table = rng.choice(("businesses", "keywords"))
        spec = TABLES[table]
        mine = [k for (t, k) in live if t == table]
        action = "put" if len(mine) < 20 else rng.choice(("put", "update", "update", "update", "soft_delete",
                                                           "hard_delete"))
        try:
            if action == "put":
                key: tuple[str, ...] = (f"soak-{serial}",) if table == "businesses" else ("soak-biz", f"kw{serial}#en")
                item = codec.item_from_python({**dict(zip(spec.key_names, key, strict=True)), "_version": 1,
                                               "name" if table == "businesses" else "keyword": f"v1 {serial}"})
                source.put_item(spec, item, expected_version=None)
                live[(table, key)] = 1
            else:
                key = rng.choice(mine)
                version = live[(table, key)]
                base = dict(zip(spec.key_names, key, strict=True))
                if action == "hard_delete":
                    # boto3's client: a hard delete is a call the daemon never makes, so not in DynamoDBApi.
                    client: Any = source.ddb
                    client.delete_item(TableName=spec.dynamo_name(s.table_prefix), Key=source.key_av(spec, key))
                    del live[(table, key)]
                else:
                    extra = {"_deleted": True} if action == "soft_delete" else {}
                    item = codec.item_from_python({**base, "_version": version + 1, **extra,
                                                   "name" if table == "businesses" else "keyword": f"v{version + 1}"})
                    source.put_item(spec, item, expected_version=version)
                    if action == "soft_delete":
                        del live[(table, key)]
                    else:
                        live[(table, key)] = version + 1
            counts[action] += 1
        except VersionMismatch:
            counts["conflict"] += 1
        except SeoSyncError:
            counts["error"] += 1
        time.sleep(rng.uniform(0, 2 / rate))
    with open(out, "w") as fh:
        json.dump(counts, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))
