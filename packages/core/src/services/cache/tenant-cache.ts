import { TenantryError } from '../../errors.js'
import { SILENT_LOGGER, type Logger } from '../../logger.js'
import { scopeTenant, type TenantService } from '../scope.js'
import type { ResolvedCacheConfig } from '../services-config.js'
import type { CacheDriver, SweepStep } from './cache-driver.js'
import { MemoryCacheDriver } from './memory-driver.js'
import { RedisCacheDriver } from './redis-driver.js'

/** Options of a write. */
export interface CacheSetOptions {
  /** Milliseconds until the entry expires. For `increment` and `push`: set when the entry has no expiry yet. @default no expiry */
  ttlMs?: number
}

/** One tenant's counts in this process since it started (or since the tenant was purged). */
export interface CacheStats {
  hits: number
  misses: number
  writes: number
  deletes: number
  flushes: number
}

/** Longest key, in UTF-16 code units. */
export const CACHE_MAX_KEY_LENGTH = 1024

/**
 * `tenantry.cache`: a cache confined to the tenant in context (seed 002's `tenant:<slug>:` keys,
 * seed 004's user-scoped Redis cache, without the prefix to remember). Every call reads the
 * tenant from the context (`NO_TENANT` outside `withTenant`) and hands the driver the tenant's
 * id and the caller's key; the driver keeps tenants apart whatever the key holds.
 *
 * Values are anything JSON can hold; what is read back is the JSON parsed (a `Date` comes back
 * as its string). `flush()` empties the tenant's cache at once, whatever its size: see the
 * drivers. Stats are per tenant and per process, cheap enough to count on every call.
 *
 * @example
 * await tenantry.withTenant('acme', async () => {
 *   await tenantry.cache.set('pricing', config, { ttlMs: 60_000 })
 *   const views = await tenantry.cache.increment('views')
 * })
 */
export class TenantCache implements TenantService {
  readonly name = 'cache'
  readonly driver: CacheDriver
  readonly #maxValueBytes: number
  readonly #stats = new Map<string, CacheStats>()
  readonly #sweepIntervalMs: number
  readonly #logger: Logger
  #timer: NodeJS.Timeout | undefined
  #sweeping = false

  constructor(config: ResolvedCacheConfig, options: { logger?: Logger; driver?: CacheDriver } = {}) {
    this.#logger = options.logger ?? SILENT_LOGGER
    this.#maxValueBytes = config.maxValueBytes
    this.#sweepIntervalMs = config.sweepIntervalMs
    this.driver =
      options.driver ??
      (config.driver === 'redis'
        ? new RedisCacheDriver({ url: config.url!, prefix: config.prefix, sweepBatch: config.sweepBatch, maxCachedTenants: config.maxCachedTenants, logger: this.#logger })
        : new MemoryCacheDriver())
  }

  // `get` and `set` are every app's hot path: one `then` each over the store's own promise (the
  // driver runs `get`'s in its own `then`), no async wrapper, the stats found before the call.

  /** The value under `key`, or `undefined`. */
  get<T = unknown>(key: string): Promise<T | undefined> {
    let tenant: string
    try {
      tenant = this.#tenant()
      checkKey(key)
    } catch (error) {
      return Promise.reject(error)
    }
    const stats = this.#statsOf(tenant)
    return this.driver.get(tenant, key, (raw): T | undefined => {
      if (raw === null) {
        stats.misses++
        return undefined
      }
      stats.hits++
      return JSON.parse(raw) as T
    })
  }

  set(key: string, value: unknown, options?: CacheSetOptions): Promise<void> {
    let stats: CacheStats
    let sent: Promise<unknown>
    try {
      const tenant = this.#tenant()
      sent = this.driver.set(tenant, checkKey(key), this.#encode(key, value), options === undefined ? 0 : ttlOf(options))
      stats = this.#statsOf(tenant)
    } catch (error) {
      return Promise.reject(error)
    }
    return sent.then(() => {
      stats.writes++
    })
  }

  /** Removes `key`; whether it was there. */
  async delete(key: string): Promise<boolean> {
    const tenant = this.#tenant()
    const removed = await this.driver.delete(tenant, checkKey(key))
    this.#count(tenant, 'deletes')
    return removed
  }

  /** Adds `by` (default 1; negative subtracts) to the integer under `key` (absent: 0) and returns the result. */
  async increment(key: string, by = 1, options: CacheSetOptions = {}): Promise<number> {
    const tenant = this.#tenant()
    if (!Number.isSafeInteger(by)) throw new TenantryError('INVALID_OPTION', `increment takes a whole number, not ${String(by)}`)
    const result = await this.driver.increment(tenant, checkKey(key), by, ttlOf(options))
    this.#count(tenant, 'writes')
    return result
  }

  /** Appends `values` to the list under `key` (created when absent); returns its length. */
  async push(key: string, values: readonly unknown[], options: CacheSetOptions = {}): Promise<number> {
    const tenant = this.#tenant()
    checkKey(key)
    if (!Array.isArray(values) || values.length === 0) throw new TenantryError('INVALID_OPTION', 'push takes a non-empty array of values')
    const length = await this.driver.push(tenant, key, values.map((v) => this.#encode(key, v)), ttlOf(options))
    this.#count(tenant, 'writes')
    return length
  }

  /** Items `start` to `stop` of the list under `key`, both included; negative indexes count from the end (-1: the last). */
  async range<T = unknown>(key: string, start = 0, stop = -1): Promise<T[]> {
    const tenant = this.#tenant()
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(stop)) throw new TenantryError('INVALID_OPTION', 'range takes whole-number indexes')
    const items = await this.driver.range(tenant, checkKey(key), start, stop)
    this.#count(tenant, items.length > 0 ? 'hits' : 'misses')
    return items.map((item) => JSON.parse(item) as T)
  }

  /** The values under `keys`, in order (`undefined` where absent): one round trip per 1,000 keys. */
  async getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    const tenant = this.#tenant()
    if (!Array.isArray(keys)) throw new TenantryError('INVALID_OPTION', 'getMany takes an array of keys')
    if (keys.length === 0) return []
    for (const key of keys) checkKey(key)
    const raws = await this.driver.getMany(tenant, keys)
    return raws.map((raw) => {
      this.#count(tenant, raw === undefined ? 'misses' : 'hits')
      return raw === undefined ? undefined : (JSON.parse(raw) as T)
    })
  }

  /** Sets every entry (an object, or `[key, value]` pairs), all with the same options. */
  async setMany(entries: Record<string, unknown> | ReadonlyArray<readonly [string, unknown]>, options: CacheSetOptions = {}): Promise<void> {
    const tenant = this.#tenant()
    const list = Array.isArray(entries) ? entries : entries && typeof entries === 'object' ? Object.entries(entries) : undefined
    if (!list) throw new TenantryError('INVALID_OPTION', 'setMany takes an object or [key, value] pairs')
    if (list.length === 0) return
    const encoded = list.map(([key, value]) => [checkKey(key), this.#encode(key, value)] as const)
    await this.driver.setMany(tenant, encoded, ttlOf(options))
    this.#count(tenant, 'writes', encoded.length)
  }

  /** Empties the tenant's cache at once (O(1)); the old entries are removed in the background. */
  async flush(): Promise<void> {
    const tenant = this.#tenant()
    await this.driver.flush(tenant)
    this.#count(tenant, 'flushes')
  }

  /** The tenant's counts in this process. */
  stats(): CacheStats {
    const tenant = this.#tenant()
    return { ...(this.#stats.get(tenant) ?? emptyStats()) }
  }

  /** One step of the background removal, as the timer runs it: for operators and tests. */
  sweep(): Promise<SweepStep> {
    return this.driver.sweep()
  }

  async purgeTenant(tenantId: string): Promise<{ driver: string; keys: number }> {
    this.#stats.delete(tenantId)
    return { driver: this.driver.name, keys: await this.driver.purge(tenantId) }
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    await this.driver.close()
  }

  /** The tenant in context; starts the background removal on the first call of this process. */
  #tenant(): string {
    const { id } = scopeTenant('cache')
    if (!this.#timer) this.#startSweeping()
    return id
  }

  #startSweeping(): void {
    this.#timer = setInterval(() => {
      if (this.#sweeping) return
      this.#sweeping = true
      this.driver
        .sweep()
        .catch((err: unknown) => this.#logger.warn({ err }, 'A background step of the cache (removing flushed or expired entries) failed; the next tick retries'))
        .finally(() => {
          this.#sweeping = false
        })
    }, this.#sweepIntervalMs)
    this.#timer.unref()
  }

  #encode(key: string, value: unknown): string {
    const json = value === undefined ? undefined : JSON.stringify(value)
    if (json === undefined) throw new TenantryError('INVALID_OPTION', `The value for cache key ${JSON.stringify(key)} is not JSON (undefined, a function or a symbol)`)
    if (json.length > this.#maxValueBytes / 3 && Buffer.byteLength(json) > this.#maxValueBytes) {
      throw new TenantryError('INVALID_OPTION', `The value for cache key ${JSON.stringify(key)} is larger than ${this.#maxValueBytes} bytes (services.cache.maxValueBytes)`)
    }
    return json
  }

  #count(tenant: string, what: keyof CacheStats, n = 1): void {
    this.#statsOf(tenant)[what] += n
  }

  /** The tenant's counts, created on first use (a call in flight across a purge counts into the old object: harmless). */
  #statsOf(tenant: string): CacheStats {
    let stats = this.#stats.get(tenant)
    if (!stats) this.#stats.set(tenant, (stats = emptyStats()))
    return stats
  }
}

function emptyStats(): CacheStats {
  return { hits: 0, misses: 0, writes: 0, deletes: 0, flushes: 0 }
}

const LONE_SURROGATE = /\p{Cs}/u

/** A key: a non-empty, well-formed string (a lone surrogate would reach Redis as U+FFFD and alias another key) of at most 1,024 code units. */
function checkKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > CACHE_MAX_KEY_LENGTH || LONE_SURROGATE.test(key)) {
    throw new TenantryError('INVALID_OPTION', `A cache key is a non-empty string of well-formed Unicode, at most ${CACHE_MAX_KEY_LENGTH} characters`)
  }
  return key
}

function ttlOf(options: CacheSetOptions): number {
  const ttl = options?.ttlMs
  if (ttl === undefined) return 0
  if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new TenantryError('INVALID_OPTION', `ttlMs must be a positive whole number of milliseconds, not ${String(ttl)}`)
  return ttl
}
