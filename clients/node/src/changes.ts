// What changed in the cache: the daemon's change log (`_sync_changes`, docs/reader-contract.md) read
// after a cursor, watched for new commits, and queries re-run when a table they read changes.
import { CacheUnavailableError } from "./errors";
import { CHANGE_LOG_TABLE, ChangeOp, TABLE_NAMES, TABLES, TableName } from "./generated/schema";
import type { CacheReader } from "./reader";

/** One change of a live table, as the daemon committed it. */
export interface Change {
  /** Position in the log; only grows. */
  seq: number;
  table: TableName;
  /** upsert: the key's row was written (it may equal the old one); delete: it was removed; reload: the
   *  whole table may have changed, read it again (key null). */
  op: ChangeOp;
  /** The key by attribute name (`{ business_id, keyword_id }`); null for a reload. */
  key: Record<string, string> | null;
  /** When the daemon committed it. */
  at: Date;
}

/** Changes after a cursor. */
export interface ChangesPage {
  changes: Change[];
  /** Where to continue from (save it to resume after a restart). */
  cursor: number;
  /** The cursor fell behind the log's retention (or belongs to another cache file): changes were
   *  dropped, so read everything again from a snapshot; then continue from `cursor`. */
  reload: boolean;
  /** The page was full (`limit`): more changes follow right after `cursor`. */
  more: boolean;
}

export interface ChangesSinceOptions {
  /** Only these tables' changes (the cursor still moves past the others). Default: all. */
  tables?: readonly TableName[];
  /** At most this many log entries read. Default 1000. */
  limit?: number;
}

const SQL = {
  floor: "SELECT CAST(value AS INTEGER) AS v FROM _sync_meta WHERE key = 'changes_floor'",
  last: `SELECT seq AS v FROM sqlite_sequence WHERE name = '${CHANGE_LOG_TABLE}'`,
  page: `SELECT seq, table_name, key, op, at FROM ${CHANGE_LOG_TABLE} WHERE seq > ? ORDER BY seq LIMIT ?`,
  hasLog: `SELECT 1 AS v FROM sqlite_master WHERE type = 'table' AND name = '${CHANGE_LOG_TABLE}'`,
} as const;

interface LogRow {
  seq: number;
  table_name: string;
  key: string | null;
  op: string;
  at: number;
}

function scalar(reader: CacheReader, sql: string): number | null {
  const row = reader.raw<{ v: number | bigint | null }>(sql)[0];
  return row === undefined || row.v === null ? null : Number(row.v);
}

function requireLog(reader: CacheReader): void {
  if (scalar(reader, SQL.hasLog) === null) {
    throw new CacheUnavailableError(`${reader.path} has no change log`,
      "the daemon writing it predates the change log; upgrade seo-sync");
  }
}

function toChange(row: LogRow): Change {
  const table = row.table_name as TableName;
  let key: Record<string, string> | null = null;
  if (row.key !== null) {
    const values = JSON.parse(row.key) as string[];
    key = {};
    TABLES[table].keyNames.forEach((name, i) => (key![name] = values[i]!));
  }
  return { seq: Number(row.seq), table, op: row.op as ChangeOp, key, at: new Date(row.at * 1000) };
}

/** The cursor at the end of the log now: a reader that has just read a snapshot starts here. */
export function currentCursor(reader: CacheReader): number {
  return reader.read(() => {
    requireLog(reader);
    return scalar(reader, SQL.last) ?? scalar(reader, SQL.floor) ?? 0;
  });
}

/** The changes after `cursor`, read in one read transaction. */
export function changesSince(reader: CacheReader, cursor: number, options: ChangesSinceOptions = {}): ChangesPage {
  const limit = options.limit ?? 1000;
  const only = options.tables === undefined ? null : new Set<string>(options.tables);
  return reader.read(() => {
    requireLog(reader);
    const floor = scalar(reader, SQL.floor) ?? 0;
    const last = scalar(reader, SQL.last) ?? floor;
    if (cursor < floor || cursor > last) return { changes: [], cursor: last, reload: true, more: false };
    const rows = reader.raw<LogRow>(SQL.page, cursor, limit);
    const end = rows.length === limit ? Number(rows[rows.length - 1]!.seq) : last;
    const changes = rows.filter((r) => only === null || only.has(r.table_name)).map(toChange);
    return { changes, cursor: end, reload: false, more: end < last };
  });
}

/** What a watch callback gets: the changes of its tables since the last call, in commit order. */
export interface WatchBatch {
  changes: Change[];
  /** Save it: `watch(..., { cursor })` resumes right after this batch. */
  cursor: number;
  /** The watcher fell behind the log's retention: changes were lost, re-read the watched tables. */
  reload: boolean;
}

export interface WatchOptions {
  /** At most one callback per this many ms; changes in between are delivered together. Default 30. */
  throttleMs?: number;
  /** How often PRAGMA data_version is checked for a new commit. Default 25. */
  pollMs?: number;
  /** Resume after this cursor (saved from a WatchBatch). Default: the end of the log now. */
  cursor?: number;
  /** Errors of reads (a cache briefly unavailable) and of the callback. Default: a process warning. */
  onError?: (error: unknown) => void;
}

/** A running watch; stop() ends it. */
export class Watcher {
  private timer: NodeJS.Timeout | null = null;
  private version: number | null = null;
  private lastCall = 0;
  private pending: boolean;
  private stopped = false;
  private readonly tables: Set<string> | null;
  private readonly throttleMs: number;
  private readonly pollMs: number;
  private readonly onError: (error: unknown) => void;
  private position: number;

  constructor(
    private readonly reader: CacheReader,
    tables: readonly TableName[] | null,
    private readonly callback: (batch: WatchBatch) => void | Promise<void>,
    options: WatchOptions = {},
  ) {
    for (const t of tables ?? []) if (!(TABLE_NAMES as string[]).includes(t)) throw new TypeError(`no table ${t}`);
    this.tables = tables === null ? null : new Set(tables);
    this.throttleMs = options.throttleMs ?? 30;
    this.pollMs = options.pollMs ?? 25;
    this.onError = options.onError ?? ((error) => process.emitWarning(`seo-sync watch: ${String(error)}`));
    this.version = this.dataVersion();
    this.position = options.cursor ?? currentCursor(reader);
    this.pending = options.cursor !== undefined; // a saved cursor may have changes waiting already
    this.schedule(this.pending ? 0 : this.pollMs);
  }

  /** The cursor after the last delivered batch. */
  get cursor(): number {
    return this.position;
  }

  /** Stop watching (a batch being delivered finishes). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private dataVersion(): number | null {
    try {
      return this.reader.dataVersion();
    } catch (error) {
      this.onError(error);
      return null;
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref?.();
  }

  private async tick(): Promise<void> {
    this.timer = null;
    const version = this.dataVersion();
    if (version !== null && version !== this.version) this.pending = true;
    if (!this.pending || version === null) return this.schedule(this.pollMs);
    const wait = this.lastCall + this.throttleMs - Date.now();
    if (wait > 0) return this.schedule(Math.min(wait, this.pollMs));
    // Take the version before reading: a commit landing during the read wakes the next tick.
    this.version = version;
    this.pending = false;
    try {
      await this.drain();
    } catch (error) {
      this.pending = true; // read again at the next tick; nothing was delivered past the cursor
      this.onError(error);
    }
    this.schedule(this.pollMs);
  }

  private async drain(): Promise<void> {
    const changes: Change[] = [];
    let cursor = this.position;
    let reload = false;
    for (;;) {
      const page = changesSince(this.reader, cursor, { tables: this.tables === null ? undefined : [...this.tables] as TableName[] });
      reload ||= page.reload;
      if (page.reload) changes.length = 0; // whatever came before is covered by the reload
      changes.push(...page.changes);
      cursor = page.cursor;
      if (!page.more) break;
    }
    if (changes.length === 0 && !reload) {
      this.position = cursor;
      return;
    }
    this.lastCall = Date.now();
    try {
      await this.callback({ changes, cursor, reload });
    } catch (error) {
      this.onError(error);
    }
    this.position = cursor;
  }
}

/**
 * Call `callback` with the changes of `tables` (null: all), each once and in commit order; the next
 * batch waits until the callback (or the promise it returns) is done. A callback that throws goes to
 * onError and its batch is not delivered again. The watcher's timer does not keep the process alive
 * by itself (a server has its own handles).
 */
export function watch(reader: CacheReader, tables: readonly TableName[] | null,
  callback: (batch: WatchBatch) => void | Promise<void>, options?: WatchOptions): Watcher {
  return new Watcher(reader, tables, callback, options);
}

export interface WatchQueryOptions extends Omit<WatchOptions, "cursor"> {
  /** Call back only when the result differs from the last one (PowerSync's incremental watch). */
  incremental?: boolean;
  /** The tables the query reads. Default: every cache table whose name appears in the SQL as a word. */
  tables?: readonly TableName[];
}

/** The tables a query names (as whole words). */
export function tablesOf(sql: string): TableName[] {
  return TABLE_NAMES.filter((t) => new RegExp(`\\b${t}\\b`, "i").test(sql));
}

function stableText(rows: unknown): string {
  return JSON.stringify(rows, (_k, v: unknown) =>
    typeof v === "bigint" ? `${v}n` : Buffer.isBuffer(v) ? v.toString("base64") : v);
}

/**
 * Run `sql` now and call back with its rows; run it again whenever a table it reads changes (with
 * `incremental`, call back only when the rows differ). Rows are raw()'s plain objects.
 */
export function watchQuery<T = Record<string, unknown>>(reader: CacheReader, sql: string, params: readonly unknown[],
  callback: (rows: T[]) => void | Promise<void>, options: WatchQueryOptions = {}): Watcher {
  const tables = options.tables ?? tablesOf(sql);
  if (tables.length === 0) throw new TypeError("watchQuery: the query names no cache table; pass options.tables");
  const { rows, cursor } = reader.read(() => ({ rows: reader.raw<T>(sql, ...params), cursor: currentCursor(reader) }));
  let last = stableText(rows);
  void Promise.resolve().then(() => callback(rows)).catch((error: unknown) => (options.onError ?? (() => {}))(error));
  return new Watcher(reader, tables, async () => {
    const next = reader.raw<T>(sql, ...params);
    const text = stableText(next);
    if (options.incremental && text === last) return;
    last = text;
    await callback(next);
  }, { ...options, cursor });
}
