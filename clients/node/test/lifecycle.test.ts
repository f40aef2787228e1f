// Node readers in the service group never see an error through the real daemon's life cycle:
// starts, SIGHUP resyncs, clean stops (SIGTERM) and SIGKILLs. The daemon runs as its own user with
// UMask 0027 in a 0750 data directory, as the unit runs it; the readers run as another uid with the
// daemon's group as a supplementary group, so they may read the cache but create nothing beside it.
import assert from "node:assert/strict";
import { ChildProcess, fork } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

import { TABLE_NAMES, TableName } from "../src";
import { BOOL, DaemonFixture, DynamoItem, M, N, S, waitFor } from "./fixture";
import type { GroupReaderConfig, ParentMessage, PhaseTally, ReaderMessage } from "./group-reader";

// Numeric ids with no user database entries; the test runs as root and switches to them.
const CACHE_GID = 64210; // the `seo-sync` group
const DAEMON_UID = 64211; // the `seo-sync` user
const READER_UID = 64212; // the generation server, a member of CACHE_GID
const READERS = 2;
const CYCLES = 10; // each: resync, then a clean stop (even) or SIGKILL (odd), then a start
const READS_PER_PHASE = 5; // reads every reader completes in each steady phase before the next event
const PHASE_TIMEOUT_MS = 30_000;
const READER_NICENESS = 10;
const BUSINESSES = 40;

/** A small data set: a resync of every table still takes a few hundred milliseconds through moto. */
function seedItems(): Record<TableName, DynamoItem[]> {
  const out: Record<TableName, DynamoItem[]> = {
    businesses: [], questionnaires: [], keywords: [], service_areas: [], prompt_templates: [],
  };
  for (let i = 0; i < BUSINESSES; i++) {
    const bid = S(`life-${String(i).padStart(3, "0")}`);
    out.businesses.push({ business_id: bid, name: S(`Life ${i}`), _version: N("1") });
    out.questionnaires.push({ business_id: bid, data: M({ i: N(String(i)) }), _version: N("1") });
    for (const k of ["a", "b", "c"]) {
      out.keywords.push({ business_id: bid, keyword_id: S(`${k}#en`), keyword: S(k), language: S("en") });
    }
    out.service_areas.push({ business_id: bid, area_id: S("town"), city: S("Town"), priority: N("1") });
    out.prompt_templates.push({ business_id: bid, template_id: S("home#1"), page_type: S("home"), version: N("1"),
      is_active: BOOL(true), template: S("t") });
  }
  return out;
}

/** Reader child processes (group-reader.ts), each reporting its reads in the phase the test names. */
class GroupReaders {
  private readonly children: ChildProcess[] = [];
  private readonly ready: (ReaderMessage & { type: "ready" })[] = [];
  private readonly progress: (ReaderMessage & { type: "progress" } & { receivedAt: number })[] = [];
  private readonly results: (ReaderMessage & { type: "result" })[] = [];
  private readonly exits: (number | string | null)[] = [];

  constructor(config: GroupReaderConfig, count: number) {
    for (let i = 0; i < count; i++) {
      const child = fork(path.join(__dirname, "group-reader.js"), [JSON.stringify(config)], { stdio: "inherit" });
      this.progress.push({ type: "progress", phase: "", reads: 0, errors: 0, lastError: null, receivedAt: Date.now() });
      child.on("message", (message: ReaderMessage) => {
        if (message.type === "ready") this.ready[i] = message;
        else if (message.type === "progress") this.progress[i] = { ...message, receivedAt: Date.now() };
        else this.results[i] = message;
      });
      child.on("exit", (code, signal) => (this.exits[i] = code ?? signal));
      // Readers yield the CPU to the daemon: two readers reading without pause on a small machine made
      // each start twice as slow; niced they still read hundreds of times during every start and resync.
      os.setPriority(child.pid!, READER_NICENESS);
      this.children.push(child);
    }
  }

  private alive(): void {
    const gone = this.exits.findIndex((e) => e !== undefined);
    if (gone >= 0 && this.results[gone] === undefined) throw new Error(`reader ${gone} exited (${this.exits[gone]})`);
  }

  /** Each reader's identity and access checks, once all have dropped to the reader uid. */
  async identities(): Promise<(ReaderMessage & { type: "ready" })[]> {
    await waitFor(() => {
      this.alive();
      return this.ready.filter(Boolean).length === this.children.length;
    }, PHASE_TIMEOUT_MS, "the readers to start", 10);
    return this.ready;
  }

  /** From now on, reads count towards `name`. */
  enter(name: string): void {
    for (const child of this.children) child.send({ type: "phase", name } satisfies ParentMessage);
  }

  /** Enter `name` and wait until every reader has completed `reads` reads in it. */
  async readThrough(name: string, reads = READS_PER_PHASE): Promise<void> {
    this.enter(name);
    try {
      await waitFor(() => {
        this.alive();
        // Fail at the first error rather than at the end: a broken daemon makes every later read fail.
        if (this.progress.some((p) => p.errors > 0)) throw new Error(`a reader saw an error by "${name}"`);
        return this.progress.every((p) => p.phase === name && p.reads >= reads);
      }, PHASE_TIMEOUT_MS, `${reads} reads by every reader in "${name}"`, 10);
    } catch (error) {
      // A reader that stopped reporting is blocked inside one read (better-sqlite3 is synchronous).
      const state = this.progress.map((p, i) => `reader ${i}: ${p.reads} reads in "${p.phase}", ${p.errors} errors ` +
        `(last: ${p.lastError}), silent for ${Date.now() - p.receivedAt} ms`);
      throw new Error(`${(error as Error).message}; ${state.join("; ")}`);
    }
  }

  /** Stop every reader; their tallies per phase and first error messages. */
  async finish(): Promise<(ReaderMessage & { type: "result" })[]> {
    for (const child of this.children) if (child.connected) child.send({ type: "finish" } satisfies ParentMessage);
    await waitFor(() => this.exits.filter((e) => e !== undefined).length === this.children.length,
      PHASE_TIMEOUT_MS, "the readers to exit", 10);
    return this.children.map((_, i) => this.results[i] ?? { type: "result", phases: {}, messages: ["no result"] });
  }

  /** Kill readers still running (after a failure). */
  kill(): void {
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

function modeOf(file: string): { mode: string; uid: number; gid: number } {
  const st = fs.statSync(file);
  return { mode: (st.mode & 0o777).toString(8), uid: st.uid, gid: st.gid };
}

const asRoot = process.getuid?.() === 0;

test("Node readers of another uid in the service group see zero errors through 10 daemon starts, " +
  "10 SIGHUP resyncs, 5 SIGTERM stops and 5 SIGKILLs", {
  skip: asRoot ? false : "switching to other uids needs root (CI runs as root)",
  timeout: 240_000,
}, async (t) => {
  const seed = seedItems();
  const daemon = await DaemonFixture.start(seed, { serviceUser: { uid: DAEMON_UID, gid: CACHE_GID } });
  let readers: GroupReaders | undefined;
  try {
    const expectedCounts = Object.fromEntries(TABLE_NAMES.map((name) => [name, seed[name].length])) as
      Record<TableName, number>;
    readers = new GroupReaders({ cache: daemon.cache, uid: READER_UID, groups: [CACHE_GID], expectedCounts,
      businessId: "life-000" }, READERS);
    for (const who of await readers.identities()) {
      // getgroups() lists the primary group too.
      assert.deepEqual([who.uid, who.gid, new Set(who.groups)],
        [READER_UID, READER_UID, new Set([READER_UID, CACHE_GID])]);
      assert.equal(who.dataDirWritable, false, "a reader may create a file in the data directory");
      assert.equal(who.cacheWritable, false, "a reader may open the cache for writing");
    }

    const started = Date.now();
    const eventMs: Record<string, number> = {};
    const timed = async <T>(phase: string, action: () => Promise<T>): Promise<T> => {
      readers!.enter(phase);
      const at = Date.now();
      try {
        return await action();
      } finally {
        eventMs[phase] = Date.now() - at;
      }
    };
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      await readers.readThrough(`running ${cycle}`);
      await timed(`resync ${cycle}`, () => daemon.resync());
      await readers.readThrough(`resynced ${cycle}`);
      if (cycle % 2 === 0) {
        const code = await timed(`sigterm ${cycle}`, () => daemon.terminateDaemon());
        assert.equal(code, 0, `the daemon's exit code after SIGTERM; log: ${daemon.daemonLog()}`);
        await readers.readThrough(`stopped ${cycle}`);
      } else {
        await timed(`sigkill ${cycle}`, () => daemon.killDaemon());
        // A kill landing inside a commit leaves a WAL index only a writer may rebuild: readers then
        // retry (SQLITE_READONLY_RECOVERY) until the daemon starts again, as the reader contract
        // says. They must see no error while it is down, but need not finish a read before it is back.
        readers.enter(`stopped ${cycle}`);
      }
      await timed(`start ${cycle}`, () => daemon.startDaemon());
    }
    await readers.readThrough(`running ${CYCLES}`);
    const results = await readers.finish();

    const errors = results.map((r) => Object.values(r.phases).reduce((sum, p) => sum + p.errors, 0));
    assert.deepEqual(errors, new Array(READERS).fill(0), JSON.stringify(results.map((r) => r.messages), null, 1));
    // Never vacuous: every reader read in every phase, the starts and resyncs included (they take
    // from a few hundred milliseconds to seconds; a read takes about a millisecond).
    const phases = Object.keys(eventMs).filter((p) => !p.startsWith("sig"));
    for (const [i, result] of results.entries()) {
      const idle = phases.filter((p) => (result.phases[p]?.reads ?? 0) === 0);
      assert.deepEqual(idle, [], `reader ${i} did not read in these phases`);
    }

    // The layout the readers met is the unit's: they read because of the group, not the mode.
    assert.deepEqual(modeOf(daemon.dataDir), { mode: "750", uid: DAEMON_UID, gid: CACHE_GID });
    for (const name of ["cache.db", "cache.db-wal", "cache.db-shm"]) {
      assert.deepEqual(modeOf(path.join(daemon.dataDir, name)), { mode: "640", uid: DAEMON_UID, gid: CACHE_GID },
        name);
    }

    const tally = (kind: string) => results.map((r) => Object.entries(r.phases)
      .filter(([p]) => p.startsWith(kind)).reduce((sum, [, p]: [string, PhaseTally]) => sum + p.reads, 0));
    const durations = (kind: string) => {
      const ms = Object.entries(eventMs).filter(([p]) => p.startsWith(kind)).map(([, v]) => v);
      return `mean ${Math.round(ms.reduce((a, b) => a + b, 0) / ms.length)} ms, max ${Math.max(...ms)} ms`;
    };
    t.diagnostic(`cycles took ${Date.now() - started} ms; reads per reader during starts ${tally("start")}, ` +
      `resyncs ${tally("resync ")}, SIGTERMs ${tally("sigterm")}, SIGKILLs ${tally("sigkill")}; starts ` +
      `${durations("start")}, resyncs ${durations("resync ")}, SIGTERMs ${durations("sigterm")}`);
  } finally {
    readers?.kill();
    await daemon.stop();
  }
});
