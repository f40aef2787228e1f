// @seo-platform/seo-sync-reader: the generation server's typed reader of the seo-sync cache.
export { CacheReader, convertRow } from "./reader";
export type { BusinessProfile, BusinessWithQuestionnaire, CacheReaderOptions, Freshness, RawCell } from "./reader";
export { changesSince, currentCursor, tablesOf, watch, Watcher, watchQuery } from "./changes";
export type { Change, ChangesPage, ChangesSinceOptions, WatchBatch, WatchOptions, WatchQueryOptions } from "./changes";
export { StatusClient } from "./status";
export type { Health, ItemKey, RefreshResult, StatusClientOptions } from "./status";
export { CacheUnavailableError, DaemonError, DaemonUnavailableError, RateLimitedError } from "./errors";
export type { DaemonUnavailableReason } from "./errors";
export { LosslessNumber, numberFromText, numberText, parseExtra, parseJson } from "./values";
export { compareNumbers, isCacheNumber, numbersEqual, stringifyJson, toNumber } from "./numbers";
export type { CacheNumber, JsonValue } from "./values";
export * from "./generated/schema";
