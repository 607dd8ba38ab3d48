/**
 * What a cache backend does for `TenantCache`. Every call names the tenant by id and takes the
 * caller's key as it is: the driver alone decides how the two make one name in its store, and
 * must make it so that no key of one tenant can ever name another tenant's entry or the
 * driver's own bookkeeping. Values are strings (the front end stores JSON).
 *
 * Why not unstorage (`createStorage` + `prefixStorage`), which the issue suggested as a base:
 * its core API has get/set/remove/getKeys/clear only. TTL is a per-driver option, there is no
 * increment, no list, no pipelined batch on Redis, and `clear(prefix)` lists and deletes every
 * key: a flush would scan in the request path, which is exactly what the generation below
 * avoids. Both drivers here are small and use ioredis (already the server's Redis client) or a
 * `Map` directly.
 */
export interface CacheDriver {
  readonly name: 'memory' | 'redis'
  /**
   * The value under `key` (`null` when absent) handed to `read`, whose result the promise
   * resolves to. `read` runs in the same `then` as the driver's own handling of the reply and of
   * the store's refusals: this is every app's hot path, and each promise costs more once
   * AsyncLocalStorage is on (Node's promise hooks), so a call costs one promise over the store's.
   */
  get<T>(tenantId: string, key: string, read: (value: string | null) => T): Promise<T>
  /**
   * `ttlMs` 0: no expiry. Resolves, to nothing of use (the front end maps it), once written: for
   * the same reason as `get`, a driver may return the store's own reply promise as it is.
   */
  set(tenantId: string, key: string, value: string, ttlMs: number): Promise<unknown>
  delete(tenantId: string, key: string): Promise<boolean>
  /** Adds `by` to the integer under `key` (absent: 0); `ttlMs` is set when the entry has no expiry yet. */
  increment(tenantId: string, key: string, by: number, ttlMs: number): Promise<number>
  /** Appends to the list under `key`; returns its new length. `ttlMs` as for `increment`. */
  push(tenantId: string, key: string, values: readonly string[], ttlMs: number): Promise<number>
  /** Items `start`..`stop` (inclusive; negative counts from the end), as Redis LRANGE. */
  range(tenantId: string, key: string, start: number, stop: number): Promise<string[]>
  getMany(tenantId: string, keys: readonly string[]): Promise<Array<string | undefined>>
  setMany(tenantId: string, entries: ReadonlyArray<readonly [string, string]>, ttlMs: number): Promise<void>
  /** Makes every entry of the tenant unreachable at once (O(1)); the old ones are removed in the background. */
  flush(tenantId: string): Promise<void>
  /** One bounded step of the background removal. */
  sweep(): Promise<SweepStep>
  /** Removes everything the tenant has in the store (not in a request path: may scan). Returns how many keys went. */
  purge(tenantId: string): Promise<number>
  close(): Promise<void>
}

/** What one background step did. */
export interface SweepStep {
  /** The tenant it worked on, if any had work pending. */
  tenantId?: string
  /** Entries removed. */
  removed: number
  /** Whether no work is pending any more (for that tenant). */
  done: boolean
}
