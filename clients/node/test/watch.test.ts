// Watching the cache's change log against a real daemon on the embedded DynamoDB: two watchers see
// every change once and in commit order through deletes, soft deletes, re-creates, version resets, a
// SIGHUP resync and a kill -9 with a restart, one of them restarted from its saved cursor halfway; a
// cursor behind the log's retention gets `reload`; an incremental watchQuery ignores writes that
// leave its result as it was.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { CacheReader, Change, TableName, WatchBatch, Watcher } from "../src";
import { BOOL, DaemonFixture, DynamoItem, N, S, waitFor } from "./fixture";

const KEYS = ["w0", "w1", "w2", "w3", "w4", "w5"];
const STEPS_PER_PHASE = 160;

/** A watcher that records what it is given, and fails on a seq it has already passed. */
class Recorder {
  readonly seen: Change[] = [];
  readonly problems: string[] = [];
  reloads = 0;
  cursor = 0;

  onBatch = (batch: WatchBatch): void => {
    if (batch.reload) this.reloads++;
    for (const change of batch.changes) {
      const last = this.seen[this.seen.length - 1];
      if (last !== undefined && change.seq <= last.seq) this.problems.push(`seq ${change.seq} after ${last.seq}`);
      this.seen.push(change);
    }
    this.cursor = batch.cursor;
  };
}

function business(bid: string, version: number, extra: DynamoItem = {}): DynamoItem {
  return { business_id: S(bid), name: S(`${bid} v${version} ${Math.random()}`), _version: N(String(version)), ...extra };
}

/** One write of a kind the rotation picks: updates, version resets, deletes, soft deletes, re-creates, keywords. */
async function write(daemon: DaemonFixture, step: number, versions: Map<string, number>): Promise<string> {
  const bid = KEYS[step % KEYS.length]!;
  const kind = ["update", "reset", "delete", "update", "soft", "keyword", "update"][step % 7]!;
  const version = (versions.get(bid) ?? 0) + 1;
  versions.set(bid, version);
  if (kind === "update") await daemon.put("businesses", business(bid, version));
  else if (kind === "reset") await daemon.put("businesses", business(bid, 1));
  else if (kind === "delete") await daemon.delete("businesses", { business_id: S(bid) });
  else if (kind === "soft") await daemon.put("businesses", business(bid, version, { _deleted: BOOL(true) }));
  else await daemon.put("keywords", { business_id: S(bid), keyword_id: S(`k${step}#en`), keyword: S("k"), language: S("en") });
  return kind;
}

describe("watching the change log of a real daemon", () => {
  let daemon: DaemonFixture;
  before(async () => {
    daemon = await DaemonFixture.start({ businesses: KEYS.map((bid) => business(bid, 1)) });
  });
  after(async () => {
    await daemon?.stop();
  });

  test("two watchers see every change once and in order through a resync, a kill -9 and a watcher restart",
    { timeout: 150_000 }, async (t) => {
      const readers = [new CacheReader(daemon.cache), new CacheReader(daemon.cache), new CacheReader(daemon.cache)];
      const [steady, half, check] = readers as [CacheReader, CacheReader, CacheReader];
      const start = check.changeCursor();
      const a = new Recorder();
      const b = new Recorder();
      const errors: unknown[] = [];
      const onError = (e: unknown) => errors.push(e);
      const watchers: Watcher[] = [steady.watch(null, a.onBatch, { cursor: start, onError })];
      let bWatcher = half.watch(null, b.onBatch, { cursor: start, onError });
      const versions = new Map<string, number>();
      const kinds = new Set<string>();
      let step = 0;
      const writes = async (n: number) => {
        for (let i = 0; i < n; i++) kinds.add(await write(daemon, step++, versions));
      };
      try {
        await writes(STEPS_PER_PHASE);
        await daemon.resync();
        await writes(STEPS_PER_PHASE / 2);
        // Halfway: the second watcher stops, its process "restarts" with the cursor it saved.
        await waitFor(() => b.seen.length > 0, 20_000, "the second watcher's first changes");
        bWatcher.stop();
        half.close();
        const saved = b.cursor;
        await writes(STEPS_PER_PHASE / 2);
        await daemon.killDaemon();
        await writes(10); // while the daemon is down: applied after its restart
        await daemon.startDaemon();
        const again = new CacheReader(daemon.cache);
        readers.push(again);
        bWatcher = again.watch(null, b.onBatch, { cursor: saved, onError });
        await writes(STEPS_PER_PHASE);
        await daemon.put("businesses", business("end-marker", 1));
        const done = (r: Recorder) => r.seen.some((c) => c.key?.business_id === "end-marker");
        await waitFor(() => done(a) && done(b), 60_000, "both watchers to see the last write");
        // Records of earlier writes (another table's stream, a repair read) may still be committed
        // after the marker: the comparison is up to a log position both watchers have passed.
        const end = check.changeCursor();
        await waitFor(() => a.cursor >= end && b.cursor >= end, 60_000, "both watchers to reach the log's end");

        // The truth: every entry the log holds after the start cursor, read in pages, in one snapshot
        // with the rows it describes.
        const truth: Change[] = [];
        const held = new Map<string, boolean>();
        check.read(() => {
          for (let cursor = start; ;) {
            const page = check.changesSince(cursor, { limit: 100 });
            assert.equal(page.reload, false);
            truth.push(...page.changes);
            cursor = page.cursor;
            if (!page.more) break;
          }
          for (const bid of [...KEYS, "end-marker"]) {
            held.set(bid, check.raw("SELECT 1 FROM businesses WHERE business_id = ?", bid).length === 1);
          }
        });
        const upToEnd = (cs: Change[]) => cs.filter((c) => c.seq <= end).map((c) => c.seq);
        assert.deepEqual(a.problems, []);
        assert.deepEqual(b.problems, []);
        assert.deepEqual(upToEnd(a.seen), upToEnd(truth));
        assert.deepEqual(upToEnd(b.seen), upToEnd(truth));
        assert.equal(a.reloads + b.reloads, 0);
        // The log is complete: for every key written, its last logged change matches what the cache holds.
        for (const bid of [...KEYS, "end-marker"]) {
          const last = [...truth].reverse().find((c) => c.table === "businesses" && c.key?.business_id === bid);
          assert.equal(last?.op, held.get(bid) ? "upsert" : "delete", `last change of ${bid}`);
        }
        const ops = new Set(truth.map((c) => `${c.table}:${c.op}`));
        assert.ok(ops.has("businesses:upsert") && ops.has("businesses:delete") && ops.has("keywords:upsert"),
          [...ops].join(","));
        assert.deepEqual([...kinds].sort(), ["delete", "keyword", "reset", "soft", "update"]);
        t.diagnostic(`${step + 1} writes, ${truth.length} changes (${[...ops].join(", ")}), ` +
          `second watcher restarted at cursor ${saved}, ${errors.length} transient read errors`);
        // Reads fail only while the daemon is being killed and restarted (the contract's brief states).
        for (const e of errors) assert.match(String(e), /SQLITE_READONLY_RECOVERY|SQLITE_BUSY|locked|recovery/i);
      } finally {
        for (const w of [...watchers, bWatcher]) w.stop();
        for (const r of readers) {
          try {
            r.close();
          } catch {
            // already closed
          }
        }
      }
    });

  test("a cursor behind the log's retention gets reload and the end of the log", () => {
    const reader = new CacheReader(daemon.cache);
    try {
      const floor = Number(reader.raw<{ v: number }>(
        "SELECT CAST(value AS INTEGER) AS v FROM _sync_meta WHERE key = 'changes_floor'")[0]!.v);
      const behind = reader.changesSince(floor - 1);
      assert.deepEqual([behind.reload, behind.changes, behind.cursor], [true, [], reader.changeCursor()]);
      assert.equal(reader.changesSince(0).reload, true); // no position at all: read everything
      assert.equal(reader.changesSince(reader.changeCursor()).reload, false);
    } finally {
      reader.close();
    }
  });

  test("an incremental watchQuery does not call back for a write that leaves its result unchanged",
    { timeout: 60_000 }, async () => {
      const reader = new CacheReader(daemon.cache);
      const results: unknown[][] = [];
      const plain: unknown[][] = [];
      const seen: Change[] = [];
      const sql = "SELECT business_id, name FROM businesses WHERE business_id = ?";
      const incremental = reader.watchQuery(sql, ["inc-1"], (rows) => void results.push(rows), { incremental: true });
      const everyTime = reader.watchQuery(sql, ["inc-1"], (rows) => void plain.push(rows));
      const tables: TableName[] = ["businesses"];
      const watcher = reader.watch(tables, (batch) => void seen.push(...batch.changes));
      try {
        await waitFor(() => results.length === 1 && plain.length === 1, 10_000, "the first results");
        await daemon.put("businesses", business("inc-other", 1));
        await waitFor(() => seen.some((c) => c.key?.business_id === "inc-other"), 30_000, "the unrelated write");
        const seq = seen.find((c) => c.key?.business_id === "inc-other")!.seq;
        // Both queries have handled that change (their cursors moved past it): the plain one called back.
        await waitFor(() => incremental.cursor >= seq && everyTime.cursor >= seq, 30_000, "both queries to re-run");
        assert.equal(plain.length, 2, "the plain query did not run again");
        assert.equal(results.length, 1, "the incremental query called back for a result that did not change");
        await daemon.put("businesses", { business_id: S("inc-1"), name: S("now here") });
        await waitFor(() => results.length === 2, 30_000, "the incremental query to see its row");
        assert.deepEqual(results[1], [{ business_id: "inc-1", name: "now here" }]);
      } finally {
        incremental.stop();
        everyTime.stop();
        watcher.stop();
        reader.close();
      }
    });
});
