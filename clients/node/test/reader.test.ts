// CacheReader on small hand-made cache files: readiness, the busy retry, and open errors.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { after, test } from "node:test";

import Database from "better-sqlite3";

import { CacheReader, CacheUnavailableError, TABLE_NAMES, TABLES } from "../src";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reader-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A cache file shaped like the daemon's: the five tables and its bookkeeping, in rollback-journal mode. */
function makeCache(name: string, fill: (db: Database.Database) => void): string {
  const file = path.join(dir, name);
  const db = new Database(file);
  for (const table of TABLE_NAMES) {
    db.exec(`CREATE TABLE "${table}" (${TABLES[table].columnNames.map((c) => `"${c}"`).join(", ")})`);
  }
  db.exec("CREATE TABLE _sync_tables (table_name TEXT PRIMARY KEY, stream_arn TEXT, last_full_sync REAL, " +
    "full_sync_reason TEXT)");
  db.exec("CREATE TABLE _sync_checkpoints (table_name TEXT, shard_id TEXT, updated_at REAL)");
  fill(db);
  db.close();
  return file;
}

const syncAll = (at: number) => (db: Database.Database) => {
  for (const t of TABLE_NAMES) db.prepare("INSERT INTO _sync_tables VALUES (?, 'arn', ?, 'first')").run(t, at);
};

test("with the readiness marker: ready and times come from it", () => {
  const file = makeCache("marker.db", (db) => {
    db.exec("CREATE TABLE _sync_readiness (id INTEGER PRIMARY KEY, complete INTEGER, completed_at REAL, " +
      "last_commit_at REAL)");
    db.prepare("INSERT INTO _sync_readiness VALUES (1, 1, 1700000000.5, 1700000100.25)").run();
  });
  const reader = CacheReader.open(file);
  try {
    const fresh = reader.freshness();
    assert.equal(fresh.source, "readiness_marker");
    assert.equal(fresh.ready, true);
    assert.equal(fresh.completedAt!.getTime(), 1700000000500);
    assert.equal(fresh.lastCommitAt!.getTime(), 1700000100250);
    assert.ok(fresh.ageMs! > 0);
  } finally {
    reader.close();
  }
});

test("a marker that says incomplete means not ready, whatever the sync state says", () => {
  const file = makeCache("marker-incomplete.db", (db) => {
    syncAll(1700000000)(db);
    db.exec("CREATE TABLE _sync_readiness (id INTEGER PRIMARY KEY, complete INTEGER, completed_at REAL, " +
      "last_commit_at REAL)");
    db.prepare("INSERT INTO _sync_readiness VALUES (1, 0, NULL, 1700000100)").run();
  });
  const reader = CacheReader.open(file);
  try {
    assert.equal(reader.isReady(), false);
    assert.equal(reader.freshness().completedAt, null);
  } finally {
    reader.close();
  }
});

test("without the marker: ready only when every table has a full sync; last commit from checkpoints", () => {
  const partial = makeCache("partial.db", (db) => {
    db.prepare("INSERT INTO _sync_tables VALUES ('businesses', 'arn', 1700000000, 'first')").run();
  });
  const complete = makeCache("complete.db", (db) => {
    syncAll(1700000000)(db);
    db.prepare("INSERT INTO _sync_checkpoints VALUES ('keywords', 'shard', 1700000200)").run();
  });
  const readers = [CacheReader.open(partial), CacheReader.open(complete)];
  try {
    assert.equal(readers[0]!.isReady(), false);
    const fresh = readers[1]!.freshness();
    assert.equal(fresh.source, "sync_state");
    assert.equal(fresh.ready, true);
    assert.equal(fresh.completedAt!.getTime(), 1700000000000);
    assert.equal(fresh.lastCommitAt!.getTime(), 1700000200000);
  } finally {
    readers.forEach((r) => r.close());
  }
});

test("a missing cache file is an error that names it, and no file is created", () => {
  const missing = path.join(dir, "missing.db");
  assert.throws(() => CacheReader.open(missing), (e: unknown) => e instanceof CacheUnavailableError &&
    e.message.includes(missing));
  assert.equal(fs.existsSync(missing), false);
});

test("a SQLite file that is not a cache: a typed query says so", () => {
  const file = path.join(dir, "other.db");
  new Database(file).exec("CREATE TABLE other (x)").close();
  const reader = CacheReader.open(file);
  try {
    assert.throws(() => reader.businesses(), (e: unknown) => e instanceof CacheUnavailableError &&
      /not a seo-sync cache/.test(e.message));
    assert.throws(() => reader.raw("SELECT * FROM typo"), (e: unknown) => !(e instanceof CacheUnavailableError) &&
      /no such table: typo/.test(String(e)));
  } finally {
    reader.close();
  }
});

test("a read that meets a held lock fails without retries, and succeeds with them once it is released", async () => {
  const file = makeCache("busy.db", syncAll(1700000000));
  // Another process takes the write lock in rollback-journal mode (as the daemon does while it
  // switches journal modes): readers get SQLITE_BUSY until it lets go.
  const holder = spawn(process.execPath, ["-e", `
    const db = new (require("better-sqlite3"))(${JSON.stringify(file)});
    db.exec("BEGIN EXCLUSIVE");
    console.log("locked");
    process.stdin.once("data", () => setTimeout(() => { db.exec("COMMIT"); console.log("released"); }, 100));
  `], { cwd: path.join(__dirname, "..", ".."), stdio: ["pipe", "pipe", "inherit"] });
  const lines = readline.createInterface({ input: holder.stdout })[Symbol.asyncIterator]();
  try {
    assert.equal((await lines.next()).value, "locked");
    const impatient = CacheReader.open(file, { busyTimeoutMs: 10, busyRetries: 0 });
    assert.throws(() => impatient.counts(), (e: unknown) => (e as { code?: string }).code === "SQLITE_BUSY");
    impatient.close();
    // Let the holder go 100 ms from now; the retries (50 ms doubling, 10 tries: 51 s in all) outlast it.
    await new Promise((resolve) => holder.stdin.write("go\n", resolve));
    const patient = CacheReader.open(file, { busyTimeoutMs: 10, busyRetries: 10 });
    assert.equal(patient.counts().businesses, 0);
    patient.close();
  } finally {
    holder.kill();
  }
});

test("a read meeting a WAL index a read-only connection cannot use yet is retried; another error is not", () => {
  const file = makeCache("wal-index.db", syncAll(1700000000));
  const reader = CacheReader.open(file, { busyRetries: 2 });
  const failing = (code: string, times: number) => {
    let calls = 0;
    const fn = () => {
      calls += 1;
      if (calls <= times) throw Object.assign(new Error("attempt to write a readonly database"), { code });
      return "read";
    };
    return { fn, calls: () => calls };
  };
  try {
    for (const code of ["SQLITE_READONLY_RECOVERY", "SQLITE_READONLY_CANTINIT"]) {
      const once = failing(code, 1);
      assert.equal(reader.read(once.fn), "read", code);
      assert.equal(once.calls(), 2, code);
    }
    const other = failing("SQLITE_IOERR", 1);
    assert.throws(() => reader.read(other.fn));
    assert.equal(other.calls(), 1);
  } finally {
    reader.close();
  }
});

test("read() is one snapshot: a row committed between its statements shows only in the next read", () => {
  const file = makeCache("snapshot.db", syncAll(1700000000));
  const writer = new Database(file);
  writer.pragma("journal_mode = WAL"); // as the daemon runs it: writers do not wait for readers
  const reader = CacheReader.open(file);
  try {
    const [first, second] = reader.read(() => {
      const before = reader.counts().businesses;
      writer.prepare("INSERT INTO businesses (business_id, name) VALUES ('new', 'New')").run();
      return [before, reader.counts().businesses];
    });
    assert.equal(first, 0);
    assert.equal(second, 0);
    assert.equal(reader.counts().businesses, 1);
    assert.equal(reader.business("new")!.business.name, "New");
  } finally {
    reader.close();
    writer.close();
  }
});
