// Working with CacheNumber (number | bigint | LosslessNumber) without casts and without losing a digit:
// exact comparison, conversion to a plain number when rounding is acceptable, and JSON text with
// every number written as the exact literal (JSON.stringify throws on a bigint and writes a
// LosslessNumber as an object).
import { LosslessNumber, stringify as losslessStringify } from "lossless-json";

import type { CacheNumber } from "./values";

/** True for the three kinds a number read from the cache can be. */
export function isCacheNumber(value: unknown): value is CacheNumber {
  return typeof value === "number" || typeof value === "bigint" || value instanceof LosslessNumber;
}

/** A decimal as sign, significant digits (no leading or trailing zeros) and the power of ten of the first one. */
interface Decimal {
  sign: -1 | 0 | 1;
  digits: string;
  exponent: number;
}

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

function decimalOf(value: CacheNumber): Decimal {
  const text = value instanceof LosslessNumber ? value.value : typeof value === "number" ? numberString(value) : value.toString();
  const match = DECIMAL.exec(text);
  if (!match) throw new RangeError(`not a decimal number: ${text}`);
  const [, sign = "", whole = "", fraction = "", exp = "0"] = match;
  const all = whole + fraction;
  const first = all.search(/[1-9]/);
  if (first < 0) return { sign: 0, digits: "", exponent: 0 };
  const digits = all.slice(first).replace(/0+$/, "");
  return { sign: sign === "-" ? -1 : 1, digits, exponent: whole.length - first - 1 + Number(exp) };
}

// String(n) of a double is the shortest text that reads back as it: exact for comparison purposes.
function numberString(n: number): string {
  return Object.is(n, -0) ? "0" : String(n);
}

/**
 * Compare two cache numbers exactly: -1, 0 or 1, as `a < b`, `a == b`, `a > b` in decimal arithmetic
 * (1 and 1n and LosslessNumber("1.0") are equal; 2^53 + 1 as a bigint is above 2^53). A `number`
 * counts as the decimal it prints as, which for a number read from the cache is the decimal
 * DynamoDB holds (the reader returns a `number` only when it gives that decimal back digit for digit).
 * For `sort`: `values.sort(compareNumbers)`.
 */
export function compareNumbers(a: CacheNumber, b: CacheNumber): -1 | 0 | 1 {
  if ((typeof a === "number" && !Number.isFinite(a)) || (typeof b === "number" && !Number.isFinite(b))) {
    const [x, y] = [toNumber(a), toNumber(b)]; // ±Infinity (a default for a missing value) as doubles do
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const x = decimalOf(a);
  const y = decimalOf(b);
  if (x.sign !== y.sign) return x.sign < y.sign ? -1 : 1;
  if (x.sign === 0) return 0;
  let magnitude: number;
  if (x.exponent !== y.exponent) {
    magnitude = x.exponent < y.exponent ? -1 : 1;
  } else {
    const width = Math.max(x.digits.length, y.digits.length);
    const dx = x.digits.padEnd(width, "0");
    const dy = y.digits.padEnd(width, "0");
    magnitude = dx === dy ? 0 : dx < dy ? -1 : 1;
  }
  return magnitude === 0 ? 0 : ((magnitude * x.sign) as -1 | 1);
}

/** True when two cache numbers are the same decimal value (see compareNumbers). */
export function numbersEqual(a: CacheNumber, b: CacheNumber): boolean {
  return compareNumbers(a, b) === 0;
}

/**
 * The nearest JavaScript number: exact for a `number`, rounded (as `Number(text)` rounds) for a
 * bigint past 2^53 or a LosslessNumber. For arithmetic where a double's 15-17 digits are enough.
 */
export function toNumber(value: CacheNumber): number {
  return value instanceof LosslessNumber ? Number(value.value) : Number(value);
}

/** A value with Sets as arrays and bytes as base64 text, ready for JSON. */
function jsonReady(value: unknown): unknown {
  if (value instanceof Set) return Array.from(value, jsonReady);
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");
  if (Array.isArray(value)) return value.map(jsonReady);
  if (value !== null && typeof value === "object" && !(value instanceof LosslessNumber)) {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto === Object.prototype || proto === null) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = jsonReady(v);
      return out;
    }
  }
  return value;
}

/**
 * JSON text of a row, a profile or any value read from the cache, where every CacheNumber is the
 * exact number literal (a bigint's digits, a LosslessNumber's text), never an object and never a
 * throw. Sets (from `_extra`) become arrays and binary values base64 text; everything else is as
 * JSON.stringify writes it (Dates as ISO text, undefined members left out). `space` as in JSON.stringify.
 */
export function stringifyJson(value: unknown, space?: number | string): string {
  return losslessStringify(jsonReady(value), undefined, space) ?? "null";
}
