// StatusClient: the daemon's status socket (one request line, one answer, then the daemon closes).
import fs from "node:fs";
import net from "node:net";

import { DaemonError, DaemonUnavailableError, RateLimitedError } from "./errors";
import { TABLES, TableName } from "./generated/schema";

export interface StatusClientOptions {
  /** How long one request may take, connect to last byte. Default 5000 ms. */
  timeoutMs?: number;
}

/** The `health` answer: ok when the daemon is ready and no table is degraded. */
export interface Health {
  ok: boolean;
  state: string;
  reasons: string[];
}

/** The `refresh` answer: the item was read consistently from DynamoDB and committed to the cache. */
export interface RefreshResult {
  ok: true;
  table: string;
  key: string[];
  /** False when the item does not exist (or is soft-deleted): the cache row is gone too. */
  present: boolean;
  version: number | string | null;
}

/** A key in key order (hash key first), or as an object of the key attributes. */
export type ItemKey = string[] | Record<string, string>;

/** True when something other than a socket is at `path` (a socket, or nothing, is false). */
function isOtherFile(path: string): boolean {
  try {
    return !fs.statSync(path).isSocket();
  } catch {
    return false;
  }
}

/** Node's error codes for a socket that cannot be reached, as the reasons callers can act on. */
function unavailable(error: NodeJS.ErrnoException, path: string): DaemonUnavailableError {
  switch (error.code) {
    case "ENOENT":
      return new DaemonUnavailableError(`the daemon is not running (no status socket at ${path})`, "not_running",
        "start it (systemctl start seo-sync) or pass the right socket path", { cause: error });
    case "ECONNREFUSED":
      // Linux refuses a connect to a regular file as it does to a dead socket: tell them apart.
      if (isOtherFile(path)) {
        return new DaemonUnavailableError(`${path} is a regular file, not a socket (a wrong socket path?)`,
          "not_a_socket", "pass the daemon's status socket (its --socket, /run/seo-sync/status.sock under systemd)",
          { cause: error });
      }
      return new DaemonUnavailableError(`nothing listens on ${path} (left by a daemon that was killed?)`,
        "stale_socket", "start the daemon; it replaces a stale socket file", { cause: error });
    case "EACCES":
    case "EPERM":
      return new DaemonUnavailableError(`permission denied on ${path}`, "permission_denied",
        "run as a member of the seo-sync group (SupplementaryGroups=seo-sync)", { cause: error });
    default:
      return new DaemonUnavailableError(`cannot talk to the daemon on ${path}: ${error.message}`, "io", undefined,
        { cause: error });
  }
}

/** A client of the daemon's status socket (/run/seo-sync/status.sock under systemd). */
export class StatusClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;

  constructor(socketPath: string, options: StatusClientOptions = {}) {
    this.socketPath = socketPath;
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  /** Send one request line and return the daemon's answer text. */
  request(line: string, timeoutMs: number = this.timeoutMs): Promise<string> {
    if (line.includes("\n")) return Promise.reject(new TypeError("a request is one line"));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const socket = net.createConnection({ path: this.socketPath });
      const finish = (error: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (error) reject(error);
        else resolve(Buffer.concat(chunks).toString("utf8"));
      };
      const timer = setTimeout(() => finish(new DaemonUnavailableError(
        `the daemon did not answer on ${this.socketPath} within ${timeoutMs} ms`, "timeout",
        "it may be stuck: check journalctl -u seo-sync")), timeoutMs);
      socket.on("connect", () => socket.end(`${line}\n`));
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.on("end", () => finish(null));
      socket.on("error", (error: NodeJS.ErrnoException) => {
        // A refused peer is answered and closed before its request is read: the answer still counts.
        if ((error.code === "ECONNRESET" || error.code === "EPIPE") && chunks.length > 0) finish(null);
        else finish(unavailable(error, this.socketPath));
      });
    });
  }

  /** `request` and parse the JSON answer; an error answer becomes a DaemonError. */
  async requestJson<T = Record<string, unknown>>(line: string, timeoutMs?: number): Promise<T> {
    const text = await this.request(line, timeoutMs);
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new DaemonUnavailableError(`the daemon's answer to ${line.split(" ")[0]} is not JSON`, "io");
    }
    if (data !== null && typeof data === "object" && "error" in data) {
      const e = data as { error: string; kind?: string; hint?: string; exit_code?: number; retry_after?: unknown };
      if (e.kind === "rate_limited") {
        const retryAfter = typeof e.retry_after === "number" && Number.isFinite(e.retry_after) ? e.retry_after : 1;
        throw new RateLimitedError(`daemon: ${e.error}`, retryAfter, e.hint, e.exit_code);
      }
      throw new DaemonError(`daemon: ${e.error}`, e.kind ?? "error", e.hint, e.exit_code);
    }
    return data as T;
  }

  /** Is the daemon ready and healthy? */
  health(timeoutMs?: number): Promise<Health> {
    return this.requestJson<Health>("health", timeoutMs);
  }

  /** The daemon's status document: state, per-table rows, last full sync, lag, errors. */
  status(timeoutMs?: number): Promise<Record<string, unknown>> {
    return this.requestJson("status", timeoutMs);
  }

  /**
   * Read-your-writes: after writing an item to DynamoDB, ask the daemon to read it back consistently
   * and commit it to the cache now. Resolves once committed, so the next cache read sees it.
   * `key` in key order (`["acme", "plumber#en"]`) or as an object (`{ business_id, keyword_id }`).
   */
  refresh(table: TableName, key: ItemKey, timeoutMs?: number): Promise<RefreshResult> {
    const spec = TABLES[table];
    if (spec === undefined) return Promise.reject(new TypeError(`unknown table ${String(table)}`));
    const names: readonly string[] = spec.keyNames;
    const ordered = Array.isArray(key) ? key : names.map((name) => key[name]);
    if (ordered.length !== names.length || !ordered.every((k) => typeof k === "string" && k !== "")) {
      return Promise.reject(new TypeError(`${table} key is ${names.join(", ")}: non-empty strings`));
    }
    return this.requestJson<RefreshResult>(`refresh ${table} ${JSON.stringify(ordered)}`, timeoutMs);
  }

  /** Ask for a full resync of one table or all (like SIGHUP); true when one was queued. */
  async resync(table?: TableName, timeoutMs?: number): Promise<boolean> {
    const answer = await this.requestJson<{ queued: boolean }>(table ? `resync ${table}` : "resync", timeoutMs);
    return answer.queued;
  }

  /**
   * Wait until health() says ok, polling every `intervalMs`. A daemon that is not running yet or
   * still starting is waited for; a permission error fails at once (waiting will not fix it).
   * Rejects with the last reason when `timeoutMs` passes.
   */
  async waitUntilReady(timeoutMs: number, intervalMs = 100): Promise<Health> {
    const deadline = Date.now() + timeoutMs;
    let last = "no answer yet";
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new DaemonUnavailableError(`the daemon was not ready within ${timeoutMs} ms: ${last}`, "timeout");
      }
      try {
        const health = await this.health(Math.min(left, this.timeoutMs));
        if (health.ok) return health;
        last = `state ${health.state}${health.reasons.length ? `: ${health.reasons.join("; ")}` : ""}`;
      } catch (error) {
        if (error instanceof DaemonUnavailableError && error.reason === "permission_denied") throw error;
        if (error instanceof DaemonError && error.kind === "denied") throw error;
        last = error instanceof Error ? error.message : String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
    }
  }
}
