// How the generation server reads the seo-sync cache. Copy it; in your project import from
// "@seo-platform/seo-sync-reader" instead of "../src".
//
// Usage: node build/examples/generation-server.js CACHE_DB STATUS_SOCKET BUSINESS_ID
//   e.g. node build/examples/generation-server.js /var/lib/seo-sync/cache.db /run/seo-sync/status.sock acme
// The process must run as a user in the seo-sync group (SupplementaryGroups=seo-sync).
import { CacheReader, DaemonUnavailableError, StatusClient, numberText } from "../src";

async function main(cachePath: string, socketPath: string, businessId: string): Promise<number> {
  const status = new StatusClient(socketPath, { timeoutMs: 2000 });
  // At start-up: wait for the daemon's first complete sync (a cache that is not ready may be absent).
  try {
    await status.waitUntilReady(30_000);
  } catch (error) {
    if (!(error instanceof DaemonUnavailableError)) throw error;
    // The daemon is down: the cache still holds the last committed state, and reads work.
    console.error(`warning: ${error.message}; reading the cache as it is`);
  }

  // Open once and keep it for the life of the process: each read is then microseconds.
  const reader = CacheReader.open(cachePath);
  try {
    const fresh = reader.freshness();
    if (!fresh.ready) {
      console.error("the cache is not complete yet");
      return 75;
    }
    // One snapshot for a whole page generation: business, questionnaire, keywords, areas, templates.
    const profile = reader.businessProfile(businessId);
    if (profile === null) {
      console.error(`no business ${businessId} in the cache`);
      return 1;
    }
    const template = reader.activePromptTemplate(businessId, "home");
    const score = profile.questionnaire?.completeness_score;
    console.log(JSON.stringify({
      business: profile.business.name,
      completeness: score == null ? null : numberText(score), // exact text, whatever its size
      keywords: reader.keywords(businessId, "en").map((k) => k.keyword),
      areas: profile.serviceAreas.map((a) => a.city),
      homeTemplate: template?.template_id ?? null,
      cacheAgeMs: fresh.ageMs,
    }));

    // After the generation server writes an item to DynamoDB itself, it asks the daemon to apply
    // it now, so the very next read sees it (read-your-writes):
    //   await dynamo.send(new PutItemCommand({ TableName: "seo_keywords", Item: … }));
    //   await status.refresh("keywords", { business_id: businessId, keyword_id: "plumber#en" });
    return 0;
  } finally {
    reader.close();
  }
}

const [cachePath, socketPath, businessId] = process.argv.slice(2);
if (!cachePath || !socketPath || !businessId) {
  console.error("usage: generation-server CACHE_DB STATUS_SOCKET BUSINESS_ID");
  process.exitCode = 64;
} else {
  main(cachePath, socketPath, businessId).then((code) => (process.exitCode = code), (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
