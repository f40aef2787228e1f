// How cache cells become JavaScript values without losing a digit.
//
// The cache keeps DynamoDB numbers exactly: an INTEGER cell for an integer that fits 64 bits, a REAL
// cell for a decimal a double holds exactly, and the exact decimal TEXT otherwise. JSON columns keep
// exact number literals. JavaScript's own number loses digits past 2^53 and JSON.parse rounds a
// 38-digit literal, so every number goes through `numberFromText` / `numberFromCell` below.
import { isInteger, isSafeNumber, LosslessNumber, parse as losslessParse } from "lossless-json";
import { unmarshall } from "@aws-sdk/util-dynamodb";

export { LosslessNumber };

/**
 * A number read from the cache:
 * - `number` for integers with |n| <= 2^53 - 1 and for decimals whose digits a double keeps
 *   (0.85, 800.5, 1e-7);
 * - `bigint` for integers beyond 2^53 (38-digit integers included);
 * - `LosslessNumber` (lossless-json: `.value` is the exact decimal text) for a decimal a double
 *   would round, e.g. 0.12345678901234567890123.
 */
export type CacheNumber = number | bigint | LosslessNumber;

/** A parsed JSON column: numbers as CacheNumber, everything else as JSON.parse gives it. */
export type JsonValue = null | boolean | string | CacheNumber | JsonValue[] | { [key: string]: JsonValue };

/** The exact value of a number written as decimal text (a DynamoDB N value, a JSON literal). */
export function numberFromText(text: string): CacheNumber {
  if (isInteger(text)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : BigInt(text);
  }
  return isSafeNumber(text) ? Number(text) : new LosslessNumber(text);
}

/** A number cell as better-sqlite3 returns it with safeIntegers(true): INTEGER is a bigint. */
export function numberFromCell(cell: bigint | number | string | null): CacheNumber | null {
  switch (typeof cell) {
    case "bigint":
      return cell >= -MAX_SAFE && cell <= MAX_SAFE ? Number(cell) : cell;
    case "string":
      return numberFromText(cell);
    default:
      return cell; // REAL: the cache stores a REAL only when the double is exact; or null
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A bool cell (0/1 INTEGER) as a boolean. */
export function booleanFromCell(cell: bigint | number | null): boolean | null {
  return cell === null ? null : cell !== 0n && cell !== 0;
}

// A text with no run of 16 digits (dots allowed between them) and no exponent holds only number
// literals of at most 15 significant digits: each is an integer below 2^53 or a decimal that a double
// gives back digit for digit, so the built-in JSON.parse is exact for it, and several times faster.
// Anything else (including look-alikes inside strings) takes the lossless parser.
const MAY_LOSE_DIGITS = /\d(?:\.?\d){15}|\d[eE]/;

/** Parse a JSON column's text with every number exact (see CacheNumber). */
export function parseJson(text: string): JsonValue {
  if (!MAY_LOSE_DIGITS.test(text)) {
    return JSON.parse(text) as JsonValue;
  }
  return losslessParse(text, null, numberFromText) as JsonValue;
}

type DynamoJson = { [type: string]: unknown };

// `_extra` holds DynamoDB JSON with binary as base64 text; util-dynamodb wants the bytes themselves.
function decodeBinary(value: DynamoJson): DynamoJson {
  if (typeof value.B === "string") return { B: Buffer.from(value.B, "base64") };
  if (Array.isArray(value.BS)) return { BS: value.BS.map((b: string) => Buffer.from(b, "base64")) };
  if (value.M && typeof value.M === "object") {
    const m: Record<string, DynamoJson> = {};
    for (const [k, v] of Object.entries(value.M as Record<string, DynamoJson>)) m[k] = decodeBinary(v);
    return { M: m };
  }
  if (Array.isArray(value.L)) return { L: value.L.map((v: DynamoJson) => decodeBinary(v)) };
  return value;
}

/**
 * The `_extra` column (attributes the schema does not type, as DynamoDB JSON) as plain values:
 * unmarshalled by @aws-sdk/util-dynamodb, so a string set is a Set<string>, a number set a
 * Set<CacheNumber>, binary a Uint8Array (Buffer), a map an object; numbers as CacheNumber.
 * DynamoDB JSON writes numbers as strings, so the built-in JSON.parse loses nothing here.
 */
export function parseExtra(text: string | null): Record<string, unknown> {
  if (text === null || text === "") return {};
  const attrs = JSON.parse(text) as Record<string, DynamoJson>;
  const decoded: Record<string, DynamoJson> = {};
  for (const [name, value] of Object.entries(attrs)) decoded[name] = decodeBinary(value);
  // util-dynamodb's AttributeValue type is the SDK client's; the shape is the same DynamoDB JSON.
  return unmarshall(decoded as unknown as Parameters<typeof unmarshall>[0], { wrapNumbers: numberFromText });
}

/** The exact decimal text of a CacheNumber (for logs, comparisons, or a decimal library). */
export function numberText(value: CacheNumber): string {
  return value instanceof LosslessNumber ? value.value : String(value);
}
