import { createHash } from 'node:crypto'
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
 * - `Psweep`: the set of tenants with old generations to remove;
 * - `Pgenerations`: the pub/sub channel on which flushes announce a tenant's new generation.
 * A tenant id is `t` + 19 base-32 characters (no `{`, `}` or `:`), and a generation is digits
 * only, so the text up to an entry key's second colon after `}` names exactly one tenant and one
 * generation whatever the caller's key holds: a key can never reach another tenant's entries,
 * nor `g` or `s` (not digits), nor `Psweep` (no `{` after the prefix). The `{T}` hash tag keeps
 * a tenant's keys in one cluster slot.
 *
 * **The hot path is a plain command** (`GET`, `SET`, `MGET`, …) on `P{T}:<generation>:<key>`,
 * with the generation held in this process: a Lua script per call cost Redis 1.3–1.7× a plain
 * `GET`/`SET`. The process learns a tenant's generation once (`GET`, or a small script that
 * creates it when absent) and keeps it, for at most `maxCachedTenants` tenants (least recently
 * used dropped first, so 100,000 tenants don't grow memory without limit). A call then costs what
 * the raw ioredis call costs plus one `then` (`get`) or nothing (`set`), one `Map` lookup, one
 * string concatenation (`P{T}:<generation>:` is built once per generation) and a flag set for the
 * LRU: approximate ("second chance"), so that a hit never reorders the `Map`.
 *
 * **Flushing a tenant** sets a new generation (from Redis' clock: never an old one again, even
 * if an evicting Redis dropped the generation key), queues the tenant in `Psweep` and PUBLISHes
 * `T:<generation>` on `Pgenerations`, all in one script: O(1) for the caller. Every process
 * SUBSCRIBEs to that channel on a connection of its own (`duplicate()`) and replaces the
 * generation it holds. So the **window**: the flushing process sees its flush at once; another
 * process sees it within the pub/sub latency (the time the message takes to reach it, well under
 * a millisecond on a LAN), and a call it makes in that window reads or writes the old,
 * unreachable generation. While the subscriber connection is down (messages may be lost), every
 * held generation is dropped and none is kept: each call then reads the generation first (two
 * round trips) until the subscription is back. A generation read that raced with a message or
 * a reconnect is used for its own call only, never kept.
 *
 * A timer in each process that uses the cache removes the old generations' keys with
 * `SCAN … COUNT sweepBatch`, one step per tick, never in a request path; the `UNLINK` is a script
 * that reads the current generation in the same step, so the sweep never removes the current
 * generation's keys, even when a flush lands during the step. A SCAN walks the whole keyspace
 * whatever its MATCH, so one tenant's pass takes about (keys in Redis / sweepBatch) ticks: raise
 * `sweepBatch` on a large Redis. Until then the old entries only take memory (they are
 * unreachable), and their TTLs still apply; an entry a lagging process wrote into an old
 * generation after its pass goes with the tenant's next flush, its TTL or a purge. Keep the
 * generation keys from eviction (`maxmemory-policy` `noeviction` or a `volatile-*` policy: they
 * have no TTL).
 */

/** A Lua script and its SHA1, for `EVALSHA`. */
export interface LuaScript {
  readonly lua: string
  readonly sha: string
}

/** The script with its SHA1 computed once (exported for the tests of `runScript`). */
export function luaScript(lua: string): LuaScript {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

/** The tenant's generation, created from Redis' clock when absent. KEYS: generation key. */
const GENERATION = `
local g = redis.call('GET', KEYS[1])
if not g then
  local t = redis.call('TIME')
  g = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('SET', KEYS[1], g)
end
return g`

const SCRIPTS = {
  tcGeneration: luaScript(GENERATION),
  // KEYS: the entry. ARGV: by, ttl ('0': none).
  tcIncr: luaScript(`
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '0' and redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`),
  // KEYS: the entry. ARGV: ttl ('0': none), values.
  tcPush: luaScript(`
local n = redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '0' and redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`),
  // KEYS: generation, sweep state, sweep set. ARGV: tenant id, channel.
  tcFlush: luaScript(`
local t = redis.call('TIME')
local g = t[1] .. string.format('%06d', tonumber(t[2]))
local old = redis.call('GET', KEYS[1])
if old == g then g = g .. '1' end
redis.call('SET', KEYS[1], g)
redis.call('SET', KEYS[2], g .. ':0')
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1] .. ':' .. g)
return g`),
  // KEYS: generation, then the candidate entries. ARGV: the length of \`P{T}:\`.
  // Removes the candidates of any generation but the one current now.
  tcSweepUnlink: luaScript(`
local current = redis.call('GET', KEYS[1]) or ''
local n = 0
for i = 2, #KEYS do
  local rest = string.sub(KEYS[i], tonumber(ARGV[1]) + 1)
  local gen = string.match(rest, '^(%d+):')
  if gen and gen ~= current then n = n + redis.call('UNLINK', KEYS[i]) end
end
return n`),
  // KEYS: sweep state, sweep set. ARGV: the state the step started from, the next state ('' when done), tenant id.
  tcSweepStep: luaScript(`
local s = redis.call('GET', KEYS[1])
if (s or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1`),
} as const

/**
 * Runs a script by its SHA1 (`EVALSHA`), and sends it whole (`EVAL`, which also loads it) when
 * Redis does not know it: first use, a restart, `SCRIPT FLUSH`. Not ioredis' `defineCommand`,
 * which does the same but makes ioredis copy every defined command onto each pipeline it
 * creates; with auto-pipelining that is one pipeline per batch of calls, and it cost the hot
 * path 0.3–0.9 µs per call (measured at 16 in flight) for scripts it never runs. It also keeps
 * this client configured exactly as a raw ioredis client, which the benchmark compares against.
 * `keys`: the script's KEYS, then its ARGV.
 */
export function runScript(redis: Redis, script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
  return redis.evalsha(script.sha, keys.length, ...keys, ...args).catch((error: unknown) => {
    if (!/NOSCRIPT/.test((error as Error | null)?.message ?? '')) throw error
    return redis.eval(script.lua, keys.length, ...keys, ...args)
  })
}

/** Values per command in `push`, `getMany`, `setMany`: well under Lua's stack limit for `unpack`. */
const CHUNK = 1_000

export interface RedisCacheDriverOptions {
  url: string
  prefix: string
  sweepBatch: number
  logger: Logger
  /** Tenants whose generation this process holds (LRU). @default 10000 */
  maxCachedTenants?: number
}

/** A generation this process holds for a tenant. */
interface Held {
  generation: string
  /** `P{T}:<generation>:`, built once: a call only appends its key. */
  base: string
  /** Called since the LRU last passed over it (see `#evictOne`). */
  used: boolean
}

/** A generation being read: `stale` once a flush message or a reconnect came in meanwhile. */
interface Learning {
  promise: Promise<string>
  stale: boolean
}

export class RedisCacheDriver implements CacheDriver {
  readonly name = 'redis' as const
  readonly #options: RedisCacheDriverOptions
  readonly #maxCachedTenants: number
  #client: Promise<Redis> | undefined
  /** The client once connected (until closed): the hot path calls it without awaiting `#client` again. */
  #ready: Redis | undefined
  #subscriber: Redis | undefined
  /** Whether the subscriber is subscribed now: only then are generations kept. */
  #subscribed = false
  /** Bumped when the subscriber drops or comes back: a read started before is not kept. */
  #epoch = 0
  /** Tenant id → generation, oldest first (a `Map` keeps insertion order; see `#evictOne`). */
  readonly #generations = new Map<string, Held>()
  readonly #learning = new Map<string, Learning>()
  #subscriberId: number | undefined
  #closed = false

  constructor(options: RedisCacheDriverOptions) {
    this.#options = options
    this.#maxCachedTenants = options.maxCachedTenants ?? 10_000
  }

  /** The client, connected on first use (ioredis is imported then: a deployment without a Redis cache never loads it). */
  client(): Promise<Redis> {
    if (this.#closed) return Promise.reject(new TenantryError('CLOSED', 'The cache is closed'))
    this.#client ??= import('ioredis').then(({ Redis }) => {
      // Auto-pipelining: the commands of calls made in the same tick go out in one write.
      const redis = new Redis(this.#options.url, { maxRetriesPerRequest: 2, enableAutoPipelining: true })
      redis.on('error', (err: Error) => this.#options.logger.warn({ err }, 'The Redis cache connection failed; ioredis reconnects'))
      this.#subscribe(redis)
      this.#ready = redis
      return redis
    })
    return this.#client
  }

  /** The pub/sub channel of flushes. */
  get channel(): string {
    return `${this.#options.prefix}generations`
  }

  /** How many tenants' generations this process holds now (at most `maxCachedTenants`). */
  get cachedTenants(): number {
    return this.#generations.size
  }

  /** Whether the generation of the tenant is held in this process (for tests and operators). */
  holdsGeneration(tenantId: string): boolean {
    return this.#generations.has(tenantId)
  }

  /** Whether flush messages reach this process now. */
  get subscribed(): boolean {
    return this.#subscribed
  }

  /** The Redis client id of the subscriber connection (`CLIENT KILL ID`), once it has connected. */
  get subscriberId(): number | undefined {
    return this.#subscriberId
  }

  /**
   * Subscribes on a connection of its own, again after each reconnect (ioredis' own
   * re-subscription is off: the held generations must be dropped first, and kept again only
   * once the subscription is confirmed).
   */
  #subscribe(redis: Redis): void {
    const sub = redis.duplicate({ autoResubscribe: false, enableAutoPipelining: false, maxRetriesPerRequest: null, lazyConnect: false })
    this.#subscriber = sub
    sub.on('error', (err: Error) => this.#options.logger.warn({ err }, 'The Redis cache subscriber connection failed; ioredis reconnects'))
    sub.on('close', () => this.#forgetAll())
    sub.on('ready', () => {
      this.#forgetAll()
      void (async () => {
        try {
          this.#subscriberId = Number(await sub.client('ID'))
          await sub.subscribe(this.channel)
          if (sub.status !== 'ready' || this.#closed) return
          // Anything read before now may predate a flush whose message was lost.
          this.#forgetAll()
          this.#subscribed = true
        } catch (err) {
          this.#options.logger.warn({ err }, 'The Redis cache could not subscribe to flushes; generations are read on every call until it does')
        }
      })()
    })
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return
      const colon = message.indexOf(':')
      const tenantId = message.slice(0, colon)
      const learning = this.#learning.get(tenantId)
      if (learning) learning.stale = true
      // Replaced, not dropped: messages come in the order Redis ran the flushes.
      this.#replace(tenantId, message.slice(colon + 1))
    })
  }

  /** Drops every held generation and stops keeping new ones until the subscription is back. */
  #forgetAll(): void {
    this.#subscribed = false
    this.#epoch++
    this.#generations.clear()
    for (const learning of this.#learning.values()) learning.stale = true
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

  /** Keeps the tenant's generation within the bound, making room first (so the new one stays). */
  #keep(tenantId: string, generation: string): void {
    if (this.#replace(tenantId, generation)) return
    if (this.#generations.size >= this.#maxCachedTenants) this.#evictOne()
    this.#generations.set(tenantId, { generation, base: `${this.tenantBase(tenantId)}${generation}:`, used: false })
  }

  /** Replaces the generation held for the tenant, if one is; whether one was. */
  #replace(tenantId: string, generation: string): boolean {
    const held = this.#generations.get(tenantId)
    if (!held) return false
    if (held.generation !== generation) {
      held.generation = generation
      held.base = `${this.tenantBase(tenantId)}${generation}:`
    }
    return true
  }

  /**
   * Drops one tenant's generation: the oldest not called since the last pass over it ("second
   * chance", or CLOCK, an approximate LRU). A called one is marked unused and moved to the newest
   * end instead. A hit then only sets a flag, where an exact LRU deletes and re-inserts the
   * `Map` entry on every call; each move here pays for a flag a call set, so it is O(1)
   * amortized, and it ends within one pass (moved entries come back unmarked).
   */
  #evictOne(): void {
    for (const [tenantId, held] of this.#generations) {
      this.#generations.delete(tenantId)
      if (!held.used) return
      held.used = false
      this.#generations.set(tenantId, held)
    }
  }

  /** The generation held for the tenant while connected, marked as used: the hot path's one lookup. */
  #held(tenantId: string): Held | undefined {
    if (this.#ready === undefined) return undefined
    const held = this.#generations.get(tenantId)
    if (held !== undefined) held.used = true
    return held
  }

  /** Reads (or creates) the tenant's generation; kept only if no flush message or reconnect came in meanwhile. */
  #learn(redis: Redis, tenantId: string): Promise<string> {
    const pending = this.#learning.get(tenantId)
    if (pending && !pending.stale) return pending.promise
    const epoch = this.#epoch
    // Assigned before either callback runs (they never run synchronously).
    let learning: Learning
    const promise = (runScript(redis, SCRIPTS.tcGeneration, [this.generationKey(tenantId)], []) as Promise<string>).then(
      (generation) => {
        if (this.#learning.get(tenantId) === learning) this.#learning.delete(tenantId)
        if (!learning.stale && this.#subscribed && epoch === this.#epoch) this.#keep(tenantId, generation)
        return generation
      },
      (error: unknown) => {
        if (this.#learning.get(tenantId) === learning) this.#learning.delete(tenantId)
        throw error
      },
    )
    learning = { promise, stale: false }
    this.#learning.set(tenantId, learning)
    return promise
  }

  /**
   * Runs `command` on `P{T}:<generation>:` and returns its reply as it is: at once with the
   * generation held and the client connected (the plain command alone), else once both are.
   */
  #send<R>(tenantId: string, command: (redis: Redis, base: string) => Promise<R>): Promise<R> {
    const held = this.#held(tenantId)
    if (held !== undefined) return command(this.#ready!, held.base)
    return this.client().then((redis) => this.#learn(redis, tenantId).then((g) => command(redis, `${this.tenantBase(tenantId)}${g}:`)))
  }

  /**
   * `#send`, with the reply handed to `map` and a refusal translated, in one `then`: each extra
   * promise costs more once AsyncLocalStorage is on.
   */
  #run<R, T>(tenantId: string, key: string | undefined, command: (redis: Redis, base: string) => Promise<R>, map: (reply: R) => T): Promise<T> {
    return this.#send(tenantId, command).then(map, (error: unknown) => {
      throw translate(error, key)
    })
  }

  // `get` and `set` are `#run` and `#send` written out for the held case: no closure per call.

  get<T>(tenantId: string, key: string, read: (value: string | null) => T): Promise<T> {
    const held = this.#held(tenantId)
    const sent = held !== undefined ? this.#ready!.get(held.base + key) : this.#send(tenantId, (redis, base) => redis.get(base + key))
    return sent.then(read, (error: unknown) => {
      throw translate(error, key)
    })
  }

  /** The `SET` reply promise as it is: `SET` replaces whatever the key held, so Redis has no refusal of its own to translate. */
  set(tenantId: string, key: string, value: string, ttlMs: number): Promise<unknown> {
    const held = this.#held(tenantId)
    if (held === undefined) return this.#send(tenantId, (redis, base) => write(redis, base + key, value, ttlMs))
    return write(this.#ready!, held.base + key, value, ttlMs)
  }

  delete(tenantId: string, key: string): Promise<boolean> {
    return this.#run(tenantId, key, (redis, base) => redis.del(base + key), (n) => n > 0)
  }

  increment(tenantId: string, key: string, by: number, ttlMs: number): Promise<number> {
    return this.#run(tenantId, key, (redis, base) => (ttlMs > 0 ? runScript(redis, SCRIPTS.tcIncr, [base + key], [by, ttlMs]) : redis.incrby(base + key, by)), Number)
  }

  async push(tenantId: string, key: string, values: readonly string[], ttlMs: number): Promise<number> {
    let length = 0
    for (let i = 0; i < values.length; i += CHUNK) {
      const chunk = values.slice(i, i + CHUNK)
      length = await this.#run(tenantId, key, (redis, base) => runScript(redis, SCRIPTS.tcPush, [base + key], [ttlMs, ...chunk]), Number)
    }
    return length
  }

  range(tenantId: string, key: string, start: number, stop: number): Promise<string[]> {
    return this.#run(tenantId, key, (redis, base) => redis.lrange(base + key, start, stop), same)
  }

  async getMany(tenantId: string, keys: readonly string[]): Promise<Array<string | undefined>> {
    const out: Array<string | undefined> = []
    for (let i = 0; i < keys.length; i += CHUNK) {
      const chunk = keys.slice(i, i + CHUNK)
      const values = await this.#run(tenantId, undefined, (redis, base) => redis.mget(chunk.map((k) => base + k)), same)
      for (const value of values) out.push(value ?? undefined)
    }
    return out
  }

  async setMany(tenantId: string, entries: ReadonlyArray<readonly [string, string]>, ttlMs: number): Promise<void> {
    for (let i = 0; i < entries.length; i += CHUNK / 2) {
      const chunk = entries.slice(i, i + CHUNK / 2)
      await this.#run(tenantId, undefined, async (redis, base) => {
        // One MULTI: the chunk is written whole, in one round trip.
        const multi = redis.multi()
        for (const [key, value] of chunk) {
          if (ttlMs > 0) multi.set(base + key, value, 'PX', ttlMs)
          else multi.set(base + key, value)
        }
        const results = await multi.exec()
        const failed = results?.find(([error]) => error)
        if (failed) throw failed[0]
      }, nothing)
    }
  }

  async flush(tenantId: string): Promise<void> {
    const redis = await this.client()
    const generation = (await runScript(redis, SCRIPTS.tcFlush, [this.generationKey(tenantId), this.#sweepKey(tenantId), this.sweepSetKey], [tenantId, this.channel])) as string
    // This process sees its own flush at once, whatever the subscriber's state.
    const learning = this.#learning.get(tenantId)
    if (learning) learning.stale = true
    this.#replace(tenantId, generation)
  }

  /**
   * One step of the background removal: a tenant with old generations (any one; several
   * processes may sweep at once, which only repeats harmless deletes), one `SCAN` from where
   * the last step of that tenant stopped, and `UNLINK` of the keys of any generation but the
   * current one, decided in Redis at the time of the `UNLINK` (a script). A flush during a sweep
   * restarts that tenant's sweep from the beginning, so no generation is left behind.
   */
  async sweep(): Promise<SweepStep> {
    const redis = await this.client()
    const tenantId = await redis.srandmember(this.sweepSetKey)
    if (!tenantId) return { removed: 0, done: true }
    const [state, current] = await redis.mget(this.#sweepKey(tenantId), this.generationKey(tenantId))
    const cursor = state?.split(':')[1] ?? '0'
    const base = this.tenantBase(tenantId)
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${globEscape(base)}*`, 'COUNT', this.#options.sweepBatch)
    const candidates = keys.filter((key) => {
      const rest = key.slice(base.length)
      const colon = rest.indexOf(':')
      const generation = colon > 0 ? rest.slice(0, colon) : ''
      return /^\d+$/.test(generation) && generation !== current
    })
    const removed = candidates.length > 0 ? Number(await runScript(redis, SCRIPTS.tcSweepUnlink, [this.generationKey(tenantId), ...candidates], [base.length])) : 0
    const done = next === '0'
    await runScript(redis, SCRIPTS.tcSweepStep, [this.#sweepKey(tenantId), this.sweepSetKey], [state ?? '', done ? '' : `${current ?? '0'}:${next}`, tenantId])
    return { tenantId, removed, done }
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
    this.#generations.delete(tenantId)
    const learning = this.#learning.get(tenantId)
    if (learning) learning.stale = true
    return removed
  }

  async close(): Promise<void> {
    this.#closed = true
    const client = this.#client
    const subscriber = this.#subscriber
    this.#client = undefined
    this.#ready = undefined
    this.#subscriber = undefined
    this.#generations.clear()
    this.#subscribed = false
    await subscriber?.quit().catch(() => subscriber.disconnect())
    if (!client) return
    const redis = await client.catch(() => undefined)
    await redis?.quit().catch(() => redis.disconnect())
  }
}

function nothing(): void {}

function same<T>(value: T): T {
  return value
}

/** `SET`, with `PX` when there is a TTL. */
function write(redis: Redis, key: string, value: string, ttlMs: number): Promise<unknown> {
  return ttlMs > 0 ? redis.set(key, value, 'PX', ttlMs) : redis.set(key, value)
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
