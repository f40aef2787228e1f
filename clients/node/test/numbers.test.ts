// CacheNumber helpers: exact comparison, conversion, and JSON text with exact number literals.
import assert from "node:assert/strict";
import { test } from "node:test";

import { compareNumbers, isCacheNumber, LosslessNumber, numbersEqual, stringifyJson, toNumber } from "../src";

const lossless = (text: string) => new LosslessNumber(text);

test("compareNumbers orders number, bigint and LosslessNumber exactly, as decimals", () => {
  assert.equal(compareNumbers(1, 1n), 0);
  assert.equal(compareNumbers(lossless("1.0"), 1), 0);
  assert.equal(compareNumbers(2n ** 53n + 1n, 2 ** 53), 1); // a double would call these equal
  assert.equal(compareNumbers(lossless("0.12345678901234567890123"), lossless("0.12345678901234567890124")), -1);
  assert.equal(compareNumbers(-0.5, lossless("-5E-1")), 0);
  assert.equal(compareNumbers(1e-7, lossless("0.0000001")), 0);
  assert.equal(compareNumbers(-100, -99), -1);
  assert.equal(compareNumbers(0, -0), 0);
  assert.equal(compareNumbers(lossless("100"), 99.99), 1);
  assert.equal(compareNumbers(-1n, lossless("0.001")), -1);
  const sorted = [3n, lossless("2.5"), -1, 0.5, 10n ** 30n].sort(compareNumbers).map(String);
  assert.deepEqual(sorted, ["-1", "0.5", "2.5", "3", "1000000000000000000000000000000"]);
  assert.ok(numbersEqual(10n ** 20n, lossless("1E+20")));
  assert.equal(compareNumbers(10n ** 40n, Infinity), -1); // Infinity as a default for a missing value
  assert.equal(compareNumbers(-Infinity, lossless("-1E+300")), -1);
});

test("toNumber gives the nearest double; isCacheNumber tells the three kinds from anything else", () => {
  assert.equal(toNumber(lossless("0.1")), 0.1);
  assert.equal(toNumber(2n ** 64n), 18446744073709551616);
  assert.equal(toNumber(7), 7);
  assert.ok(isCacheNumber(1) && isCacheNumber(1n) && isCacheNumber(lossless("1.5")));
  assert.ok(!isCacheNumber("1") && !isCacheNumber(null) && !isCacheNumber({ value: "1" }));
});

test("stringifyJson writes exact number literals, never an object and never a throw", () => {
  const profile = { big: 2n ** 64n, exact: lossless("0.12345678901234567890123"), plain: 0.85,
    nested: [{ n: -(10n ** 38n) }], tags: new Set(["a", "b"]), logo: Buffer.from("hi"), at: new Date(0) };
  assert.throws(() => JSON.stringify(profile)); // what the built-in does with a bigint
  const text = stringifyJson(profile);
  assert.equal(text, '{"big":18446744073709551616,"exact":0.12345678901234567890123,"plain":0.85,' +
    '"nested":[{"n":-100000000000000000000000000000000000000}],"tags":["a","b"],"logo":"aGk=",' +
    '"at":"1970-01-01T00:00:00.000Z"}');
  assert.equal(stringifyJson({ a: 1n }, 2), '{\n  "a": 1\n}');
});
