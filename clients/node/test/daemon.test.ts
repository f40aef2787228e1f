// The reader against a real daemon on the embedded DynamoDB, with data written by plain boto3.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";

import { CacheReader, DaemonError, LosslessNumber, StatusClient, TABLE_NAMES, TABLES } from "../src";
import { BOOL, DaemonFixture, DynamoItem, L, M, N, S, Seed, waitFor } from "./fixture";

const DIGITS_38 = "12345678901234567890123456789012345678";
const TWO_53_PLUS_1 = "9007199254740993";
const LONG_DECIMAL = "0.1234567890123456789012345";
const BYTES = [0, 1, 2, 127, 128, 254, 255];
const base64 = (bytes: number[]) => Buffer.from(bytes).toString("base64");

/** Every item of one business holding each kind of value the reader must keep exact. */
function typedItems(bid: string): Record<string, DynamoItem[]> {
  return {
    businesses: [{
      business_id: S(bid), name: S("Café Zürich ✓ 日本語 🚀"), industry: S("plumbing"), _version: N("7"),
      big_extra: N(DIGITS_38), tags: { SS: ["zeta", "alpha", "Ünïcode"] },
      scores: { NS: ["1", "0.85", DIGITS_38] }, logo: { B: base64(BYTES) }, blobs: { BS: [base64([1]), base64([2, 3])] },
    }],
    questionnaires: [{
      business_id: S(bid), _version: N("2"), completeness_score: N("0.85"),
      data: M({
        big: N(DIGITS_38), beyond53: N(TWO_53_PLUS_1), max_safe: N("9007199254740991"), decimal: N("0.85"),
        long_decimal: N(LONG_DECIMAL), unicode: S("ünïcödé 😀"), nothing: { NULL: true },
        nested: M({ level2: M({ level3: L(S("deep ✓"), N("1"), BOOL(true), { NULL: true }) }) }),
      }),
    }],
    keywords: [
      { business_id: S(bid), keyword_id: S("plumber#en"), slug: S("plumber"), keyword: S("plumber"), language: S("en") },
      { business_id: S(bid), keyword_id: S("emergency-plumber#en"), keyword: S("emergency plumber"), language: S("en") },
      { business_id: S(bid), keyword_id: S("fontanero#es"), keyword: S("fontanero"), language: S("es") },
      { business_id: S(bid), keyword_id: S("plombier-café#fr"), keyword: S("plombier café"), language: S("fr") },
    ],
    service_areas: [
      { business_id: S(bid), area_id: S("north"), city: S("North"), priority: N("2") },
      { business_id: S(bid), area_id: S("south"), city: S("South"), priority: N("1") },
      { business_id: S(bid), area_id: S("west"), city: S("West"), priority: N("10") },
      { business_id: S(bid), area_id: S("east"), city: S("East") },
    ],
    prompt_templates: [
      { business_id: S(bid), template_id: S("home#1"), page_type: S("home"), version: N("1"), is_active: BOOL(true),
        template: S("v1"), word_count_target: N(TWO_53_PLUS_1), required_variables: L(S("city"), S("keyword")) },
      { business_id: S(bid), template_id: S("home#2"), page_type: S("home"), version: N("2"), is_active: BOOL(true),
        template: S("v2"), word_count_target: N(DIGITS_38) },
      { business_id: S(bid), template_id: S("home#3"), page_type: S("home"), version: N("3"), is_active: BOOL(false),
        template: S("v3 draft") },
      { business_id: S(bid), template_id: S("about#1"), page_type: S("about"), version: N("1"), is_active: BOOL(true),
        template: S("about"), word_count_target: N(LONG_DECIMAL) },
    ],
  };
}

const BULK_BUSINESSES = 150;

/** Many small businesses, so that a full resync takes a while to read through. */
function bulkItems(): Record<string, DynamoItem[]> {
  const out: Record<string, DynamoItem[]> = {
    businesses: [], questionnaires: [], keywords: [], service_areas: [], prompt_templates: [],
  };
  for (let i = 0; i < BULK_BUSINESSES; i++) {
    const bid = S(`bulk-${String(i).padStart(3, "0")}`);
    out.businesses!.push({ business_id: bid, name: S(`Bulk ${i}`), _version: N("1") });
    out.questionnaires!.push({ business_id: bid, data: M({ i: N(String(i)) }), _version: N("1") });
    for (const k of ["a", "b", "c"]) {
      out.keywords!.push({ business_id: bid, keyword_id: S(`${k}#en`), keyword: S(k), language: S("en") });
    }
    out.service_areas!.push({ business_id: bid, area_id: S("town"), city: S("Town"), priority: N("1") });
    out.prompt_templates!.push({ business_id: bid, template_id: S("home#1"), page_type: S("home"), version: N("1"),
      is_active: BOOL(true), template: S("t") });
  }
  return out;
}

function keyOf(table: string, item: DynamoItem): string[] {
  return TABLES[table as keyof typeof TABLES].keyNames.map((k) => (item[k] as { S: string }).S);
}

let daemon: DaemonFixture;
let reader: CacheReader;
let status: StatusClient;
// "seeded" reached the cache through the daemon's first full sync; "live" through boto3 writes
// made while it runs, each followed by a refresh.
const BUSINESSES = ["seeded", "live"];

before(async () => {
  const seed: Seed = bulkItems();
  for (const [table, items] of Object.entries(typedItems("seeded"))) seed[table] = [...(seed[table] ?? []), ...items];
  daemon = await DaemonFixture.start(seed);
  status = new StatusClient(daemon.socket);
  for (const [table, items] of Object.entries(typedItems("live"))) {
    for (const item of items) {
      await daemon.put(table, item);
      await status.refresh(table as keyof typeof TABLES, keyOf(table, item));
    }
  }
  reader = CacheReader.open(daemon.cache);
});

after(async () => {
  reader?.close();
  await daemon?.stop();
});

describe("values round-trip exactly from a boto3 write", () => {
  test("38-digit numbers come back as exact bigints (typed column, JSON column, _extra, number set)", () => {
    for (const bid of BUSINESSES) {
      assert.equal(reader.activePromptTemplate(bid, "home")!.word_count_target, BigInt(DIGITS_38));
      const data = reader.business(bid)!.questionnaire!.data as Record<string, unknown>;
      assert.equal(data.big, BigInt(DIGITS_38));
      const extra = reader.business(bid)!.business._extra;
      assert.equal(extra.big_extra, BigInt(DIGITS_38));
      assert.ok((extra.scores as Set<unknown>).has(BigInt(DIGITS_38)), `${bid}: 38 digits in a number set`);
    }
  });

  test("2^53 + 1 is a bigint, 2^53 - 1 stays a number", () => {
    for (const bid of BUSINESSES) {
      const home1 = reader.raw("SELECT * FROM prompt_templates WHERE business_id = ? AND template_id = 'home#1'", bid);
      assert.equal(home1.length, 1);
      const templates = reader.businessProfile(bid)!.promptTemplates;
      assert.equal(templates.find((t) => t.template_id === "home#1")!.word_count_target, 9007199254740993n);
      const data = reader.business(bid)!.questionnaire!.data as Record<string, unknown>;
      assert.equal(data.beyond53, 9007199254740993n);
      assert.equal(data.max_safe, 9007199254740991);
    }
  });

  test("the decimal 0.85 is the number 0.85; a decimal a double would round keeps its exact text", () => {
    for (const bid of BUSINESSES) {
      const { questionnaire } = reader.business(bid)!;
      assert.equal(questionnaire!.completeness_score, 0.85);
      const data = questionnaire!.data as Record<string, unknown>;
      assert.equal(data.decimal, 0.85);
      assert.ok(data.long_decimal instanceof LosslessNumber);
      assert.equal((data.long_decimal as LosslessNumber).value, LONG_DECIMAL);
      const about = reader.activePromptTemplate(bid, "about")!.word_count_target;
      assert.ok(about instanceof LosslessNumber);
      assert.equal(about.value, LONG_DECIMAL);
    }
  });

  test("string and number sets are Sets with exactly their members", () => {
    for (const bid of BUSINESSES) {
      const extra = reader.business(bid)!.business._extra;
      assert.deepEqual(extra.tags, new Set(["alpha", "zeta", "Ünïcode"]));
      const scores = extra.scores as Set<unknown>;
      assert.equal(scores.size, 3);
      assert.ok(scores.has(1) && scores.has(0.85));
    }
  });

  test("binary and binary sets are bytes, equal to what was written", () => {
    for (const bid of BUSINESSES) {
      const extra = reader.business(bid)!.business._extra;
      assert.ok(extra.logo instanceof Uint8Array);
      assert.deepEqual([...(extra.logo as Uint8Array)], BYTES);
      const blobs = [...(extra.blobs as Set<Uint8Array>)].map((b) => [...b]).sort();
      assert.deepEqual(blobs, [[1], [2, 3]]);
    }
  });

  test("nested maps and lists are objects and arrays, nulls and booleans included", () => {
    for (const bid of BUSINESSES) {
      const data = reader.business(bid)!.questionnaire!.data as Record<string, unknown>;
      assert.deepEqual(data.nested, { level2: { level3: ["deep ✓", 1, true, null] } });
      assert.equal(data.nothing, null);
    }
  });

  test("unicode text comes back unchanged, in columns, JSON and keys", () => {
    for (const bid of BUSINESSES) {
      assert.equal(reader.business(bid)!.business.name, "Café Zürich ✓ 日本語 🚀");
      assert.equal((reader.business(bid)!.questionnaire!.data as Record<string, unknown>).unicode, "ünïcödé 😀");
      assert.deepEqual(reader.keywords(bid, "fr").map((k) => k.keyword_id), ["plombier-café#fr"]);
    }
  });

  test("bool columns are booleans", () => {
    for (const bid of BUSINESSES) {
      const byId = new Map(reader.businessProfile(bid)!.promptTemplates.map((t) => [t.template_id, t.is_active]));
      assert.equal(byId.get("home#2"), true);
      assert.equal(byId.get("home#3"), false);
    }
  });

  test("the generated column names are the columns the daemon's cache has", () => {
    for (const table of TABLE_NAMES) {
      const columns = reader.raw<{ name: string }>(`PRAGMA table_info("${table}")`).map((c) => c.name);
      // `_types` (type detail beside JSON columns) is optional: a cache may have it before the schema names it.
      const generated: readonly string[] = TABLES[table].columnNames;
      assert.deepEqual(columns.filter((c) => c !== "_types"), generated.filter((c) => c !== "_types"), table);
    }
  });
});

describe("typed queries", () => {
  test("business() gives the business with its questionnaire, null for an unknown id", () => {
    const found = reader.business("seeded")!;
    assert.equal(found.business.business_id, "seeded");
    assert.equal(found.business._version, 7);
    assert.equal(found.questionnaire!._version, 2);
    assert.equal(reader.business("no-such-business"), null);
  });

  test("keywords() filters by language and orders by keyword_id", () => {
    assert.deepEqual(reader.keywords("seeded", "en").map((k) => k.keyword_id), ["emergency-plumber#en", "plumber#en"]);
    assert.deepEqual(reader.keywords("seeded", "es").map((k) => k.keyword), ["fontanero"]);
    assert.equal(reader.keywords("seeded").length, 4);
  });

  test("serviceAreas() orders by priority as numbers (1, 2, 10), areas without one last", () => {
    assert.deepEqual(reader.serviceAreas("seeded").map((a) => a.area_id), ["south", "north", "west", "east"]);
  });

  test("activePromptTemplate() is the highest active version of the page type", () => {
    const home = reader.activePromptTemplate("seeded", "home")!;
    assert.equal(home.template_id, "home#2");
    assert.equal(home.version, 2);
    assert.equal(reader.activePromptTemplate("seeded", "contact"), null);
  });

  test("businesses() lists every business by id, and pages", () => {
    const all = reader.businesses();
    assert.equal(all.length, BULK_BUSINESSES + 2);
    assert.deepEqual(all.map((b) => b.business_id), [...all.map((b) => b.business_id)].sort());
    const first = reader.businesses({ limit: 10 });
    const second = reader.businesses({ after: first.at(-1)!.business_id, limit: 10 });
    assert.deepEqual([...first, ...second].map((b) => b.business_id), all.slice(0, 20).map((b) => b.business_id));
  });

  test("businessProfile() reads everything of one business; required_variables is an array", () => {
    const profile = reader.businessProfile("seeded")!;
    assert.equal(profile.keywords.length, 4);
    assert.equal(profile.serviceAreas[0]!.area_id, "south");
    const home1 = profile.promptTemplates.find((t) => t.template_id === "home#1")!;
    assert.deepEqual(home1.required_variables, ["city", "keyword"]);
  });

  test("counts() and raw() see the same rows", () => {
    const counts = reader.counts();
    assert.equal(counts.businesses, BULK_BUSINESSES + 2);
    const [row] = reader.raw<{ n: number }>("SELECT count(*) AS n FROM keywords");
    assert.equal(row!.n, counts.keywords);
    assert.throws(() => reader.raw("DELETE FROM keywords"), /read-only|readonly|return rows/);
  });

  test("isReady() and freshness() say the cache is complete", () => {
    assert.equal(reader.isReady(), true);
    const fresh = reader.freshness();
    assert.ok(fresh.completedAt instanceof Date && fresh.lastCommitAt instanceof Date);
    assert.ok(fresh.lastCommitAt.getTime() >= fresh.completedAt.getTime());
    assert.ok(fresh.ageMs !== null && fresh.ageMs >= 0);
  });
});

describe("the status socket", () => {
  test("health() is ok, status() has every table, waitUntilReady() resolves", async () => {
    assert.equal((await status.health()).ok, true);
    const doc = await status.status();
    assert.deepEqual(Object.keys(doc.tables as object).sort(), [...TABLE_NAMES].sort());
    assert.equal((await status.waitUntilReady(10_000)).ok, true);
  });

  test("refresh() takes a key object too, and says when an item does not exist", async () => {
    const answer = await status.refresh("keywords", { business_id: "seeded", keyword_id: "nope#en" });
    assert.equal(answer.present, false);
    await assert.rejects(status.refresh("keywords", ["only-one-part"]), TypeError);
    await assert.rejects(status.requestJson("frobnicate"), DaemonError);
  });

  test("refresh() right after a write makes the next read see it (30 of 30)", async () => {
    // Each write carries a higher _version, as the platform's write path stamps it: a stream record
    // of an earlier write that the daemon applies after the refresh then cannot take the row back.
    let seen = 0;
    for (let i = 0; i < 30; i++) {
      const keyword = `refreshed ${i} ✓`;
      await daemon.put("keywords", { business_id: S("live"), keyword_id: S("fresh#de"), keyword: S(keyword),
        language: S("de"), _version: N(String(i + 1)) });
      await status.refresh("keywords", ["live", "fresh#de"]);
      if (reader.keywords("live", "de")[0]?.keyword === keyword) seen++;
    }
    assert.equal(seen, 30);
  });
});

describe("the example", () => {
  test("examples/generation-server runs against the daemon and prints the business", async () => {
    const example = path.join(__dirname, "..", "examples", "generation-server.js");
    const { stdout } = await promisify(execFile)(process.execPath, [example, daemon.cache, daemon.socket, "seeded"]);
    const printed = JSON.parse(stdout) as Record<string, unknown>;
    assert.equal(printed.business, "Café Zürich ✓ 日本語 🚀");
    assert.equal(printed.completeness, "0.85");
    assert.equal(printed.homeTemplate, "home#2");
    assert.deepEqual(printed.areas, ["South", "North", "West", "East"]);
  });
});

describe("reading through a SIGHUP resync", () => {
  test("every read succeeds and no table ever shows fewer rows", async () => {
    const fullSyncs = () => new Map(reader.raw<{ table_name: string; last_full_sync: number }>(
      "SELECT table_name, last_full_sync FROM _sync_tables").map((r) => [r.table_name, r.last_full_sync]));
    const before = fullSyncs();
    const baseline = reader.counts();
    const errors: unknown[] = [];
    let reads = 0;
    let readsDuringResync = 0;
    let fewer = 0;
    process.kill(daemon.daemonPid, "SIGHUP");
    const resynced = () => TABLE_NAMES.every((t) => (fullSyncs().get(t) ?? 0) > (before.get(t) ?? 0));
    await waitFor(() => {
      for (let i = 0; i < 20; i++) {
        try {
          const counts = reader.counts();
          if (TABLE_NAMES.some((t) => counts[t] < baseline[t])) fewer++;
          const profile = reader.businessProfile(`bulk-${String(reads % BULK_BUSINESSES).padStart(3, "0")}`);
          if (profile === null || profile.keywords.length !== 3) fewer++;
          reads++;
        } catch (error) {
          errors.push(error);
        }
      }
      if (resynced()) return true;
      readsDuringResync = reads;
      return false;
    }, 120_000, `a full resync of every table (daemon log: ${daemon.daemonLog().slice(-500)})`, 1);
    assert.deepEqual(errors, []);
    assert.equal(fewer, 0);
    assert.ok(readsDuringResync > 0, "no read happened while the resync ran");
  });
});
