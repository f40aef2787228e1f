// A generation-server reader for lifecycle.test.ts: a child process that becomes another uid with
// the cache's group as a supplementary group, then reads the cache through CacheReader without pause,
// a fresh connection for every read (opening is where missing -wal/-shm files would bite), and counts
// its reads and errors per phase of the daemon's life that the parent names.
//
// Messages over the IPC channel. Parent -> child: {type: "phase", name}, {type: "finish"}.
// Child -> parent: {type: "ready", ...identity and access checks}, then {type: "progress", phase,
// reads, errors, lastError} every PROGRESS_MS, and {type: "result", phases, messages} after "finish".
import fs from "node:fs";
import path from "node:path";

import { CacheReader, TABLE_NAMES, TableName } from "../src";

export interface GroupReaderConfig {
  cache: string;
  uid: number;
  /** Supplementary groups: the cache's group. The primary group is the uid's own, as for a system user. */
  groups: number[];
  expectedCounts: Record<TableName, number>;
  /** A business whose profile every read fetches. */
  businessId: string;
}

export interface PhaseTally {
  reads: number;
  errors: number;
}

export type ReaderMessage =
  | { type: "ready"; uid: number; gid: number; groups: number[]; dataDirWritable: boolean; cacheWritable: boolean }
  | { type: "progress"; phase: string; reads: number; errors: number; lastError: string | null }
  | { type: "result"; phases: Record<string, PhaseTally>; messages: string[] };

export type ParentMessage = { type: "phase"; name: string } | { type: "finish" };

const PROGRESS_MS = 10;
const MAX_MESSAGES = 20;

/** The SQLite error code of a failed read, looking through CacheReader's wrapping. */
function codeOf(error: unknown): string {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return error instanceof Error ? error.name : "thrown";
}

/** True when this process may open `file` with `flags` (the file is closed again, never changed). */
function mayOpen(file: string, flags: string): boolean {
  try {
    fs.closeSync(fs.openSync(file, flags));
    return true;
  } catch {
    return false;
  }
}

function main(): void {
  const config = JSON.parse(process.argv[2]!) as GroupReaderConfig;
  const send = (message: ReaderMessage) => process.send!(message);
  // Groups first: once the uid is dropped, changing them is no longer allowed.
  process.setgroups!(config.groups);
  process.setgid!(config.uid);
  process.setuid!(config.uid);
  const probe = path.join(path.dirname(config.cache), `probe-${process.pid}`);
  const dataDirWritable = mayOpen(probe, "wx");
  if (dataDirWritable) fs.rmSync(probe, { force: true });
  send({
    type: "ready", uid: process.getuid!(), gid: process.getgid!(), groups: process.getgroups!(),
    dataDirWritable, cacheWritable: mayOpen(config.cache, "r+"),
  });

  const phases: Record<string, PhaseTally> = {};
  const messages: string[] = [];
  let phase = "before the first phase";
  let finishing = false;
  const tally = () => (phases[phase] ??= { reads: 0, errors: 0 });
  process.on("message", (message: ParentMessage) => {
    if (message.type === "phase") phase = message.name;
    else finishing = true;
  });
  let errors = 0;
  let lastError: string | null = null;
  const progress = setInterval(() => send({ type: "progress", phase, reads: tally().reads, errors, lastError }),
    PROGRESS_MS);

  const readOnce = () => {
    const readPhase = phase; // a read belongs to the phase it started in
    try {
      const reader = CacheReader.open(config.cache);
      try {
        const counts = reader.counts();
        const wrong = TABLE_NAMES.filter((t) => counts[t] !== config.expectedCounts[t]);
        if (wrong.length > 0) throw new Error(`wrong row counts: ${JSON.stringify(counts)}`);
        if (reader.businessProfile(config.businessId) === null) throw new Error(`${config.businessId} is missing`);
        if (!reader.isReady()) throw new Error("the cache is not marked complete");
      } finally {
        reader.close();
      }
      (phases[readPhase] ??= { reads: 0, errors: 0 }).reads++;
    } catch (error) {
      (phases[readPhase] ??= { reads: 0, errors: 0 }).errors++;
      errors++;
      lastError = `${readPhase}: ${codeOf(error)}: ${error instanceof Error ? error.message : String(error)}`;
      if (messages.length < MAX_MESSAGES) messages.push(lastError);
    }
  };

  // One read per turn of the event loop, so the parent's messages are handled between reads.
  const step = () => {
    if (finishing) {
      clearInterval(progress);
      send({ type: "result", phases, messages });
      process.disconnect();
      return;
    }
    readOnce();
    setImmediate(step);
  };
  setImmediate(step);
}

if (require.main === module) main();
