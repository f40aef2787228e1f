// StatusClient's errors when the daemon cannot be reached, without a daemon.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";

import { DaemonError, DaemonUnavailableError, RateLimitedError, StatusClient } from "../src";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "status-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function reasonOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof DaemonUnavailableError, `expected DaemonUnavailableError, got ${String(error)}`);
    return error.reason;
  }
  throw new Error("the request succeeded");
}

test("no socket file: not_running, with a message that says so", async () => {
  const client = new StatusClient(path.join(dir, "absent.sock"));
  await assert.rejects(client.health(), /daemon is not running/);
  assert.equal(await reasonOf(client.health()), "not_running");
});

test("a socket file nobody listens on (a killed daemon's): stale_socket", async () => {
  const stale = path.join(dir, "stale.sock");
  // A process that exits without closing its server leaves the socket file behind, as kill -9 does.
  const made = spawnSync(process.execPath,
    ["-e", `require("net").createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`]);
  assert.equal(made.status, 0);
  assert.equal(await reasonOf(new StatusClient(stale).status()), "stale_socket");
});

test("a regular file at the socket path: not_a_socket, named as a wrong path, not a killed daemon", async () => {
  const file = path.join(dir, "not-a-socket.sock");
  fs.writeFileSync(file, "");
  const client = new StatusClient(file);
  await assert.rejects(client.status(), /is a regular file, not a socket/);
  assert.equal(await reasonOf(client.status()), "not_a_socket");
});

test("a daemon that never answers: timeout after timeoutMs", async () => {
  const silent = path.join(dir, "silent.sock");
  const held: net.Socket[] = [];
  const server = net.createServer((socket) => held.push(socket)).listen(silent);
  await new Promise((resolve) => server.once("listening", resolve));
  try {
    const started = Date.now();
    assert.equal(await reasonOf(new StatusClient(silent, { timeoutMs: 200 }).health()), "timeout");
    assert.ok(Date.now() - started >= 190);
  } finally {
    held.forEach((s) => s.destroy());
    server.close();
  }
});

test("a refresh over the daemon's budget rejects with RateLimitedError carrying retryAfter", async () => {
  const limited = path.join(dir, "limited.sock");
  const answer = { ok: false, kind: "rate_limited", retry_after: 0.35, error: "refresh over budget", exit_code: 75 };
  const server = net.createServer((s) => s.end(JSON.stringify(answer) + "\n")).listen(limited);
  await new Promise((resolve) => server.once("listening", resolve));
  try {
    const error = await new StatusClient(limited).refresh("keywords", ["b1", "roof-repair#en"]).then(
      () => undefined, (e: unknown) => e);
    assert.ok(error instanceof RateLimitedError, `expected RateLimitedError, got ${String(error)}`);
    assert.ok(error instanceof DaemonError);
    assert.equal(error.retryAfter, 0.35);
    assert.equal(error.kind, "rate_limited");
    assert.equal(error.exitCode, 75);
  } finally {
    server.close();
  }
});

test("waitUntilReady rejects with the last reason when the daemon never comes", async () => {
  const client = new StatusClient(path.join(dir, "never.sock"));
  await assert.rejects(client.waitUntilReady(300, 50), /not ready within 300 ms: .*not running/);
});

test("a user outside the socket's group gets permission_denied (EACCES), not a hang", { skip:
  process.getuid?.() !== 0 ? "needs root to run a child as another uid" : false }, async () => {
  // The client runs as nobody (uid 65534) against a socket it may not open (mode 0600, owned by root).
  const locked = path.join(dir, "locked.sock");
  const server = net.createServer((s) => s.end('{"ok": true}\n')).listen(locked);
  await new Promise((resolve) => server.once("listening", resolve));
  fs.chmodSync(locked, 0o600);
  fs.chmodSync(dir, 0o755);
  // nobody may not read this checkout: give it a copy of the two compiled modules the client needs.
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), "status-client-"));
  fs.mkdirSync(path.join(copy, "generated"));
  for (const file of ["status.js", "errors.js", path.join("generated", "schema.js")]) {
    fs.copyFileSync(path.join(__dirname, "..", "src", file), path.join(copy, file));
  }
  fs.chmodSync(copy, 0o755);
  const module = JSON.stringify(path.join(copy, "status.js"));
  const script = `const { StatusClient } = require(${module});
    new StatusClient(${JSON.stringify(locked)}).health().then(() => console.log("answered"), (e) => console.log(e.reason))`;
  try {
    const child = spawn(process.execPath, ["-e", script], { uid: 65534, gid: 65534, cwd: "/" });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    await new Promise((resolve) => child.once("exit", resolve));
    assert.equal(out.trim(), "permission_denied");
  } finally {
    server.close();
    fs.rmSync(copy, { recursive: true, force: true });
  }
});
