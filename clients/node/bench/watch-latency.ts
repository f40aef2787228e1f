// Commit -> watch callback latency and the CPU an idle watcher costs, against a real daemon.
//
// Usage: node dist/bench/watch-latency.js [WRITES] [IDLE_SECONDS]   (default 300 writes, 10 s idle)
// Starts a daemon on the embedded DynamoDB (tests/support/node_fixture.py), watches `businesses`
// with the default options (throttleMs 30, pollMs 25), writes WRITES items one after another with
// plain boto3, and takes each change's latency as the callback's time minus the commit time the
// daemon logged (`at`, same host clock). Then it leaves the watcher idle and reads this process's CPU.
import { CacheReader, WatchBatch } from "../src";
import { DaemonFixture, N, S, waitFor } from "../test/fixture";

const WRITES = Number(process.argv[2] ?? 300);
const IDLE_SECONDS = Number(process.argv[3] ?? 10);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const daemon = await DaemonFixture.start({ businesses: [{ business_id: S("seed"), name: S("seed"), _version: N("1") }] });
  const reader = new CacheReader(daemon.cache);
  try {
    const latencies: number[] = [];
    let batches = 0;
    let seen = 0;
    let ended = false;
    const watcher = reader.watch(["businesses"], (batch: WatchBatch) => {
      const now = Date.now();
      batches++;
      for (const change of batch.changes) {
        seen++;
        latencies.push(now - change.at.getTime());
        if (change.key?.business_id === "end") ended = true;
      }
    });
    for (let i = 0; i < WRITES; i++) {
      await daemon.put("businesses", { business_id: S(`w${i % 50}`), name: S(`write ${i}`), _version: N(String(i + 1)) });
    }
    await daemon.put("businesses", { business_id: S("end"), name: S("end") });
    await waitFor(() => ended, 30_000, "the last change");
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(JSON.stringify({
      writes: WRITES, changes: seen, callbacks: batches,
      p50_ms: percentile(sorted, 50), p90_ms: percentile(sorted, 90), p99_ms: percentile(sorted, 99),
      max_ms: sorted[sorted.length - 1],
    }));

    // Idle: the daemon keeps running (and may commit its own bookkeeping); nothing is written.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const callbacksBefore = batches;
    const cpu = process.cpuUsage();
    const wall = process.hrtime.bigint();
    await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
    const used = process.cpuUsage(cpu);
    const elapsedUs = Number(process.hrtime.bigint() - wall) / 1000;
    console.log(JSON.stringify({
      idle_seconds: IDLE_SECONDS, idle_cpu_percent_of_a_core: (100 * (used.user + used.system)) / elapsedUs,
      callbacks_while_idle: batches - callbacksBefore,
    }));
    watcher.stop();
  } finally {
    reader.close();
    await daemon.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
