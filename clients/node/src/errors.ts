// Errors a generation server can tell apart: the cache cannot be opened or read, the daemon is not
// reachable on its socket, or the daemon answered with an error.

/** The cache file cannot be opened or read (missing, no permission, missing -shm, not a cache). */
export class CacheUnavailableError extends Error {
  override name = "CacheUnavailableError";
  constructor(message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(hint ? `${message} (${hint})` : message, options);
  }
}

/**
 * Why the status socket could not be used:
 * - `not_running`: no socket file at the path;
 * - `stale_socket`: a socket file nobody listens on (left by a daemon that was killed);
 * - `not_a_socket`: a regular file (or a directory) at the path, not a socket: a wrong path;
 * - `permission_denied`: not allowed to connect (not a member of the daemon's group);
 * - `timeout`: no whole answer within the request's timeout;
 * - `io`: any other failure of the connection, or an answer that is not JSON.
 */
export type DaemonUnavailableReason =
  | "not_running"
  | "stale_socket"
  | "not_a_socket"
  | "permission_denied"
  | "timeout"
  | "io";

/** The daemon could not be asked; `reason` says why (see DaemonUnavailableReason). */
export class DaemonUnavailableError extends Error {
  override name = "DaemonUnavailableError";
  constructor(
    message: string,
    readonly reason: DaemonUnavailableReason,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(hint ? `${message} (${hint})` : message, options);
  }
}

/** The daemon answered with an error (bad request, unknown table, refused peer, internal failure). */
export class DaemonError extends Error {
  override name = "DaemonError";
  constructor(
    message: string,
    readonly kind: string,
    readonly hint?: string,
    readonly exitCode?: number,
  ) {
    super(hint ? `${message} (${hint})` : message);
  }
}

/** The daemon refused a request over its budget (`refresh` reads a second): ask again after `retryAfter` seconds. */
export class RateLimitedError extends DaemonError {
  override name = "RateLimitedError";
  constructor(
    message: string,
    /** Seconds to wait before asking again. */
    readonly retryAfter: number,
    hint?: string,
    exitCode?: number,
  ) {
    super(message, "rate_limited", hint, exitCode);
  }
}
