import { createHash } from 'node:crypto'
import type { TokenRecord, Tenantry } from 'tenantry'

/** `last_used_at` is written at most once a minute per token (core's `LAST_USED_GRANULARITY_MS`). */
const LAST_USED_GRANULARITY_MS = 60_000

export interface VerifiedTokenCacheOptions {
  /**
   * How long a verified token is trusted without asking the catalog again. It bounds how late a
   * change nobody announced (a revocation by another process on a SQLite catalog) takes
   * effect; announced changes drop the entry at once. @default 1000
   */
  ttlMs?: number
  /** Entries kept at most; the oldest go first. @default 10000 */
  maxEntries?: number
  /** @default Date.now */
  now?: () => number
}

interface Entry {
  record: TokenRecord
  /** When the entry stops being trusted: the TTL, or sooner the token's expiry or its next `last_used_at` write. */
  until: number
}

/** The catalog's change feed, as far as this cache needs it (`tenantry.changes`). */
interface ChangeSource {
  subscribe(listener: (change: { kind: string; tokenId?: string; tenantId?: string }) => void): () => void
}

/**
 * Tokens that `tenantry.tokens.verify` accepted a moment ago, so a burst of requests with one
 * token checks the catalog once, not once per request. Keyed by the SHA-256 of the whole
 * token (id and secret), so only the exact token that was verified can hit; a wrong secret
 * misses and is judged by `verify` as before. Only valid tokens are kept: a refusal is never
 * cached, and a new token works at once.
 *
 * Invalidation: `invalidate(tokenId)` on revocation (the server's revoke paths call it),
 * `invalidateTenant(tenantId)` when a tenant changes, `clear()` when changes may have been
 * missed. The catalog's change feed drives all three when it exists, which covers revocations
 * by other processes on a Postgres catalog; the TTL bounds anything else.
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, Entry>()
  readonly #ttlMs: number
  readonly #maxEntries: number
  readonly #now: () => number
  /** Bumped by every invalidation: a `verify` that was under way meanwhile may have read the old row, so its answer is not kept. */
  #generation = 0

  constructor(options: VerifiedTokenCacheOptions = {}) {
    this.#ttlMs = options.ttlMs ?? 1000
    this.#maxEntries = options.maxEntries ?? 10_000
    this.#now = options.now ?? Date.now
  }

  /** The record of `token` if it is valid: from the cache, else from `verify` (and then cached). */
  async verify(tenantry: Tenantry, token: string): Promise<TokenRecord | undefined> {
    const key = createHash('sha256').update(token).digest('base64')
    const now = this.#now()
    const hit = this.#entries.get(key)
    if (hit) {
      if (now < hit.until) return hit.record
      this.#entries.delete(key)
    }
    const generation = this.#generation
    const record = await tenantry.tokens.verify(token)
    if (!record || generation !== this.#generation) return record
    const expires = record.expiresAt === null ? Infinity : Date.parse(record.expiresAt)
    // `verify` writes `last_used_at` when it is a minute old: the entry must not hide that.
    const lastUseDue = record.lastUsedAt === null ? now : Date.parse(record.lastUsedAt) + LAST_USED_GRANULARITY_MS
    if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!)
    this.#entries.set(key, { record, until: Math.min(now + this.#ttlMs, expires, lastUseDue) })
    return record
  }

  /** Drops token `tokenId` (revoked, or its expiry changed). */
  invalidate(tokenId: string): void {
    this.#generation++
    for (const [key, entry] of this.#entries) if (entry.record.id === tokenId) this.#entries.delete(key)
  }

  /** Drops every token of tenant `tenantId` (suspended, deleted, moved). */
  invalidateTenant(tenantId: string): void {
    this.#generation++
    for (const [key, entry] of this.#entries) if (entry.record.tenantId === tenantId) this.#entries.delete(key)
  }

  clear(): void {
    this.#generation++
    this.#entries.clear()
  }

  get size(): number {
    return this.#entries.size
  }

  /** Follows the catalog's change feed; returns the function that stops following it. */
  follow(changes: ChangeSource): () => void {
    return changes.subscribe((change) => {
      if (change.kind === 'token' && change.tokenId) this.invalidate(change.tokenId)
      else if (change.kind === 'tenant' && change.tenantId) this.invalidateTenant(change.tenantId)
      else if (change.kind === 'reset') this.clear()
    })
  }
}

const caches = new WeakMap<Tenantry, VerifiedTokenCache>()

/**
 * The verified-token cache of `tenantry`: one per Tenantry instance, shared by every app that
 * serves it, following the catalog's change feed when the catalog has one.
 */
export function verifiedTokens(tenantry: Tenantry): VerifiedTokenCache {
  let cache = caches.get(tenantry)
  if (!cache) {
    cache = new VerifiedTokenCache()
    // The catalog's change feed (`tenantry.changes`): revocations and tenant changes by this
    // process, and on a Postgres catalog by every other node too. Without one, the TTL bounds them.
    cache.follow(tenantry.changes)
    caches.set(tenantry, cache)
  }
  return cache
}
