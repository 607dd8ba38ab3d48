import type { Redis } from 'ioredis'
import { TenantryError } from '../../errors.js'
import type { Logger } from '../../logger.js'
import type { CacheDriver, SweepStep } from './cache-driver.js'
import { wrongType } from './memory-driver.js'

/**
 * The cache on Redis (ioredis), shared by every process of the deployment.
 *
 * Key layout, with `P` the configured prefix (default `tenantry:`) and `T` the tenant id:
 * - `P{T}:g`: the tenant's current **generation**, a digit string;
 * - `P{T}:<generation>:<key>`: an entry, the caller's key as it is after the second colon;
 * - `P{T}:s`: where the background removal of old generations is (`<generation>:<cursor>`);
 * - `Psweep`: the set of tenants with old generations to remove.
 * A tenant id is `t` + 19 base-32 characters (no `{`, `}` or `:`), and a generation is digits
 * only, so the text up to an entry key's second colon after `}` names exactly one tenant and one
 * generation whatever the caller's key holds: a key can never reach another tenant's entries,
 * nor `g` or `s` (not digits), nor `Psweep` (no `{` after the prefix). The `{T}` hash tag keeps
 * a tenant's keys in one cluster slot.
 *
 * Every operation is one Lua script (EVALSHA): it reads the generation and touches the entry in
 * one round trip, atomically, so a flush by another process is seen by the very next call.
 * **Flushing a tenant** sets a new generation (from Redis' clock: never an old one again, even
 * if an evicting Redis dropped the generation key) and queues the tenant in `Psweep`: O(1) for
 * the caller. A timer in each process that uses the cache then removes the old generations'
 * keys with `SCAN … COUNT sweepBatch`, one step per tick, never in a request path. A SCAN walks
 * the whole keyspace whatever its MATCH, so one tenant's pass takes about (keys in Redis /
 * sweepBatch) ticks: raise `sweepBatch` on a large Redis. Until then the old entries only take
 * memory (they are unreachable), and their TTLs still apply.
 */

/** Resolves the entry key: `ARGV[1]` is `P{T}:`, `KEYS[1]` the generation key; a tenant's first call fixes its generation. */
const ENTRY = `
local function gen()
  local g = redis.call('GET', KEYS[1])
  if not g then
    local t = redis.call('TIME')
    g = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', KEYS[1], g)
  end
  return g
end
local base = ARGV[1] .. gen() .. ':'
`

const SCRIPTS = {
  tcGet: `${ENTRY} return redis.call('GET', base .. ARGV[2])`,
  tcSet: `${ENTRY}
if ARGV[4] ~= '0' then return redis.call('SET', base .. ARGV[2], ARGV[3], 'PX', ARGV[4]) end
return redis.call('SET', base .. ARGV[2], ARGV[3])`,
  tcDel: `${ENTRY} return redis.call('DEL', base .. ARGV[2])`,
  tcIncr: `${ENTRY}
local k = base .. ARGV[2]
local v = redis.call('INCRBY', k, ARGV[3])
if ARGV[4] ~= '0' and redis.call('PTTL', k) == -1 then redis.call('PEXPIRE', k, ARGV[4]) end
return v`,
  tcPush: `${ENTRY}
local k = base .. ARGV[2]
local n = redis.call('RPUSH', k, unpack(ARGV, 4))
if ARGV[3] ~= '0' and redis.call('PTTL', k) == -1 then redis.call('PEXPIRE', k, ARGV[3]) end
return n`,
  tcRange: `${ENTRY} return redis.call('LRANGE', base .. ARGV[2], ARGV[3], ARGV[4])`,
  tcMget: `${ENTRY}
local ks = {}
for i = 2, #ARGV do ks[i - 1] = base .. ARGV[i] end
return redis.call('MGET', unpack(ks))`,
  tcMset: `${ENTRY}
for i = 3, #ARGV, 2 do
  if ARGV[2] ~= '0' then redis.call('SET', base .. ARGV[i], ARGV[i + 1], 'PX', ARGV[2]) else redis.call('SET', base .. ARGV[i], ARGV[i + 1]) end
end
return #ARGV`,
  // KEYS: generation, sweep state, sweep set. ARGV: tenant id.
  tcFlush: `
local t = redis.call('TIME')
local g = t[1] .. string.format('%06d', tonumber(t[2]))
local old = redis.call('GET', KEYS[1])
if old == g then g = g .. '1' end
redis.call('SET', KEYS[1], g)
redis.call('SET', KEYS[2], g .. ':0')
redis.call('SADD', KEYS[3], ARGV[1])
return g`,
  // KEYS: sweep state, sweep set. ARGV: the state the step started from, the next state ('' when done), tenant id.
  tcSweepStep: `
local s = redis.call('GET', KEYS[1])
if (s or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1`,
} as const

type ScriptName = keyof typeof SCRIPTS
type Scripts = { [K in ScriptName]: (...args: Array<string | number>) => Promise<unknown> }

/** Values per script call in `push`, `getMany`, `setMany`: well under Lua's stack limit for `unpack`. */
const CHUNK = 1_000

export interface RedisCacheDriverOptions {
  url: string
  prefix: string
  sweepBatch: number
  logger: Logger
}

export class RedisCacheDriver implements CacheDriver {
  readonly name = 'redis' as const
  readonly #options: RedisCacheDriverOptions
  #client: Promise<Redis & Scripts> | undefined
  /** The client once connected: the hot path calls it without awaiting `#client` again. */
  #ready: (Redis & Scripts) | undefined
  #closed = false

  constructor(options: RedisCacheDriverOptions) {
    this.#options = options
  }

  /** The client, connected on first use (ioredis is imported then: a deployment without a Redis cache never loads it). */
  client(): Promise<Redis & Scripts> {
    if (this.#closed) return Promise.reject(new TenantryError('CLOSED', 'The cache is closed'))
    this.#client ??= import('ioredis').then(({ Redis }) => {
      const redis = new Redis(this.#options.url, { maxRetriesPerRequest: 2, enableAutoPipelining: true })
      redis.on('error', (err: Error) => this.#options.logger.warn({ err }, 'The Redis cache connection failed; ioredis reconnects'))
      for (const [name, lua] of Object.entries(SCRIPTS)) redis.defineCommand(name, { numberOfKeys: name === 'tcFlush' ? 3 : name === 'tcSweepStep' ? 2 : 1, lua })
      this.#ready = redis as Redis & Scripts
      return this.#ready
    })
    return this.#client
  }

  /** `P{T}:`: the start of every key of the tenant. */
  tenantBase(tenantId: string): string {
    return `${this.#options.prefix}{${tenantId}}:`
  }

  /** The tenant's generation key. */
  generationKey(tenantId: string): string {
    return `${this.tenantBase(tenantId)}g`
  }

  #sweepKey(tenantId: string): string {
    return `${this.tenantBase(tenantId)}s`
  }

  /** The set of tenants with old generations to remove. */
  get sweepSetKey(): string {
    return `${this.#options.prefix}sweep`
  }

  /**
   * Runs one script for the tenant. Written with one `then` rather than `async`/`await`: this is
   * every cache call's path, and each extra promise costs more once AsyncLocalStorage is on.
   */
  #run(script: ScriptName, tenantId: string, key: string | undefined, ...args: Array<string | number>): Promise<unknown> {
    const base = `${this.#options.prefix}{${tenantId}}:`
    const call = (redis: Redis & Scripts) =>
      key === undefined ? redis[script](`${base}g`, base, ...args) : redis[script](`${base}g`, base, key, ...args)
    const sent = this.#ready && !this.#closed ? call(this.#ready) : this.client().then(call)
    return sent.catch((error: unknown) => {
      throw translate(error, key)
    })
  }

  get(tenantId: string, key: string): Promise<string | undefined> {
    return this.#run('tcGet', tenantId, key).then(orUndefined)
  }

  set(tenantId: string, key: string, value: string, ttlMs: number): Promise<void> {
    return this.#run('tcSet', tenantId, key, value, ttlMs).then(nothing)
  }

  async delete(tenantId: string, key: string): Promise<boolean> {
    return Number(await this.#run('tcDel', tenantId, key)) > 0
  }

  async increment(tenantId: string, key: string, by: number, ttlMs: number): Promise<number> {
    return Number(await this.#run('tcIncr', tenantId, key, by, ttlMs))
  }

  async push(tenantId: string, key: string, values: readonly string[], ttlMs: number): Promise<number> {
    let length = 0
    for (let i = 0; i < values.length; i += CHUNK) length = Number(await this.#run('tcPush', tenantId, key, ttlMs, ...values.slice(i, i + CHUNK)))
    return length
  }

  async range(tenantId: string, key: string, start: number, stop: number): Promise<string[]> {
    return (await this.#run('tcRange', tenantId, key, start, stop)) as string[]
  }

  async getMany(tenantId: string, keys: readonly string[]): Promise<Array<string | undefined>> {
    const out: Array<string | undefined> = []
    for (let i = 0; i < keys.length; i += CHUNK) {
      const chunk = keys.slice(i, i + CHUNK)
      const values = (await this.#run('tcMget', tenantId, undefined, ...chunk)) as Array<string | null>
      for (const value of values) out.push(value ?? undefined)
    }
    return out
  }

  async setMany(tenantId: string, entries: ReadonlyArray<readonly [string, string]>, ttlMs: number): Promise<void> {
    for (let i = 0; i < entries.length; i += CHUNK / 2) {
      await this.#run('tcMset', tenantId, undefined, ttlMs, ...entries.slice(i, i + CHUNK / 2).flat())
    }
  }

  async flush(tenantId: string): Promise<void> {
    const redis = await this.client()
    await redis.tcFlush(this.generationKey(tenantId), this.#sweepKey(tenantId), this.sweepSetKey, tenantId)
  }

  /**
   * One step of the background removal: a tenant with old generations (any one; several
   * processes may sweep at once, which only repeats harmless deletes), one `SCAN` from where
   * the last step of that tenant stopped, and `UNLINK` of the keys of any generation but the
   * current one. A flush during a sweep restarts that tenant's sweep from the beginning, so no
   * generation is left behind.
   */
  async sweep(): Promise<SweepStep> {
    const redis = await this.client()
    const tenantId = await redis.srandmember(this.sweepSetKey)
    if (!tenantId) return { removed: 0, done: true }
    const [state, current] = await redis.mget(this.#sweepKey(tenantId), this.generationKey(tenantId))
    const cursor = state?.split(':')[1] ?? '0'
    const base = this.tenantBase(tenantId)
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${globEscape(base)}*`, 'COUNT', this.#options.sweepBatch)
    const stale = keys.filter((key) => {
      const rest = key.slice(base.length)
      const colon = rest.indexOf(':')
      const generation = colon > 0 ? rest.slice(0, colon) : ''
      return /^\d+$/.test(generation) && generation !== current
    })
    if (stale.length > 0) await redis.unlink(...stale)
    const done = next === '0'
    await redis.tcSweepStep(this.#sweepKey(tenantId), this.sweepSetKey, state ?? '', done ? '' : `${current ?? '0'}:${next}`, tenantId)
    return { tenantId, removed: stale.length, done }
  }

  /** Every key of the tenant, its generation and sweep state included; not in a request path. */
  async purge(tenantId: string): Promise<number> {
    const redis = await this.client()
    const pattern = `${globEscape(this.tenantBase(tenantId))}*`
    let cursor = '0'
    let removed = 0
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000)
      if (keys.length > 0) removed += await redis.unlink(...keys)
      cursor = next
    } while (cursor !== '0')
    await redis.srem(this.sweepSetKey, tenantId)
    return removed
  }

  async close(): Promise<void> {
    this.#closed = true
    const client = this.#client
    this.#client = undefined
    this.#ready = undefined
    if (!client) return
    const redis = await client.catch(() => undefined)
    await redis?.quit().catch(() => redis.disconnect())
  }
}

function nothing(): void {}

function orUndefined(value: unknown): string | undefined {
  return (value as string | null) ?? undefined
}

/** A Redis refusal in terms of the cache: a value used as a list (or the reverse), or a non-integer incremented. */
function translate(error: unknown, key: string | undefined): unknown {
  const message = (error as Error | null)?.message ?? ''
  const name = JSON.stringify(key ?? '')
  if (/WRONGTYPE/.test(message)) return wrongType(key ?? '')
  if (/not an integer|out of range|overflow/.test(message)) return new TenantryError('INVALID_OPTION', `Cache key ${name} does not hold an integer, or the increment would overflow`, { cause: error })
  return error
}

/** `pattern` with Redis glob characters taken literally. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}
