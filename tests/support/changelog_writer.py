"""A process that writes the cache without pause through every path that logs changes, to be killed -9.

Each write of a key gives its row `_version` = the number of `upsert` entries the log will then hold
for that key, so a checker can tell, after any kill, whether a row was committed without its log
entry or an entry without its row. Prints "ready" once the cache is open and booted and its first
write is committed, so a kill after it always falls while the process writes.

    python -m tests.support.changelog_writer CACHE_PATH
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from seo_sync import codec
from seo_sync.cache.writer import Cache, Swap
from seo_sync.changes import Change
from seo_sync.feed import Checkpoint
from seo_sync.schema import TABLES
from tests.support import changes as test_changes

BUSINESSES = TABLES["businesses"]
KEYS = [f"k{i:02d}" for i in range(40)]


def item(bid: str, version: int) -> codec.Item:
    """A businesses item whose `_version` counts its upserts."""
    return {"business_id": {"S": bid}, "name": {"S": f"{bid} v{version}"}, "_version": {"N": str(version)}}


def state(cache: Cache) -> tuple[dict[str, int], dict[str, int]]:
    """(rows held: key -> _version, upsert entries logged per key)."""
    held = {r[0]: r[1] for r in cache.conn.execute("SELECT business_id, _version FROM businesses")}
    logged = {r[0]: r[1] for r in cache.conn.execute(
        "SELECT json_extract(key, '$[0]'), count(*) FROM _sync_changes WHERE table_name = 'businesses' "
        "AND op = 'upsert' GROUP BY key")}
    return held, logged


def boot(cache: Cache) -> None:
    """The first full sync of every table (empty), if the cache never had one."""
    if cache.readiness().complete:
        return
    for spec in TABLES.values():
        cache.create_shadow(spec)
    cache.publish([Swap(spec, "arn:test", []) for spec in TABLES.values()])


def step(cache: Cache, rng: random.Random, seq: int) -> int:
    """One write through a randomly chosen path; returns the next sequence number."""
    held, logged = state(cache)
    choice = rng.random()
    if choice < 0.6:  # a stream batch of distinct keys
        changes = []
        for bid in rng.sample(KEYS, 6):
            seq += 1
            if bid in held and rng.random() < 0.3:
                changes.append(Change("delete", "businesses", (bid,), str(seq), None, event="REMOVE", hard=True))
            else:
                n = logged.get(bid, 0) + 1
                changes.append(test_changes.upsert("businesses", item(bid, n), str(seq)))
        cache.apply_batch(BUSINESSES, changes, Checkpoint("businesses", "arn:test", "shard-1",
                                                          sequence_number=str(seq)))
    elif choice < 0.9:  # a repair read, refresh or direct write: one key as the truth
        bid = rng.choice(KEYS)
        present = bid not in held or rng.random() < 0.7
        cache.apply_item(BUSINESSES, (bid,), item(bid, logged.get(bid, 0) + 1) if present else None)
    else:  # a resync: the new table keeps some rows, changes some, drops some and adds some
        rows = []
        for bid in KEYS:
            r = rng.random()
            if bid in held and r < 0.5:
                rows.append(item(bid, held[bid]))
            elif r < 0.8:
                rows.append(item(bid, logged.get(bid, 0) + 1))
        cache.create_shadow(BUSINESSES)
        cache.insert_scanned(BUSINESSES, rows)
        cache.swap_shadow(BUSINESSES, "arn:test", [], reason="resync")
    return seq


def main() -> None:
    """Write until killed."""
    cache = Cache.open(Path(sys.argv[1]), change_diff_limit=1000)
    boot(cache)
    rng = random.Random(os.getpid())
    seq = step(cache, rng, 10**20)
    print("ready", flush=True)
    while True:
        seq = step(cache, rng, seq)


if __name__ == "__main__":
    main()
