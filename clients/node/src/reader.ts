// CacheReader: the generation server's read-only view of cache.db, following docs/reader-contract.md.
import Database from "better-sqlite3";

import {
  changesSince,
  ChangesPage,
  ChangesSinceOptions,
  currentCursor,
  watch,
  WatchBatch,
  Watcher,
  WatchOptions,
  watchQuery,
  WatchQueryOptions,
} from "./changes";
import { CacheUnavailableError } from "./errors";
import {
  Business,
  EXTRA_COLUMN,
  Keyword,
  PromptTemplate,
  Questionnaire,
  RowOf,
  ServiceArea,
  TABLE_NAMES,
  TABLES,
  TableName,
  VERSION_COLUMN,
} from "./generated/schema";
import { booleanFromCell, numberFromCell, parseExtra, parseJson } from "./values";

export interface CacheReaderOptions {
  /** How long SQLite waits for a lock before SQLITE_BUSY (the contract's busy timeout). Default 5000. */
  busyTimeoutMs?: number;
  /** Whole-read retries after SQLITE_BUSY, with backoff 50, 100, 200, 400 ms. Default 4. */
  busyRetries?: number;
}

/** A business and its questionnaire, read in one snapshot. */
export interface BusinessWithQuestionnaire {
  business: Business;
  questionnaire: Questionnaire | null;
}

/** Everything the generator needs about one business, read in one snapshot. */
export interface BusinessProfile extends BusinessWithQuestionnaire {
  keywords: Keyword[];
  serviceAreas: ServiceArea[];
  promptTemplates: PromptTemplate[];
}

/** How complete and how recent the cache is. Times are JS Dates (the cache keeps unix seconds). */
export interface Freshness {
  /** True once all five tables were published complete. */
  ready: boolean;
  /** When the cache first became complete (marker), or the latest full sync (fallback). */
  completedAt: Date | null;
  /** The daemon's last commit (marker), or the latest full sync / checkpoint (fallback). */
  lastCommitAt: Date | null;
  /** Milliseconds since lastCommitAt, on this host's clock. */
  ageMs: number | null;
  /** Where this came from: the readiness marker, or the per-table sync state of older caches. */
  source: "readiness_marker" | "sync_state";
}

type Cell = bigint | number | string | Buffer | null;
type RawRow = Record<string, Cell>;

/** A cell of a raw() row: INTEGER as number (or bigint past 2^53), REAL number, TEXT string, BLOB Buffer, NULL. */
export type RawCell = number | bigint | string | Buffer | null;
type Converter = (cell: Cell) => unknown;

const MAX_CACHED_STATEMENTS = 256;
// Brief, normal states of a cache the daemon writes; a whole read is retried on them. READONLY_RECOVERY:
// a read-only connection may not rebuild the shared WAL index, which the daemon does at its start.
// READONLY_CANTINIT: no writer was seen holding the index as this connection looked, so it could not
// trust it; SQLite normally reads from its own memory then, but a look racing the daemon's start
// can still return it.
const BUSY_CODES = new Set(["SQLITE_BUSY", "SQLITE_BUSY_RECOVERY", "SQLITE_BUSY_SNAPSHOT", "SQLITE_LOCKED",
  "SQLITE_READONLY_RECOVERY", "SQLITE_READONLY_CANTINIT"]);
const SLEEP_CELL = new Int32Array(new SharedArrayBuffer(4));

/** Block this thread for `ms` (better-sqlite3 is synchronous, so the retry is too). */
function sleepSync(ms: number): void {
  Atomics.wait(SLEEP_CELL, 0, 0, ms);
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && BUSY_CODES.has(code);
}

// One converter per column name of each table, built once from the generated schema.
function convertersFor(table: TableName): Map<string, Converter> {
  const spec = TABLES[table];
  const out = new Map<string, Converter>();
  for (const key of spec.keyNames) out.set(key, (cell) => cell);
  for (const [name, kind] of Object.entries(spec.columnKinds) as [string, string][]) {
    if (kind === "number") out.set(name, (cell) => numberFromCell(cell as bigint | number | string | null));
    else if (kind === "bool") out.set(name, (cell) => booleanFromCell(cell as bigint | number | null));
    else if (kind === "json") out.set(name, (cell) => (cell === null ? null : parseJson(cell as string)));
    else out.set(name, (cell) => cell);
  }
  out.set(VERSION_COLUMN, (cell) => numberFromCell(cell as bigint | number | string | null));
  out.set(EXTRA_COLUMN, (cell) => parseExtra(cell as string | null));
  // Type detail of the JSON columns (set vs list, binary vs string), kept beside them by newer caches.
  out.set("_types", (cell) => (cell === null ? null : JSON.parse(cell as string)));
  return out;
}

const CONVERTERS = new Map<TableName, Map<string, Converter>>(TABLE_NAMES.map((t) => [t, convertersFor(t)]));

/** A raw cell of a column this reader does not know: integers as numbers when safe, else as is. */
function plainCell(cell: Cell): unknown {
  return typeof cell === "bigint" ? numberFromCell(cell) : cell;
}

/**
 * A raw row of `table` (all its columns, e.g. from `raw("SELECT * FROM keywords WHERE …")`) as the
 * typed row CacheReader's methods return: numbers as CacheNumber, booleans, JSON columns parsed,
 * `_extra` unmarshalled. Exported for raw() queries whose rows are whole rows of one table.
 */
export function convertRow<T extends TableName>(table: T, row: Readonly<Record<string, unknown>>): RowOf[T] {
  const converters = CONVERTERS.get(table)!;
  const out: Record<string, unknown> = {};
  for (const name in row) {
    const convert = converters.get(name);
    const cell = (row[name] ?? null) as Cell;
    out[name] = convert ? convert(cell) : plainCell(cell);
  }
  return out as unknown as RowOf[T];
}

/** Rows of an arbitrary query with integers made numbers when safe (the raw escape hatch). */
function plainRow(row: RawRow): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name in row) out[name] = plainCell(row[name] ?? null);
  return out;
}

const SQL = {
  business: "SELECT * FROM businesses WHERE business_id = ?",
  questionnaire: "SELECT * FROM questionnaires WHERE business_id = ?",
  keywords: "SELECT * FROM keywords WHERE business_id = ? ORDER BY keyword_id",
  keywordsInLanguage: "SELECT * FROM keywords WHERE business_id = ? AND language = ? ORDER BY keyword_id",
  // Lowest priority value first (1 before 2); areas without a priority last, then by id.
  serviceAreas: "SELECT * FROM service_areas WHERE business_id = ? ORDER BY priority IS NULL, priority, area_id",
  promptTemplates: "SELECT * FROM prompt_templates WHERE business_id = ? ORDER BY template_id",
  // Only is_active = 1 counts; the highest version wins.
  activeTemplate:
    "SELECT * FROM prompt_templates WHERE business_id = ? AND page_type = ? AND is_active = 1 " +
    "ORDER BY version DESC LIMIT 1",
  businesses: "SELECT * FROM businesses ORDER BY business_id",
  businessesPage: "SELECT * FROM businesses WHERE business_id > ? ORDER BY business_id LIMIT ?",
  tableExists: "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
  readinessMarker: "SELECT complete, completed_at, last_commit_at FROM _sync_readiness WHERE id = 1",
  fullSyncs: "SELECT table_name, last_full_sync FROM _sync_tables",
  lastCheckpoint: "SELECT max(updated_at) AS at FROM _sync_checkpoints",
} as const;

/**
 * The cache, read-only. Every method is synchronous (better-sqlite3): a read takes microseconds and
 * waits at most busyTimeoutMs on a lock. A read of several statements runs in one read transaction,
 * so it sees one committed state; a whole read is retried a few times on SQLITE_BUSY, which is brief
 * and normal while the daemon starts, stops or recovers its WAL.
 */
export class CacheReader {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly retries: number;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly inTransaction: <T>(fn: () => T) => T;
  private versionStatement: Database.Statement | undefined;

  constructor(path: string, options: CacheReaderOptions = {}) {
    this.path = path;
    this.retries = options.busyRetries ?? 4;
    try {
      // readonly: never writes, never creates a file; fileMustExist: a missing cache is an error,
      // not a new empty database. Never immutable=1: it turns locking off and reads torn pages.
      this.db = new Database(path, {
        readonly: true,
        fileMustExist: true,
        timeout: options.busyTimeoutMs ?? 5000,
      });
    } catch (error) {
      throw explain(error, path);
    }
    this.db.defaultSafeIntegers(true); // INTEGER cells as bigint; converted to number when safe
    const transaction = this.db.transaction((fn: () => unknown) => fn());
    this.inTransaction = <T>(fn: () => T) => transaction(fn) as T;
  }

  /** Open the cache at `path` (e.g. /var/lib/seo-sync/cache.db) read-only. */
  static open(path: string, options?: CacheReaderOptions): CacheReader {
    return new CacheReader(path, options);
  }

  /** Close the connection. */
  close(): void {
    this.db.close();
  }

  /**
   * Run `fn` inside one read transaction (one snapshot); retry the whole of it while the cache is
   * busy or its WAL index not yet usable by a read-only connection (the contract's retried states).
   * Keep it short: an open read transaction stops the daemon's WAL from being recycled.
   */
  read<T>(fn: () => T): T {
    return this.retrying(() => this.inTransaction(fn));
  }

  /** A business and its questionnaire, or null when the business is not in the cache. */
  business(businessId: string): BusinessWithQuestionnaire | null {
    return this.read(() => {
      const business = this.one("businesses", SQL.business, businessId);
      if (business === null) return null;
      return { business, questionnaire: this.one("questionnaires", SQL.questionnaire, businessId) };
    });
  }

  /** A business with its questionnaire, keywords, service areas and prompt templates, or null. */
  businessProfile(businessId: string): BusinessProfile | null {
    return this.read(() => {
      const business = this.one("businesses", SQL.business, businessId);
      if (business === null) return null;
      return {
        business,
        questionnaire: this.one("questionnaires", SQL.questionnaire, businessId),
        keywords: this.all("keywords", SQL.keywords, businessId),
        serviceAreas: this.all("service_areas", SQL.serviceAreas, businessId),
        promptTemplates: this.all("prompt_templates", SQL.promptTemplates, businessId),
      };
    });
  }

  /** A business's keywords in one language (e.g. "en"), or in all languages, by keyword_id. */
  keywords(businessId: string, language?: string): Keyword[] {
    return language === undefined
      ? this.retrying(() => this.all("keywords", SQL.keywords, businessId))
      : this.retrying(() => this.all("keywords", SQL.keywordsInLanguage, businessId, language));
  }

  /** A business's service areas, lowest priority value first, those without a priority last. */
  serviceAreas(businessId: string): ServiceArea[] {
    return this.retrying(() => this.all("service_areas", SQL.serviceAreas, businessId));
  }

  /** The active (is_active) prompt template of a page type with the highest version, or null. */
  activePromptTemplate(businessId: string, pageType: string): PromptTemplate | null {
    return this.retrying(() => this.one("prompt_templates", SQL.activeTemplate, businessId, pageType));
  }

  /** All businesses by id; or one page of them: `{ after: lastIdOfPreviousPage, limit }`. */
  businesses(page?: { after?: string; limit: number }): Business[] {
    if (page === undefined) return this.retrying(() => this.all("businesses", SQL.businesses));
    return this.retrying(() => this.all("businesses", SQL.businessesPage, page.after ?? "", page.limit));
  }

  /** Rows per cache table, from one snapshot. */
  counts(): Record<TableName, number> {
    return this.read(() => {
      const out = {} as Record<TableName, number>;
      for (const table of TABLE_NAMES) {
        // Table names come from the generated schema, never from a caller.
        const row = this.statement(`SELECT count(*) AS n FROM "${table}"`).get() as { n: bigint };
        out[table] = Number(row.n);
      }
      return out;
    });
  }

  /**
   * The escape hatch: any read-only SQL with bound parameters, rows as plain objects, each cell as
   * SQLite stored it:
   * - INTEGER: a `number` when within ±(2^53 − 1), else a `bigint`;
   * - REAL: a `number` (the cache stores a REAL only when the double is exact);
   * - TEXT: a `string`, including a number column's decimal kept as TEXT (digits a double would
   *   lose: numberFromText(cell) makes it a CacheNumber) and JSON columns (parseJson(cell));
   * - BLOB: a `Buffer`; NULL: `null`.
   * `convertRow(table, row)` turns a `SELECT *` row of a cache table into the typed row the other
   * methods return. Several raw() calls that must agree go inside reader.read(() => …).
   */
  raw<T = Record<string, RawCell>>(sql: string, ...params: unknown[]): T[] {
    return this.retrying(() => {
      const statement = this.statement(sql);
      if (!statement.reader) throw new TypeError("raw() runs queries that return rows; the cache is read-only");
      return (statement.all(...params) as RawRow[]).map((r) => plainRow(r) as T);
    });
  }

  /** True once the cache holds all five tables complete (see freshness()). */
  isReady(): boolean {
    return this.freshness().ready;
  }

  /**
   * Readiness and age of the cache. Uses the daemon's readiness marker (`_sync_readiness`) when the
   * cache has it; an older cache is ready when every table has a completed full sync.
   */
  freshness(): Freshness {
    return this.read(() => {
      const now = Date.now();
      const age = (at: Date | null) => (at === null ? null : Math.max(0, now - at.getTime()));
      if (this.statement(SQL.tableExists).get("_sync_readiness") !== undefined) {
        const row = this.statement(SQL.readinessMarker).get() as Record<string, Cell> | undefined;
        const lastCommitAt = toDate(row?.last_commit_at);
        return {
          ready: row !== undefined && booleanFromCell(row.complete as bigint | null) === true,
          completedAt: toDate(row?.completed_at),
          lastCommitAt,
          ageMs: age(lastCommitAt),
          source: "readiness_marker",
        };
      }
      if (this.statement(SQL.tableExists).get("_sync_tables") === undefined) {
        return { ready: false, completedAt: null, lastCommitAt: null, ageMs: null, source: "sync_state" };
      }
      const syncs = new Map<string, number | null>();
      for (const r of this.statement(SQL.fullSyncs).all() as Record<string, Cell>[]) {
        syncs.set(String(r.table_name), r.last_full_sync === null ? null : Number(r.last_full_sync));
      }
      const ready = TABLE_NAMES.every((t) => syncs.get(t) != null);
      const latestSync = Math.max(0, ...[...syncs.values()].map((v) => v ?? 0));
      let lastCommit = latestSync;
      if (this.statement(SQL.tableExists).get("_sync_checkpoints") !== undefined) {
        const at = (this.statement(SQL.lastCheckpoint).get() as { at: Cell }).at;
        if (at !== null) lastCommit = Math.max(lastCommit, Number(at));
      }
      const lastCommitAt = lastCommit > 0 ? new Date(lastCommit * 1000) : null;
      return {
        ready,
        completedAt: ready ? new Date(latestSync * 1000) : null,
        lastCommitAt,
        ageMs: age(lastCommitAt),
        source: "sync_state",
      };
    });
  }

  // -- what changed (the daemon's change log; src/changes.ts) ---------------------------------------

  /** The changes after `cursor`, in one read transaction; `reload` when the cursor fell out of the log. */
  changesSince(cursor: number, options?: ChangesSinceOptions): ChangesPage {
    return changesSince(this, cursor, options);
  }

  /** PRAGMA data_version: changes whenever another connection (the daemon) commits; a poll costs microseconds. */
  dataVersion(): number {
    this.versionStatement ??= this.db.prepare("PRAGMA data_version").pluck();
    const statement = this.versionStatement;
    return Number(this.retrying(() => statement.get() as bigint));
  }

  /** The end of the change log now: read a snapshot, then follow from here. */
  changeCursor(): number {
    return currentCursor(this);
  }

  /** Call `callback` with each change of `tables` (null: all) once, in commit order, woken by PRAGMA data_version. */
  watch(tables: readonly TableName[] | null, callback: (batch: WatchBatch) => void | Promise<void>,
    options?: WatchOptions): Watcher {
    return watch(this, tables, callback, options);
  }

  /** Run `sql` and call back with its rows now and whenever a table it reads changes (`incremental`: only when they differ). */
  watchQuery<T = Record<string, unknown>>(sql: string, params: readonly unknown[],
    callback: (rows: T[]) => void | Promise<void>, options?: WatchQueryOptions): Watcher {
    return watchQuery<T>(this, sql, params, callback, options);
  }

  // -- helpers --------------------------------------------------------------------------------------

  private retrying<T>(fn: () => T): T {
    for (let attempt = 0; ; attempt++) {
      try {
        return fn();
      } catch (error) {
        if (!isBusy(error) || attempt >= this.retries) throw explain(error, this.path);
        sleepSync(50 * 2 ** attempt);
      }
    }
  }

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      // raw() may see endless distinct SQL texts (values pasted in): keep the cache bounded.
      if (this.statements.size < MAX_CACHED_STATEMENTS) this.statements.set(sql, statement);
    }
    return statement;
  }

  private one<T extends TableName>(table: T, sql: string, ...params: unknown[]): RowOf[T] | null {
    const row = this.statement(sql).get(...params) as RawRow | undefined;
    return row === undefined ? null : convertRow(table, row);
  }

  private all<T extends TableName>(table: T, sql: string, ...params: unknown[]): RowOf[T][] {
    return (this.statement(sql).all(...params) as RawRow[]).map((row) => convertRow(table, row));
  }
}

function toDate(cell: Cell | undefined): Date | null {
  return cell === null || cell === undefined ? null : new Date(Number(cell) * 1000);
}

/** The error with what to do about it, for the failures a reader can meet (see the contract). */
function explain(error: unknown, path: string): unknown {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "SQLITE_CANTOPEN" || /unable to open database/.test(message)) {
    return new CacheUnavailableError(`cannot open the cache at ${path}: ${message}`,
      "is the path right, has the daemon made its first sync, and is this user in the seo-sync group?",
      { cause: error });
  }
  if (code === "SQLITE_READONLY" || /readonly database/.test(message)) {
    return new CacheUnavailableError(`${message} on ${path}`,
      "the cache's -wal/-shm files are missing and this user may not create them; start the daemon or " +
      "stop it cleanly (docs/reader-contract.md)", { cause: error });
  }
  // Only a missing cache table means "not a cache"; a raw() query naming some other table is the caller's.
  const missing = /no such table: (?:main\.)?(\w+)/.exec(message)?.[1];
  if (missing !== undefined && (TABLE_NAMES as string[]).includes(missing)) {
    return new CacheUnavailableError(`${path} is not a seo-sync cache (${message})`,
      "name the cache.db written by seo-sync", { cause: error });
  }
  return error;
}
