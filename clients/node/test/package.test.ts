// The package as a Node developer gets it: `npm pack`, a fresh app in a temporary directory, the
// tarball installed there, the README's sample compiled with `strict` in a CommonJS and an ES module
// project, and both programs run against a real daemon.
//
// The app's dependencies come from npm's cache where it has them (`--prefer-offline`); install
// scripts are skipped and better-sqlite3's native addon is the one `npm ci` compiled for this
// package (same version, same Node): compiling it again would take minutes and test nothing of ours.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

import { BOOL, DaemonFixture, N, S, Seed } from "./fixture";

const PACKAGE_DIR = path.resolve(__dirname, "..", "..");
const PACKAGE = JSON.parse(fs.readFileSync(path.join(PACKAGE_DIR, "package.json"), "utf8")) as {
  name: string;
  devDependencies: Record<string, string>;
};
const README = fs.readFileSync(path.join(PACKAGE_DIR, "..", "..", "README.md"), "utf8");
const NATIVE = path.join("node_modules", "better-sqlite3", "build", "Release", "better_sqlite3.node");
const BIG = "9007199254740993"; // 2^53 + 1: a bigint in the reader, an exact literal in stringifyJson
// What the tarball may hold: the compiled JS and .d.ts, and what npm always adds.
const SHIPPED = /^(package\.json|README\.md|dist\/cjs\/.+\.(js|d\.ts)|dist\/esm\/index\.(mjs|d\.mts))$/;

const work = fs.mkdtempSync(path.join(os.tmpdir(), "node-package-"));
const app = path.join(work, "app");
let daemon: DaemonFixture;

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const proc = spawnSync(command, args, { cwd, env, encoding: "utf8", timeout: 900_000 });
  assert.equal(proc.status, 0, `${command} ${args.join(" ")} (in ${cwd}):\n${proc.stdout}\n${proc.stderr}`);
  return proc.stdout;
}

/** The README's TypeScript sample of "Reading the cache from Node". */
function readmeSample(): string {
  const section = README.slice(README.indexOf("## Reading the cache from Node"));
  const block = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "no ts block in the README's Node section");
  return block[1]!;
}

const seed: Seed = {
  businesses: [{ business_id: S("acme"), name: S("Acme Plumbing"), _version: N(BIG) }],
  keywords: [{ business_id: S("acme"), keyword_id: S("plumber#en"), keyword: S("plumber"), language: S("en") }],
  service_areas: [{ business_id: S("acme"), area_id: S("north"), city: S("North"), priority: N("1") }],
  prompt_templates: [{ business_id: S("acme"), template_id: S("home#2"), page_type: S("home"), version: N("2"),
    is_active: BOOL(true), template: S("v2") }],
};

before(async () => {
  daemon = await DaemonFixture.start(seed);
});

after(async () => {
  await daemon?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

let tarball = "";

test("npm pack: compiled JS and .d.ts only, both entry points", () => {
  const [packed] = JSON.parse(run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work],
    PACKAGE_DIR)) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
  const files = packed!.files.map((f) => f.path).sort();
  console.log(`tarball ${packed!.filename}: ${packed!.size} bytes (${packed!.unpackedSize} unpacked), ` +
    `${files.length} files: ${files.join(" ")}`);
  assert.deepEqual(files.filter((f) => !SHIPPED.test(f)), []);
  for (const entry of ["dist/cjs/index.js", "dist/cjs/index.d.ts", "dist/esm/index.mjs", "dist/esm/index.d.mts"]) {
    assert.ok(files.includes(entry), `${entry} missing from the tarball`);
  }
  tarball = path.join(work, packed!.filename);
});

test("a fresh app installs the tarball; the README's sample compiles (strict) and runs as CJS and ESM", () => {
  assert.ok(tarball, "npm pack did not run");
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "fresh-app", version: "1.0.0", private: true }));
  const started = Date.now();
  run("npm", ["install", "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund", tarball,
    `typescript@${PACKAGE.devDependencies.typescript}`, `@types/node@${PACKAGE.devDependencies["@types/node"]}`], app);
  console.log(`fresh app: npm install of the tarball, typescript and @types/node took ${Date.now() - started} ms`);
  fs.mkdirSync(path.dirname(path.join(app, NATIVE)), { recursive: true });
  fs.copyFileSync(path.join(PACKAGE_DIR, NATIVE), path.join(app, NATIVE));

  const outputs: Record<string, string> = {};
  for (const kind of ["commonjs", "module"]) {
    const dir = path.join(app, kind);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ type: kind }));
    fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: {
      strict: true, target: "ES2022", module: "nodenext", moduleResolution: "nodenext", types: ["node"],
      outDir: "out", rootDir: "." } }));
    fs.writeFileSync(path.join(dir, "sample.ts"), readmeSample());
    run(path.join(app, "node_modules", ".bin", "tsc"), ["-p", dir], dir);
    const js = fs.readFileSync(path.join(dir, "out", "sample.js"), "utf8");
    assert.match(js, kind === "module" ? /^import .* from "@seo-platform\/seo-sync-reader";$/m
      : /require\("@seo-platform\/seo-sync-reader"\)/, `${kind} output`);
    const env = { ...process.env, SEO_SYNC_SOCKET: daemon.socket, SEO_CACHE_DB: daemon.cache };
    outputs[kind] = run(process.execPath, [path.join(dir, "out", "sample.js")], dir, env).trim();
  }
  for (const [kind, output] of Object.entries(outputs)) {
    // stringifyJson writes 2^53 + 1 as the exact literal (JSON.stringify would throw on the bigint).
    assert.equal(output, `{"name":"Acme Plumbing","version":${BIG},"keywords":1,"areas":1,"homeVersion":2,` +
      `"homeV2":true,"ready":true}`, kind);
  }
});
