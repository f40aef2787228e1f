// Regenerate a business's pages when its questionnaire or keywords change, by watching the cache's
// change log. Copy it; in your project import from "@seo-platform/seo-sync-reader" instead of "../src".
//
// Usage: node dist/examples/regenerate-on-change.js CACHE_DB CURSOR_FILE
//   e.g. node dist/examples/regenerate-on-change.js /var/lib/seo-sync/cache.db /var/lib/seo-gen/cursor
// The cursor file keeps the position across restarts: each change is handled once, even when this
// process, or the daemon, is killed in between (a change handled but not yet saved is handled again).
import fs from "node:fs";

import { CacheReader, WatchBatch } from "../src";

/** Stand-in for the generation server's real work: read one snapshot of the business and build its pages. */
function regenerate(reader: CacheReader, businessId: string): void {
  const profile = reader.businessProfile(businessId);
  if (profile === null) {
    console.log(JSON.stringify({ businessId, action: "remove pages" }));
    return;
  }
  console.log(JSON.stringify({
    businessId, action: "regenerate", keywords: profile.keywords.map((k) => k.keyword),
    questionnaire: profile.questionnaire !== null,
  }));
}

function loadCursor(file: string): number | undefined {
  try {
    const saved = Number(fs.readFileSync(file, "utf8").trim());
    return Number.isFinite(saved) && saved > 0 ? saved : undefined;
  } catch {
    return undefined; // first run: start from now
  }
}

function saveCursor(file: string, cursor: number): void {
  fs.writeFileSync(`${file}.tmp`, String(cursor));
  fs.renameSync(`${file}.tmp`, file); // atomic: a crash leaves the old cursor or the new one
}

function main(cachePath: string, cursorFile: string): void {
  const reader = CacheReader.open(cachePath);
  const onBatch = (batch: WatchBatch): void => {
    if (batch.reload || batch.changes.some((c) => c.op === "reload")) {
      // Behind the log's retention, or a whole table may have changed: regenerate every business.
      for (const b of reader.businesses()) regenerate(reader, b.business_id);
    } else {
      // Several changes of one business (its questionnaire and three keywords) make one regeneration.
      const ids = new Set(batch.changes.map((c) => c.key!.business_id!));
      for (const id of ids) regenerate(reader, id);
    }
    saveCursor(cursorFile, batch.cursor);
  };
  // Batch bursts (a business's keywords are usually written together) into one call per second.
  const watcher = reader.watch(["questionnaires", "keywords"], onBatch, {
    cursor: loadCursor(cursorFile),
    throttleMs: 1000,
    onError: (error) => console.error(`watch: ${String(error)}`),
  });
  const stop = () => {
    watcher.stop();
    reader.close();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  // Keep the process alive: the watcher's timer does not hold the event loop open by itself.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  process.once("SIGINT", () => clearInterval(keepAlive));
  process.once("SIGTERM", () => clearInterval(keepAlive));
}

if (require.main === module) {
  const [cachePath, cursorFile] = process.argv.slice(2);
  if (cachePath === undefined || cursorFile === undefined) {
    console.error("usage: regenerate-on-change CACHE_DB CURSOR_FILE");
    process.exit(64);
  }
  main(cachePath, cursorFile);
}
