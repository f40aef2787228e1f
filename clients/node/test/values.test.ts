// Number, JSON and _extra conversion without a database.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LosslessNumber, numberFromText, numberText, parseExtra, parseJson } from "../src";
import { booleanFromCell, numberFromCell } from "../src/values";

const DIGITS_38 = "12345678901234567890123456789012345678";

test("numberFromText: safe integers and exact decimals are numbers, big integers bigints, others exact text", () => {
  assert.equal(numberFromText("42"), 42);
  assert.equal(numberFromText("-9007199254740991"), -9007199254740991);
  assert.equal(numberFromText("9007199254740993"), 9007199254740993n);
  assert.equal(numberFromText(DIGITS_38), BigInt(DIGITS_38));
  assert.equal(numberFromText("0.85"), 0.85);
  assert.equal(numberFromText("1e-7"), 1e-7);
  const long = numberFromText("0.1234567890123456789012345");
  assert.ok(long instanceof LosslessNumber);
  assert.equal(numberText(long), "0.1234567890123456789012345");
});

test("numberFromCell: INTEGER bigints become numbers only when safe; REAL stays; TEXT is parsed exactly", () => {
  assert.equal(numberFromCell(5n), 5);
  assert.equal(typeof numberFromCell(9007199254740991n), "number");
  assert.equal(numberFromCell(9007199254740992n), 9007199254740992n);
  assert.equal(numberFromCell(-9223372036854775808n), -9223372036854775808n);
  assert.equal(numberFromCell(0.85), 0.85);
  assert.equal(numberFromCell(DIGITS_38), BigInt(DIGITS_38));
  assert.equal(numberFromCell(null), null);
});

test("booleanFromCell: 0/1 as booleans, null as null", () => {
  assert.equal(booleanFromCell(1n), true);
  assert.equal(booleanFromCell(0n), false);
  assert.equal(booleanFromCell(0), false);
  assert.equal(booleanFromCell(null), null);
});

test("parseJson keeps a 38-digit literal exact where JSON.parse rounds it", () => {
  const text = `{"big":${DIGITS_38},"n":[1,2.5,9007199254740993],"s":"x"}`;
  assert.notEqual(String((JSON.parse(text) as { big: number }).big), DIGITS_38);
  assert.deepEqual(parseJson(text), { big: BigInt(DIGITS_38), n: [1, 2.5, 9007199254740993n], s: "x" });
});

test("parseJson's fast path and lossless path agree on short numbers", () => {
  const short = `{"a":[0,-1,123456789012345,0.85,-0.5],"b":{"c":true,"d":null,"e":"ünï"}}`;
  // The same document with a long string forces the lossless parser.
  const forced = short.replace(`"ünï"`, `"ünï","pad":"1234567890123456"`);
  const fast = parseJson(short) as { a: unknown };
  const slow = parseJson(forced) as { b: Record<string, unknown> };
  delete slow.b.pad;
  assert.deepEqual(fast, slow);
  assert.deepEqual(fast.a, [0, -1, 123456789012345, 0.85, -0.5]);
});

test("parseExtra unmarshals DynamoDB JSON: sets, binary, maps, exact numbers", () => {
  const extra = parseExtra(JSON.stringify({
    tags: { SS: ["a", "b"] }, nums: { NS: ["1", DIGITS_38] }, bin: { B: Buffer.from([0, 255]).toString("base64") },
    map: { M: { n: { N: "0.85" }, l: { L: [{ S: "x" }, { BOOL: false }, { NULL: true }] } } },
  }));
  assert.deepEqual(extra.tags, new Set(["a", "b"]));
  assert.deepEqual(extra.nums, new Set([1, BigInt(DIGITS_38)]));
  assert.deepEqual([...(extra.bin as Uint8Array)], [0, 255]);
  assert.deepEqual(extra.map, { n: 0.85, l: ["x", false, null] });
  assert.deepEqual(parseExtra(null), {});
});
