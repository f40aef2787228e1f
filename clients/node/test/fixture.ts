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

interface Where {
  endpoint: string;
  data_dir: string;
  cache: string;
  socket: string;
  pid: number;
  log: string;
}

/** One launcher process: its daemon's paths, and writes through plain boto3. */
export class DaemonFixture {
  private constructor(
    readonly where: Where,
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly lines: AsyncIterator<string>,
    private readonly stderr: () => string,
  ) {}

  get cache(): string {
    return this.where.cache;
  }
  get socket(): string {
    return this.where.socket;
  }
  get daemonPid(): number {
    return this.where.pid;
  }

  /** Start moto, write `seed`, start the daemon and wait until its health is ok. */
  static async start(seed: Seed = {}, timeoutMs = 180_000): Promise<DaemonFixture> {
    const seedFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "seed-")), "seed.json");
    fs.writeFileSync(seedFile, JSON.stringify(seed));
    const child = spawn(python(), [path.join(repoRoot(), "tests", "support", "node_fixture.py"), "--seed", seedFile],
      { cwd: repoRoot(), stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-8000);
    });
    const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    try {
      const first = await lines.next();
      if (first.done) throw new Error(`the daemon fixture exited before it was ready:\n${stderr}`);
      return new DaemonFixture(JSON.parse(first.value) as Where, child, lines, () => stderr);
    } finally {
      clearTimeout(timer);
      fs.rmSync(path.dirname(seedFile), { recursive: true, force: true });
    }
  }

  private async ask(request: object): Promise<void> {
    this.child.stdin.write(`${JSON.stringify(request)}\n`);
    const answer = await this.lines.next();
    if (answer.done) throw new Error(`the daemon fixture exited:\n${this.stderr()}`);
    const parsed = JSON.parse(answer.value) as { ok: boolean; error?: string };
    if (!parsed.ok) throw new Error(`boto3 write failed: ${parsed.error}`);
  }

  /** PutItem with plain boto3; resolves once DynamoDB has it. */
  put(table: string, item: DynamoItem): Promise<void> {
    return this.ask({ op: "put", table, item });
  }

  /** DeleteItem with plain boto3. */
  delete(table: string, key: DynamoItem): Promise<void> {
    return this.ask({ op: "delete", table, key });
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
