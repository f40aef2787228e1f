// A real seo-sync daemon on the embedded DynamoDB, started by tests/support/node_fixture.py.
import { ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";

/** The repository root: the nearest directory above this file holding pyproject.toml. */
export function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, "pyproject.toml"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no pyproject.toml above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

/** The Python that has seo-sync installed: $SEO_SYNC_PYTHON, else the repository's .venv. */
export function python(): string {
  return process.env.SEO_SYNC_PYTHON ?? path.join(repoRoot(), ".venv", "bin", "python");
}

/** DynamoDB JSON of an item (binary as base64 text), as boto3 will write it. */
export type DynamoItem = Record<string, unknown>;
export type Seed = Partial<Record<string, DynamoItem[]>>;

/** The user and group the daemon runs as (the unit's `seo-sync:seo-sync`); needs root. */
export interface ServiceUser {
  uid: number;
  gid: number;
}

export interface FixtureOptions {
  /** How long the first boot may take. Default 180 s. */
  timeoutMs?: number;
  /** Run the daemon as this user and group with UMask 0027, in a data directory laid out as the unit does. */
  serviceUser?: ServiceUser;
}

interface Answer {
  ok: boolean;
  error?: string;
  pid?: number;
  exit_code?: number;
}

interface Where {
  endpoint: string;
  data_dir: string;
  cache: string;
  socket: string;
  pid: number;
  log: string;
}

/** One launcher process: its daemon's paths, writes through plain boto3, and the daemon's life cycle. */
export class DaemonFixture {
  private pid: number;

  private constructor(
    readonly where: Where,
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly lines: AsyncIterator<string>,
    private readonly stderr: () => string,
  ) {
    this.pid = where.pid;
  }

  get cache(): string {
    return this.where.cache;
  }
  get socket(): string {
    return this.where.socket;
  }
  get dataDir(): string {
    return this.where.data_dir;
  }
  /** The pid of the daemon started last. */
  get daemonPid(): number {
    return this.pid;
  }

  /** Start moto, write `seed`, start the daemon and wait until its health is ok. */
  static async start(seed: Seed = {}, options: FixtureOptions = {}): Promise<DaemonFixture> {
    const seedFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "seed-")), "seed.json");
    fs.writeFileSync(seedFile, JSON.stringify(seed));
    // Run as a module from the repository root, so that it imports tests.support like the Python tests do.
    const args = ["-m", "tests.support.node_fixture", "--seed", seedFile];
    if (options.serviceUser !== undefined) {
      args.push("--service-uid", String(options.serviceUser.uid), "--service-gid", String(options.serviceUser.gid));
    }
    const child = spawn(python(), args, { cwd: repoRoot(), stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-8000);
    });
    const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const timer = setTimeout(() => child.kill("SIGTERM"), options.timeoutMs ?? 180_000);
    try {
      const first = await lines.next();
      if (first.done) throw new Error(`the daemon fixture exited before it was ready:\n${stderr}`);
      return new DaemonFixture(JSON.parse(first.value) as Where, child, lines, () => stderr);
    } finally {
      clearTimeout(timer);
      fs.rmSync(path.dirname(seedFile), { recursive: true, force: true });
    }
  }

  private async ask(request: { op: string } & Record<string, unknown>): Promise<Answer> {
    this.child.stdin.write(`${JSON.stringify(request)}\n`);
    const answer = await this.lines.next();
    if (answer.done) throw new Error(`the daemon fixture exited:\n${this.stderr()}`);
    const parsed = JSON.parse(answer.value) as Answer;
    if (!parsed.ok) throw new Error(`${request.op} failed: ${parsed.error}`);
    return parsed;
  }

  /** PutItem with plain boto3; resolves once DynamoDB has it. */
  async put(table: string, item: DynamoItem): Promise<void> {
    await this.ask({ op: "put", table, item });
  }

  /** DeleteItem with plain boto3. */
  async delete(table: string, key: DynamoItem): Promise<void> {
    await this.ask({ op: "delete", table, key });
  }

  /** Start the daemon again (after terminateDaemon or killDaemon); resolves once its health is ok. */
  async startDaemon(): Promise<number> {
    this.pid = (await this.ask({ op: "start" })).pid!;
    return this.pid;
  }

  /** SIGTERM, as systemd stops it; resolves with its exit code once it has exited. */
  async terminateDaemon(): Promise<number> {
    return (await this.ask({ op: "terminate" })).exit_code!;
  }

  /** SIGKILL, as after TimeoutStopSec or from the OOM killer; resolves once it has exited. */
  async killDaemon(): Promise<number> {
    return (await this.ask({ op: "kill" })).exit_code!;
  }

  /** SIGHUP; resolves once every table has finished a new full sync and streams again. */
  async resync(): Promise<void> {
    await this.ask({ op: "resync" });
  }

  /** The daemon's log so far (for failure messages). */
  daemonLog(): string {
    try {
      return fs.readFileSync(this.where.log, "utf8").slice(-4000);
    } catch {
      return "";
    }
  }

  /** Close the launcher's stdin: it stops the daemon and the server; wait until it has exited. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 60_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Poll `predicate` until true or `timeoutMs` passes (then fail naming `what`). */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string,
  intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// Plain DynamoDB JSON builders, so the test data reads like the items a writer puts.
export const S = (s: string) => ({ S: s });
export const N = (n: string) => ({ N: n });
export const BOOL = (b: boolean) => ({ BOOL: b });
export const M = (m: Record<string, unknown>) => ({ M: m });
export const L = (...l: unknown[]) => ({ L: l });
