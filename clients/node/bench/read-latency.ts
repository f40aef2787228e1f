// Median latency of CacheReader's typed queries next to the same SQL through plain better-sqlite3.
//
// Usage: npm run bench [-- CALLS]   (default 10,000 calls a query, after 1,000 warm-up calls)
// Starts a daemon on the embedded DynamoDB with a realistic business (tests/support/node_fixture.py),
// then alternates typed and raw calls so both see the same machine load; prints one row a query.
import Database from "better-sqlite3";

import { CacheReader } from "../src";
import { BOOL, DaemonFixture, DynamoItem, L, M, N, S } from "../test/fixture";

const BID = "bench-biz";
const CALLS = Number(process.argv[2] ?? 10_000);
const WARMUP = 1_000;

/** A business the size the platform document describes: a full questionnaire, 20 keywords, etc. */
function seed(): Record<string, DynamoItem[]> {
  const answers: Record<string, unknown> = {};
  for (let i = 0; i < 30; i++) answers[`question_${i}`] = i % 3 ? S(`An answer of a few words, number ${i}`) : N(`${i}.5`);
  answers.services = L(...["drains", "boilers", "leaks", "heating"].map(S));
  answers.hours = M({ mon: S("8-18"), tue: S("8-18"), sat: S("closed") });
  const items: Record<string, DynamoItem[]> = {
    businesses: [{ business_id: S(BID), name: S("Bench Plumbing"), industry: S("plumbing"), phone: S("+1 555 0100"),
      email: S("hi@example.com"), website: S("https://example.com"), created_at: S("2026-01-01T00:00:00Z"),
      updated_at: S("2026-02-01T00:00:00Z"), _version: N("12") }],
    questionnaires: [{ business_id: S(BID), data: M(answers), completeness_score: N("0.85"), _version: N("4") }],
    keywords: [], service_areas: [], prompt_templates: [],
  };
  for (let i = 0; i < 20; i++) {
    const lang = i % 4 ? "en" : "es";
    items.keywords!.push({ business_id: S(BID), keyword_id: S(`keyword-${i}#${lang}`), slug: S(`keyword-${i}`),
      keyword: S(`keyword ${i}`), language: S(lang), search_intent: S("commercial"), created_at: S("2026-01-01") });
  }
  for (let i = 0; i < 10; i++) {
    items.service_areas!.push({ business_id: S(BID), area_id: S(`area-${i}`), slug: S(`area-${i}`), city: S(`City ${i}`),
      state: S("TX"), country: S("US"), priority: N(String(10 - i)), created_at: S("2026-01-01") });
  }
  for (const page of ["home", "service", "area"]) {
    for (let v = 1; v <= 2; v++) {
      items.prompt_templates!.push({ business_id: S(BID), template_id: S(`${page}#${v}`), page_type: S(page),
        version: N(String(v)), template: S("Write a page about {service} in {city}. ".repeat(20)),
        required_variables: L(S("service"), S("city")), optional_variables: L(S("phone")),
        word_count_target: N("800"), is_active: BOOL(true), created_at: S("2026-01-01") });
    }
  }
  return items;
}

function median(samples: bigint[]): number {
  const sorted = [...samples].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return Number(sorted[Math.floor(sorted.length / 2)]!) / 1000; // microseconds
}

/** Alternate `typed` and `raw` calls; the median of each, in microseconds. */
function measure(typed: () => unknown, raw: () => unknown): [number, number] {
  for (let i = 0; i < WARMUP; i++) {
    typed();
    raw();
  }
  const t: bigint[] = [];
  const r: bigint[] = [];
  for (let i = 0; i < CALLS; i++) {
    let start = process.hrtime.bigint();
    typed();
    t.push(process.hrtime.bigint() - start);
    start = process.hrtime.bigint();
    raw();
    r.push(process.hrtime.bigint() - start);
  }
  return [median(t), median(r)];
}

async function main(): Promise<void> {
  const daemon = await DaemonFixture.start(seed());
  try {
    const reader = CacheReader.open(daemon.cache);
    // The plain better-sqlite3 a developer would write: same SQL, same read transaction where the
    // reader uses one, numbers as JS numbers, JSON columns left as text.
    const db = new Database(daemon.cache, { readonly: true, fileMustExist: true, timeout: 5000 });
    const stmt = (sql: string) => db.prepare(sql);
    const business = stmt("SELECT * FROM businesses WHERE business_id = ?");
    const questionnaire = stmt("SELECT * FROM questionnaires WHERE business_id = ?");
    const keywordsAll = stmt("SELECT * FROM keywords WHERE business_id = ? ORDER BY keyword_id");
    const keywords = stmt("SELECT * FROM keywords WHERE business_id = ? AND language = ? ORDER BY keyword_id");
    const areas = stmt("SELECT * FROM service_areas WHERE business_id = ? ORDER BY priority IS NULL, priority, area_id");
    const templates = stmt("SELECT * FROM prompt_templates WHERE business_id = ? ORDER BY template_id");
    const active = stmt("SELECT * FROM prompt_templates WHERE business_id = ? AND page_type = ? AND is_active = 1 " +
      "ORDER BY version DESC LIMIT 1");
    const businesses = stmt("SELECT * FROM businesses ORDER BY business_id");
    const inTransaction = db.transaction((fn: () => unknown) => fn());

    const rows: [string, () => unknown, () => unknown][] = [
      ["business (with questionnaire)", () => reader.business(BID),
        () => inTransaction(() => [business.get(BID), questionnaire.get(BID)])],
      ["keywords (by language)", () => reader.keywords(BID, "en"), () => keywords.all(BID, "en")],
      ["serviceAreas (by priority)", () => reader.serviceAreas(BID), () => areas.all(BID)],
      ["activePromptTemplate", () => reader.activePromptTemplate(BID, "home"), () => active.get(BID, "home")],
      ["businesses (list)", () => reader.businesses(), () => businesses.all()],
      ["businessProfile (5 statements)", () => reader.businessProfile(BID),
        () => inTransaction(() => [business.get(BID), questionnaire.get(BID), keywordsAll.all(BID), areas.all(BID),
          templates.all(BID)])],
    ];
    console.log(`median of ${CALLS} calls each (µs), node ${process.version}`);
    console.log(["query".padEnd(32), "typed".padStart(8), "raw".padStart(8), "ratio".padStart(7)].join(" "));
    let worst = 0;
    for (const [name, typed, raw] of rows) {
      const [t, r] = measure(typed, raw);
      worst = Math.max(worst, t / r);
      console.log([name.padEnd(32), t.toFixed(1).padStart(8), r.toFixed(1).padStart(8),
        `${(t / r).toFixed(2)}x`.padStart(7)].join(" "));
    }
    console.log(`worst ratio ${worst.toFixed(2)}x`);
    reader.close();
    db.close();
  } finally {
    await daemon.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
