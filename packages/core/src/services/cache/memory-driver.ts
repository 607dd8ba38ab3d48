import { TenantryError } from '../../errors.js'
import type { CacheDriver, SweepStep } from './cache-driver.js'

type Entry = { kind: 'value'; value: string; expiresAt: number } | { kind: 'list'; items: string[]; expiresAt: number }

/** Entries the expiry sweep looks at per step: bounded work per tick. */
const SWEEP_BATCH = 1_000

/**
 * The cache in this process's memory: for development, tests and single-process apps (several
 * processes each have their own). One `Map` per tenant, keyed by the caller's key as it is, so
 * keys cannot collide across tenants whatever they hold. A flush drops the tenant's map (O(1));
 * the garbage collector is the background removal of its entries. Expired entries are dropped
 * when read, and by a bounded sweep.
 */
export class MemoryCacheDriver implements CacheDriver {
  readonly name = 'memory' as const
  readonly #tenants = new Map<string, Map<string, Entry>>()
  /** Where the expiry sweep resumes. */
  #sweepTenants: Iterator<[string, Map<string, Entry>]> | undefined

  async get<T>(tenantId: string, key: string, read: (value: string | null) => T): Promise<T> {
    return read(this.#value(tenantId, key) ?? null)
  }

  async set(tenantId: string, key: string, value: string, ttlMs: number): Promise<void> {
    this.#map(tenantId).set(key, { kind: 'value', value, expiresAt: expiry(ttlMs) })
  }

  async delete(tenantId: string, key: string): Promise<boolean> {
    const entry = this.#entry(tenantId, key)
    return entry !== undefined && this.#tenants.get(tenantId)!.delete(key)
  }

  async increment(tenantId: string, key: string, by: number, ttlMs: number): Promise<number> {
    const entry = this.#entry(tenantId, key)
    if (entry?.kind === 'list') throw wrongType(key)
    const current = entry ? Number(entry.value) : 0
    if (entry && !/^-?\d{1,16}$/.test(entry.value)) throw new TenantryError('INVALID_OPTION', `Cache key ${JSON.stringify(key)} does not hold an integer`)
    const next = current + by
    if (!Number.isSafeInteger(next)) throw new TenantryError('INVALID_OPTION', `Incrementing cache key ${JSON.stringify(key)} would overflow`)
    this.#map(tenantId).set(key, { kind: 'value', value: String(next), expiresAt: entry && entry.expiresAt !== 0 ? entry.expiresAt : expiry(ttlMs) })
    return next
  }

  async push(tenantId: string, key: string, values: readonly string[], ttlMs: number): Promise<number> {
    const entry = this.#entry(tenantId, key)
    if (entry?.kind === 'value') throw wrongType(key)
    const list = entry ?? { kind: 'list' as const, items: [], expiresAt: 0 }
    list.items.push(...values)
    if (list.expiresAt === 0) list.expiresAt = expiry(ttlMs)
    this.#map(tenantId).set(key, list)
    return list.items.length
  }

  async range(tenantId: string, key: string, start: number, stop: number): Promise<string[]> {
    const entry = this.#entry(tenantId, key)
    if (!entry) return []
    if (entry.kind !== 'list') throw wrongType(key)
    const n = entry.items.length
    const from = Math.max(0, start < 0 ? n + start : start)
    const to = Math.min(n - 1, stop < 0 ? n + stop : stop)
    return from > to ? [] : entry.items.slice(from, to + 1)
  }

  async getMany(tenantId: string, keys: readonly string[]): Promise<Array<string | undefined>> {
    return keys.map((key) => this.#value(tenantId, key))
  }

  async setMany(tenantId: string, entries: ReadonlyArray<readonly [string, string]>, ttlMs: number): Promise<void> {
    const map = this.#map(tenantId)
    for (const [key, value] of entries) map.set(key, { kind: 'value', value, expiresAt: expiry(ttlMs) })
  }

  async flush(tenantId: string): Promise<void> {
    this.#tenants.delete(tenantId)
  }

  /** Drops up to `SWEEP_BATCH` expired entries, resuming where the last step stopped. */
  async sweep(): Promise<SweepStep> {
    const now = Date.now()
    let removed = 0
    let seen = 0
    this.#sweepTenants ??= this.#tenants.entries()
    for (;;) {
      const next = this.#sweepTenants.next()
      if (next.done) {
        this.#sweepTenants = undefined
        return { removed, done: true }
      }
      const [tenantId, map] = next.value
      for (const [key, entry] of map) {
        seen++
        if (entry.expiresAt !== 0 && entry.expiresAt <= now) {
          map.delete(key)
          removed++
        }
      }
      if (map.size === 0 && this.#tenants.get(tenantId) === map) this.#tenants.delete(tenantId)
      if (seen >= SWEEP_BATCH) return { tenantId, removed, done: false }
    }
  }

  async purge(tenantId: string): Promise<number> {
    const size = this.#tenants.get(tenantId)?.size ?? 0
    this.#tenants.delete(tenantId)
    return size
  }

  async close(): Promise<void> {
    this.#tenants.clear()
  }

  #map(tenantId: string): Map<string, Entry> {
    let map = this.#tenants.get(tenantId)
    if (!map) this.#tenants.set(tenantId, (map = new Map()))
    return map
  }

  /** The live entry under `key`, dropping it when expired. */
  #entry(tenantId: string, key: string): Entry | undefined {
    const map = this.#tenants.get(tenantId)
    const entry = map?.get(key)
    if (entry && entry.expiresAt !== 0 && entry.expiresAt <= Date.now()) {
      map!.delete(key)
      return undefined
    }
    return entry
  }

  #value(tenantId: string, key: string): string | undefined {
    const entry = this.#entry(tenantId, key)
    if (entry?.kind === 'list') throw wrongType(key)
    return entry?.value
  }
}

function expiry(ttlMs: number): number {
  return ttlMs > 0 ? Date.now() + ttlMs : 0
}

/** A value read as a list or a list as a value: what Redis calls WRONGTYPE. */
export function wrongType(key: string): TenantryError {
  return new TenantryError('INVALID_OPTION', `Cache key ${JSON.stringify(key)} holds another kind of entry (a value, not a list, or the reverse)`)
}
