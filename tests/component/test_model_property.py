"""A stateful property test (hypothesis) of the engine against a model of DynamoDB.

Items carry an arbitrary extra attribute (every AttributeValue type, sets and binary nested in maps
and lists) and a `_version` that is missing, an integer, a string or a decimal. Rules interleave
puts, version resets, soft/hard/TTL deletes, un-deletes without a version bump, re-creations,
shard splits and rollovers, deliveries, redeliveries, crashes mid-batch, trims, forced resyncs,
write-path refreshes and repair reads. The engine's own code runs synchronously (its loops' bodies
are called one step at a time). After every step: the cache passes integrity_check and no
checkpoint is ahead of its data; after draining, the cache equals DynamoDB item for item.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import Phase
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seo_sync import codec
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.changes import to_change
from seo_sync.errors import StreamGone
from seo_sync.schema import BUSINESSES, KEYWORDS
from seo_sync.sync.engine import Engine
from tests.support.fake_streams import FakeWorld, create_tables, fake_source
from tests.support.settings import make_settings
from tests.support.strategies import attribute_values, same

SPECS = {"businesses": BUSINESSES, "keywords": KEYWORDS}
KEYS = 6
VERSIONS = st.sampled_from(["int", "int", "reset", "missing", "string", "decimal"])


def dyn(name: str) -> str:
    return "seo_" + name


class EngineModel(RuleBasedStateMachine):
    """The engine driven step by step against FakeWorld, compared with a plain dict model."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="model-"))
        self.world = FakeWorld()
        create_tables(self.world, list(SPECS))
        self.settings = make_settings(self.dir, None, fullsync={"batch_size": 3, "scan_segments": 2,
                                                                "spill_threshold": 100},
                                      verify={"repair_reads_per_second": 1000, "repair_burst": 1000})
        self.model: dict[str, dict[tuple[str, ...], dict]] = {n: {} for n in SPECS}
        self.version = 0
        self.last_batch = None
        self._open()

    def _open(self) -> None:
        self.cache = Cache.open(self.dir / "cache.db")
        self.engine = Engine(self.settings, fake_source(self.world), self.cache, clock=self.world.clock,
                             tables=list(SPECS))
        self.engine.writer.load_repairs()
        for rt in self.engine.tables.values():
            self.engine.writer.start_table(rt)

    def teardown(self) -> None:
        self.cache.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- writes to DynamoDB -----------------------------------------------------------------------

    def _item(self, table: str, k: int, deleted: bool = False, vkind: str = "int", extra: dict | None = None) -> dict:
        self.version += 1
        if table == "businesses":
            obj = {"business_id": f"b{k}", "name": f"n{self.version}"}
        else:
            obj = {"business_id": f"b{k % 2}", "keyword_id": f"k{k}#en", "keyword": f"w{self.version}"}
        item = codec.item_from_python(obj)
        version = {"int": {"N": str(self.version)}, "reset": {"N": "1"}, "string": {"S": f"v{self.version}"},
                   "decimal": {"N": f"{self.version}.5"}}.get(vkind)
        if version is not None:
            item["_version"] = version
        if extra is not None:
            item["blob"] = extra
        if deleted:
            item["_deleted"] = {"BOOL": True}
        return item

    def _key(self, table: str, item: dict) -> tuple[str, ...]:
        return SPECS[table].key_of(codec.to_python({"M": item}))

    @rule(table=st.sampled_from(list(SPECS)), k=st.integers(0, KEYS - 1), vkind=VERSIONS,
          extra=st.none() | attribute_values)
    def put(self, table, k, vkind, extra):
        """A put (a create, an update, a re-creation), its `_version` of any kind or reset to 1."""
        item = self._item(table, k, vkind=vkind, extra=extra)
        self.world.put(dyn(table), item)
        self.model[table][self._key(table, item)] = item

    @rule(table=st.sampled_from(list(SPECS)), k=st.integers(0, KEYS - 1), vkind=VERSIONS)
    def soft_delete(self, table, k, vkind):
        item = self._item(table, k, deleted=True, vkind=vkind)
        self.world.put(dyn(table), item)
        self.model[table].pop(self._key(table, item), None)

    @rule(table=st.sampled_from(list(SPECS)), k=st.integers(0, KEYS - 1))
    def undelete(self, table, k):
        """`_deleted` removed from a soft-deleted item without touching its `_version`."""
        key = self._key(table, self._item(table, k))
        held = self.world.tables[dyn(table)].items.get(key)
        if held is None or not codec.is_deleted(held):
            return
        item = {a: v for a, v in held.items() if a != "_deleted"}
        self.world.put(dyn(table), item)
        self.model[table][key] = item

    @rule(table=st.sampled_from(list(SPECS)), k=st.integers(0, KEYS - 1), ttl=st.booleans())
    def hard_delete(self, table, k, ttl):
        key = self._key(table, self._item(table, k))
        self.world.delete(dyn(table), key, ttl=ttl)
        self.model[table].pop(key, None)

    @rule(table=st.sampled_from(list(SPECS)), rollover=st.booleans(), which=st.integers(0, 10))
    def split_shard(self, table, rollover, which):
        opens = self.world.open_shards(dyn(table))
        if len(opens) >= 4 and not rollover:
            return
        shard = opens[which % len(opens)].shard_id
        if rollover:
            self.world.rollover(dyn(table), shard)
        else:
            self.world.split(dyn(table), shard)

    # -- the engine -------------------------------------------------------------------------------

    def _step_table(self, rt) -> None:
        tailer = rt.tailer
        if tailer is None:
            return
        try:
            batches = tailer.step(force_describe=True, poll_all=True)
        except StreamGone as e:
            rt.mark_gap(tailer.generation, e.message)
            return
        for b in batches:
            self.engine.writer.apply(b)
            if b.records:
                self.last_batch = b

    @rule(rounds=st.integers(1, 3))
    def deliver(self, rounds):
        for _ in range(rounds):
            for rt in self.engine.tables.values():
                self._step_table(rt)
            self.world.advance(1.0)
            self.engine.writer.start_or_resync()

    @precondition(lambda self: self.last_batch is not None)
    @rule()
    def redeliver(self):
        b = self.last_batch
        before = self._dump()
        rt = self.engine.tables[b.table]
        if b.generation == rt.generation and (b.checkpoint.sequence_number, b.checkpoint.closed) == self._ckpt(
                b.table, b.shard_id):
            self.engine.writer.apply(b)
            assert self._dump() == before

    @rule(cut=st.integers(0, 5))
    def crash(self, cut):
        """Kill the process mid-batch: half a transaction is lost with the connection, then restart."""
        for rt in self.engine.tables.values():
            tailer = rt.tailer
            if tailer is None or self.cache.conn.in_transaction:
                continue
            try:
                batches = tailer.step(force_describe=True, poll_all=True)
            except StreamGone:
                continue
            for b in batches[:1]:
                spec = SPECS[b.table]
                self.cache.conn.execute("BEGIN IMMEDIATE")
                self.cache._apply(spec, [to_change(spec, r) for r in b.records[:cut]], shadow=False,
                                  shard_id=b.shard_id)
                break
        self.cache.conn.close()  # uncommitted work is rolled back, as after kill -9
        self.last_batch = None
        self._open()

    @rule()
    def trim(self):
        """A long outage: more than 24 h pass and the stream trims what is older."""
        self.world.advance(25 * 3600)
        self.world.trim()

    @rule(table=st.sampled_from(list(SPECS)))
    def full_resync(self, table):
        self.engine.request_resync(table, reason="model")
        self.engine.writer.start_or_resync()

    @rule(k=st.integers(0, KEYS - 1))
    def write_path_refresh(self, k):
        """The write path's refresh puts the current DynamoDB item into the cache ahead of the stream."""
        key = (f"b{k}",)
        read_at = self.world.clock()
        item = self.world.tables[dyn("businesses")].items.get(key)
        self.cache.apply_item(BUSINESSES, key, item, read_at=read_at)

    @rule()
    def repair_reads(self):
        """The repair thread's turn at the reads the stream asked for, then the writer's at their answers."""
        self.engine.repair_reader.read()
        self.engine.writer.run_repairs()

    # -- invariants -------------------------------------------------------------------------------

    def _dump(self):
        c = self.cache.conn
        return [c.execute(f"SELECT * FROM {n} ORDER BY 1, 2").fetchall() for n in SPECS] + [
            c.execute("SELECT table_name, shard_id, stream_arn, sequence_number, closed FROM _sync_checkpoints "
                      "ORDER BY 1, 2").fetchall()]

    def _ckpt(self, table, shard):
        row = self.cache.conn.execute("SELECT sequence_number, closed FROM _sync_checkpoints WHERE table_name = ? "
                                      "AND shard_id = ?", (table, shard)).fetchone()
        return (row[0], bool(row[1])) if row else None

    @invariant()
    def integrity_ok(self):
        assert self.cache.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    @invariant()
    def checkpoint_not_ahead_of_data(self):
        """A key whose last record is at or before its shard's checkpoint holds that record's state.

        Only keys with no later record anywhere in the stream, no repair read pending and no mark of
        a direct read (a read's answer is the truth and may be newer than the stream).
        """
        stream = self.world.stream(dyn("businesses"))
        last_anywhere: dict[str, str] = {}
        for shard in stream.shards:
            for r in shard.records:
                last_anywhere[r["dynamodb"]["Keys"]["business_id"]["S"]] = r["dynamodb"]["SequenceNumber"]
        marked = {json.loads(k)[0] for (k,) in self.cache.conn.execute(
            "SELECT key FROM _sync_marks WHERE table_name = 'businesses'")}
        pending = self.engine.repairs.status()["pending"]
        for cp in self.cache.checkpoints("businesses"):
            shard = stream.shard(cp.shard_id)
            if pending or cp.sequence_number is None or shard is None or cp.stream_arn != stream.arn:
                continue
            for r in shard.records:
                d = r["dynamodb"]
                if int(d["SequenceNumber"]) > int(cp.sequence_number):
                    break
                key = d["Keys"]["business_id"]["S"]
                if last_anywhere[key] != d["SequenceNumber"] or key in marked:
                    continue
                img = d.get("NewImage")
                want = None if img is None or codec.is_deleted(img) else img
                got = Reader(self.cache.conn).get(BUSINESSES, (key,))
                assert (got is None) == (want is None) and (want is None or same(got, want)), (key, got, want)

    def _drain(self) -> None:
        quiet = 0
        for _ in range(200):
            before = self._dump()
            self.deliver(1)
            self.engine.repair_reader.read()
            self.engine.writer.run_repairs()
            pending = any(rt.resync_pending or rt.tailer is None for rt in self.engine.tables.values()) or bool(
                self.engine.repairs.pending())
            waiting = any(rt.tailer is not None and (rt.tailer.shards.waiting_for_children() or any(
                rt.tailer.shards.blocked(c) for c in rt.tailer.shards.cursors.values() if not c.finished))
                for rt in self.engine.tables.values())
            quiet = quiet + 1 if self._dump() == before and not pending and not waiting else 0
            if quiet >= 3:
                return
        raise AssertionError("the engine did not drain")

    @rule()
    def drain_and_compare(self):
        """After draining, the cache equals the model."""
        self._drain()
        for name, spec in SPECS.items():
            got = {tuple(it[k]["S"] for k in spec.key_names): it for it in Reader(self.cache.conn).items(spec)}
            assert got.keys() == self.model[name].keys(), name
            for key, item in self.model[name].items():
                assert same(got[key], item), (name, key, got[key], item)


# ~15 s; a deeper local run (400 examples x 50 steps) passed in ~3 minutes.
EngineModel.TestCase.settings = hsettings(max_examples=80, stateful_step_count=40, deadline=None,
                                          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
TestEngineModel = pytest.mark.slow(EngineModel.TestCase)


def test_sqlite_rolls_back_uncommitted_work_on_close(tmp_path):
    """The crash rule relies on this: closing a connection mid-transaction loses that transaction."""
    c = Cache.open(tmp_path / "c.db")
    c.conn.execute("BEGIN IMMEDIATE")
    c.conn.execute("INSERT INTO businesses (business_id) VALUES ('x')")
    c.conn.close()
    assert sqlite3.connect(tmp_path / "c.db").execute("SELECT count(*) FROM businesses").fetchone()[0] == 0
