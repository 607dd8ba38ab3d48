import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createTenantry, type Tenantry } from '../../index.js'
import { findRedis, tempDir } from '../../testing/index.js'
import type { CacheConfig } from '../services-config.js'
import { SILENT_LOGGER } from '../../logger.js'
import { luaScript, RedisCacheDriver, runScript } from './redis-driver.js'

// Issue 12: one conformance suite for `tenantry.cache`, run against every driver with the real
// store (this process's memory; Redis at TENANTRY_TEST_REDIS_URL). Under CI a missing Redis fails.

const redis = await findRedis()
if ('skip' in redis) console.warn(`skipping the Redis cache driver: ${redis.skip}`)

/** A prefix of this run alone, so parallel runs and other tests never see each other's keys. */
const prefix = `tenantry-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}:`

const drivers: Array<{ name: string; config: CacheConfig; skip?: string }> = [
  { name: 'memory', config: { driver: 'memory', sweepIntervalMs: 20 } },
  'url' in redis
    ? { name: 'redis', config: { driver: 'redis', url: redis.url, prefix, sweepIntervalMs: 20, sweepBatch: 25 } }
    : { name: 'redis', config: { driver: 'memory' }, skip: redis.skip },
]

/** Every key of the store whose name starts with `start` (Redis only). */
async function redisKeys(client: Redis, start: string): Promise<string[]> {
  const out: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${start.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`, 'COUNT', 1000)
    out.push(...keys)
    cursor = next
  } while (cursor !== '0')
  return out.sort()
}

/** Keys a hostile or careless tenant might pick to reach another tenant's entries or the driver's own keys. */
function hostileKeys(otherId: string): string[] {
  return ['x', `}:0:x`, `{${otherId}}:g`, `${prefix}{${otherId}}:1:x`, `../${otherId}/x`, '*', 'a:b:c', 'g', 's', '0:x', 'ключ', '🙂', ' ', 'x'.repeat(1024)]
}

/** A driver's `read`: the value as it is, `undefined` when absent. */
const orUndefined = (value: string | null) => value ?? undefined

for (const driver of drivers) {
  describe.skipIf(driver.skip !== undefined)(`tenantry.cache on ${driver.name}`, () => {
    const home = tempDir()
    let tenantry: Tenantry
    let raw: Redis | undefined
    let acme: string
    let beta: string
    const as = <T>(slug: string, fn: () => Promise<T> | T) => tenantry.withTenant(slug, fn)

    beforeAll(async () => {
      tenantry = await createTenantry({ home: home.path, services: { cache: driver.config } })
      acme = (await tenantry.createTenant({ slug: 'acme' })).id
      beta = (await tenantry.createTenant({ slug: 'beta' })).id
      if (driver.config.driver === 'redis') raw = new Redis(driver.config.url)
    })
    afterAll(async () => {
      if (raw) {
        const left = await redisKeys(raw, prefix)
        if (left.length) await raw.unlink(...left)
        raw.disconnect()
      }
      await tenantry?.close()
      home.cleanup()
    })

    it('outside withTenant every call is NO_TENANT and touches nothing', async () => {
      const cache = tenantry.cache
      const calls: Array<() => Promise<unknown>> = [
        () => cache.get('k'),
        () => cache.set('k', 1),
        () => cache.delete('k'),
        () => cache.increment('k'),
        () => cache.push('k', [1]),
        () => cache.range('k'),
        () => cache.getMany(['k']),
        () => cache.setMany({ k: 1 }),
        () => cache.flush(),
        async () => cache.stats(),
      ]
      for (const call of calls) await expect(call()).rejects.toMatchObject({ code: 'NO_TENANT' })
      if (raw) expect(await redisKeys(raw, prefix)).toEqual([])
    })

    it('get, set, delete, with JSON values', async () => {
      await as('acme', async () => {
        expect(await tenantry.cache.get('profile')).toBeUndefined()
        await tenantry.cache.set('profile', { name: 'Acme', tags: ['a', 'b'], n: 1.5, none: null })
        expect(await tenantry.cache.get('profile')).toEqual({ name: 'Acme', tags: ['a', 'b'], n: 1.5, none: null })
        await tenantry.cache.set('profile', 'replaced')
        expect(await tenantry.cache.get('profile')).toBe('replaced')
        expect(await tenantry.cache.delete('profile')).toBe(true)
        expect(await tenantry.cache.delete('profile')).toBe(false)
        expect(await tenantry.cache.get('profile')).toBeUndefined()
      })
    })

    it('an entry with a TTL expires; one without stays', async () => {
      await as('acme', async () => {
        await tenantry.cache.set('short', 1, { ttlMs: 30 })
        await tenantry.cache.set('long', 2)
        await vi.waitFor(async () => expect(await tenantry.cache.get('short')).toBeUndefined(), { timeout: 5_000, interval: 20 })
        expect(await tenantry.cache.get('long')).toBe(2)
        if (raw) expect(await raw.pttl((await redisKeys(raw, `${prefix}{${acme}}:`)).find((k) => k.endsWith(':long'))!)).toBe(-1)
      })
    })

    it('increment counts, with a TTL set once; a value that is not an integer is refused', async () => {
      await as('acme', async () => {
        expect(await tenantry.cache.increment('views')).toBe(1)
        expect(await tenantry.cache.increment('views', 41)).toBe(42)
        expect(await tenantry.cache.increment('views', -2)).toBe(40)
        expect(await tenantry.cache.get('views')).toBe(40)
        expect(await tenantry.cache.increment('hits', 1, { ttlMs: 60_000 })).toBe(1)
        if (raw) {
          const key = (await redisKeys(raw, `${prefix}{${acme}}:`)).find((k) => k.endsWith(':hits'))!
          expect(await raw.pttl(key)).toBeGreaterThan(0)
        }
        await tenantry.cache.set('name', 'acme')
        await expect(tenantry.cache.increment('name')).rejects.toMatchObject({ code: 'INVALID_OPTION' })
        await expect(tenantry.cache.increment('views', 1.5)).rejects.toMatchObject({ code: 'INVALID_OPTION' })
      })
    })

    it('lists: push appends, range reads like LRANGE; a value is not a list', async () => {
      await as('acme', async () => {
        expect(await tenantry.cache.push('events', [{ type: 'a' }, { type: 'b' }])).toBe(2)
        expect(await tenantry.cache.push('events', ['c'])).toBe(3)
        expect(await tenantry.cache.range('events')).toEqual([{ type: 'a' }, { type: 'b' }, 'c'])
        expect(await tenantry.cache.range('events', 1, 1)).toEqual([{ type: 'b' }])
        expect(await tenantry.cache.range('events', -2)).toEqual([{ type: 'b' }, 'c'])
        expect(await tenantry.cache.range('events', 5, 9)).toEqual([])
        expect(await tenantry.cache.range('nothing')).toEqual([])
        const many = Array.from({ length: 2_500 }, (_, i) => i)
        expect(await tenantry.cache.push('big', many)).toBe(2_500)
        expect(await tenantry.cache.range('big', -1)).toEqual([2_499])
        await expect(tenantry.cache.get('events')).rejects.toMatchObject({ code: 'INVALID_OPTION' })
        await expect(tenantry.cache.push('name', ['x'])).rejects.toMatchObject({ code: 'INVALID_OPTION' })
        await expect(tenantry.cache.push('events', [])).rejects.toMatchObject({ code: 'INVALID_OPTION' })
      })
    })

    it('getMany and setMany in batches, in order, with gaps as undefined', async () => {
      await as('acme', async () => {
        await tenantry.cache.setMany({ m1: 1, m2: { two: 2 } })
        await tenantry.cache.setMany([['m3', 'three']], { ttlMs: 60_000 })
        expect(await tenantry.cache.getMany(['m1', 'missing', 'm2', 'm3'])).toEqual([1, undefined, { two: 2 }, 'three'])
        expect(await tenantry.cache.getMany([])).toEqual([])
        const entries = Array.from({ length: 1_234 }, (_, i) => [`bulk:${i}`, i] as const)
        await tenantry.cache.setMany(entries)
        const values = await tenantry.cache.getMany(entries.map(([k]) => k))
        expect(values).toEqual(entries.map(([, v]) => v))
      })
    })

    it('the same keys in two tenants stay apart, whatever the keys hold', async () => {
      const keysA = hostileKeys(beta)
      const keysB = hostileKeys(acme)
      await as('acme', () => tenantry.cache.setMany(keysA.map((k) => [k, `acme:${k}`] as const)))
      await as('beta', () => tenantry.cache.setMany(keysB.map((k) => [k, `beta:${k}`] as const)))
      expect(await as('acme', () => tenantry.cache.getMany(keysA))).toEqual(keysA.map((k) => `acme:${k}`))
      expect(await as('beta', () => tenantry.cache.getMany(keysB))).toEqual(keysB.map((k) => `beta:${k}`))
      // Beta's keys naming acme's are just keys of beta's: nothing of acme's is readable through them.
      expect(await as('beta', () => tenantry.cache.get(`${prefix}{${acme}}:1:x`))).toBe(`beta:${prefix}{${acme}}:1:x`)
      expect(await as('beta', () => tenantry.cache.get('profile'))).toBeUndefined()
      if (raw) {
        // In Redis, every key written is under its own tenant's base, and nothing else was written.
        const all = await redisKeys(raw, prefix)
        for (const key of all) expect(key.startsWith(`${prefix}{${acme}}:`) || key.startsWith(`${prefix}{${beta}}:`), key).toBe(true)
        const betaKeys = all.filter((k) => k.startsWith(`${prefix}{${beta}}:`))
        expect(betaKeys.length).toBe(keysB.length + 1) // its entries and its generation
      }
    })

    it('refuses bad input with INVALID_OPTION and stores nothing', async () => {
      await as('acme', async () => {
        const bad: Array<() => Promise<unknown>> = [
          () => tenantry.cache.set('', 1),
          () => tenantry.cache.set('x'.repeat(1025), 1),
          () => tenantry.cache.set('\ud800', 1),
          () => tenantry.cache.set(42 as unknown as string, 1),
          () => tenantry.cache.set('u', undefined),
          () => tenantry.cache.set('f', () => 1),
          () => tenantry.cache.set('t', 1, { ttlMs: 0 }),
          () => tenantry.cache.set('t', 1, { ttlMs: -5 }),
          () => tenantry.cache.set('t', 1, { ttlMs: 1.5 }),
          () => tenantry.cache.set('big', 'x'.repeat(1024 * 1024 + 1)),
          () => tenantry.cache.getMany(['ok', '']),
          () => tenantry.cache.setMany([['ok', 1], ['', 2]]),
          () => tenantry.cache.setMany(null as unknown as Record<string, unknown>),
          () => tenantry.cache.range('events', 0.5),
        ]
        for (const call of bad) await expect(call()).rejects.toMatchObject({ code: 'INVALID_OPTION' })
        expect(await tenantry.cache.getMany(['u', 'f', 't', 'ok'])).toEqual([undefined, undefined, undefined, undefined])
      })
    })

    it('counts hits and misses per tenant', async () => {
      const before = await as('beta', () => tenantry.cache.stats())
      await as('beta', async () => {
        await tenantry.cache.get('x')
        await tenantry.cache.get('absent')
        await tenantry.cache.getMany(['x', 'absent', 'absent2'])
      })
      const after = await as('beta', () => tenantry.cache.stats())
      expect(after.hits - before.hits).toBe(2)
      expect(after.misses - before.misses).toBe(3)
      const acmeStats = await as('acme', () => tenantry.cache.stats())
      expect(acmeStats.hits).toBeGreaterThan(0)
      expect(acmeStats).not.toEqual(after)
    })

    it("flushing one tenant empties its cache at once and leaves the other's", async () => {
      await as('acme', () => tenantry.cache.set('before-flush', 1))
      await as('acme', () => tenantry.cache.flush())
      expect(await as('acme', () => tenantry.cache.getMany(['before-flush', 'x', 'views', 'bulk:7']))).toEqual([undefined, undefined, undefined, undefined])
      expect(await as('acme', () => tenantry.cache.range('events'))).toEqual([])
      expect(await as('beta', () => tenantry.cache.get('x'))).toBe('beta:x')
      // The tenant writes on as usual after a flush.
      await as('acme', () => tenantry.cache.set('after-flush', 2))
      expect(await as('acme', () => tenantry.cache.get('after-flush'))).toBe(2)
      expect((await as('acme', () => tenantry.cache.stats())).flushes).toBe(1)
    })

    if (driver.config.driver === 'redis') {
      it("the flushed generation's keys are removed in the background, and only those", async () => {
        const client = raw!
        const base = `${prefix}{${acme}}:`
        const current = await client.get(`${base}g`)
        const entriesOf = async (gen: 'old' | 'current') =>
          (await redisKeys(client, base)).filter((k) => /^\d+:/.test(k.slice(base.length)) && (k.slice(base.length).startsWith(`${current}:`) === (gen === 'current')))
        // The sweep timer (every 20 ms here) works through acme's old generation a SCAN step at a time.
        await vi.waitFor(async () => expect(await entriesOf('old')).toEqual([]), { timeout: 20_000, interval: 50 })
        expect((await entriesOf('current')).map((k) => k.slice(base.length + current!.length + 1))).toEqual(['after-flush'])
        expect(await client.sismember(`${prefix}sweep`, acme)).toBe(0)
        // Beta was never flushed: all its keys are there.
        expect((await redisKeys(client, `${prefix}{${beta}}:`)).length).toBe(hostileKeys(acme).length + 1)
      })

      it('a flush during a sweep restarts it: no generation is left behind', async () => {
        const driverOf = tenantry.cache.driver as RedisCacheDriver
        const base = driverOf.tenantBase(beta)
        const keys = Array.from({ length: 300 }, (_, i) => [`s:${i}`, i] as const)
        await as('beta', () => tenantry.cache.setMany(keys))
        await as('beta', () => tenantry.cache.flush())
        await as('beta', () => tenantry.cache.setMany(keys))
        await as('beta', () => tenantry.cache.flush())
        await as('beta', () => tenantry.cache.set('kept', true))
        const current = await raw!.get(`${base}g`)
        await vi.waitFor(
          async () => {
            const entries = (await redisKeys(raw!, base)).filter((k) => /^\d+:/.test(k.slice(base.length)))
            expect(entries).toEqual([`${base}${current}:kept`])
          },
          { timeout: 20_000, interval: 50 },
        )
      })
    }

    it("purging a tenant removes all its cache entries, says so in the audit log, and leaves the other's", async () => {
      await as('acme', () => tenantry.cache.setMany({ p1: 1, p2: 2 }))
      await as('beta', () => tenantry.cache.set('survivor', 'beta'))
      await tenantry.deleteTenant('acme', { purge: true })
      const audit = await tenantry.catalog.auditLog(acme)
      // Each purge hook writes its own entry (the backups' too): the services' is the one with `cache`.
      const purged = audit.find((e) => e.action === 'tenant.services.purged' && typeof e.details === 'object' && e.details !== null && 'cache' in e.details)
      expect(purged?.details).toMatchObject({ cache: { driver: driver.name, keys: expect.any(Number) } })
      expect((purged!.details as { cache: { keys: number } }).cache.keys).toBeGreaterThan(0)
      if (raw) {
        expect(await redisKeys(raw, `${prefix}{${acme}}`)).toEqual([])
        expect(await raw.sismember(`${prefix}sweep`, acme)).toBe(0)
      } else {
        // Memory: the store is this process's; a new tenant with the slug starts empty.
        const fresh = await tenantry.createTenant({ slug: 'acme' })
        expect(fresh.id).not.toBe(acme)
        expect(await as('acme', () => tenantry.cache.getMany(['p1', 'p2', 'after-flush']))).toEqual([undefined, undefined, undefined])
      }
      expect(await as('beta', () => tenantry.cache.get('survivor'))).toBe('beta')
    })
  })
}

// The Redis driver keeps each tenant's generation in the process and hears of flushes by
// pub/sub. Two drivers on their own connections stand for two processes of a deployment.
describe.skipIf(!('url' in redis))('the Redis cache driver across processes', () => {
  const url = 'url' in redis ? redis.url : ''
  const sharedPrefix = `${prefix}x:`
  const drivers: RedisCacheDriver[] = []
  let raw: Redis
  const open = (maxCachedTenants?: number) => {
    const driver = new RedisCacheDriver({ url, prefix: sharedPrefix, sweepBatch: 100, logger: SILENT_LOGGER, ...(maxCachedTenants ? { maxCachedTenants } : {}) })
    drivers.push(driver)
    return driver
  }
  /** A tenant id of the catalog's shape: `t` + 19 base-32 characters. */
  const tenantId = () => `t${Array.from({ length: 19 }, () => 'abcdefghijklmnopqrstuvwxyz234567'[Math.floor(Math.random() * 32)]).join('')}`
  /** Connected and subscribed, so that the generations it reads are kept. */
  const subscribed = async (driver: RedisCacheDriver) => {
    await driver.client()
    await vi.waitFor(() => expect(driver.subscribed).toBe(true), { timeout: 10_000, interval: 10 })
  }

  beforeAll(() => {
    raw = new Redis(url)
  })
  afterAll(async () => {
    await Promise.all(drivers.map((d) => d.close()))
    const left = await redisKeys(raw, sharedPrefix)
    if (left.length) await raw.unlink(...left)
    raw.disconnect()
  })

  it('a flush in one process is seen by the other, which keeps calling with plain commands', async () => {
    const [a, b] = [open(), open()]
    await Promise.all([subscribed(a), subscribed(b)])
    const t = tenantId()
    await a.set(t, 'k', '"one"', 0)
    expect(await b.get(t, 'k', orUndefined)).toBe('"one"')
    expect(b.holdsGeneration(t)).toBe(true)
    await a.flush(t)
    // The flushing process at once; the other within the pub/sub latency.
    expect(await a.get(t, 'k', orUndefined)).toBeUndefined()
    await vi.waitFor(async () => expect(await b.get(t, 'k', orUndefined)).toBeUndefined(), { timeout: 10_000, interval: 5 })
    // The other process replaced the generation it holds, and writes where the first reads.
    expect(b.holdsGeneration(t)).toBe(true)
    await b.set(t, 'k', '"two"', 0)
    expect(await a.get(t, 'k', orUndefined)).toBe('"two"')
    const [generation] = await raw.mget(`${sharedPrefix}{${t}}:g`)
    expect(await redisKeys(raw, `${sharedPrefix}{${t}}:${generation}:`)).toEqual([`${sharedPrefix}{${t}}:${generation}:k`])
  })

  it("a flush made while the other's subscriber was down is still honoured after it reconnects", async () => {
    const [a, b] = [open(), open()]
    await Promise.all([subscribed(a), subscribed(b)])
    const t = tenantId()
    await a.set(t, 'k', '"before"', 0)
    expect(await b.get(t, 'k', orUndefined)).toBe('"before"')
    expect(b.holdsGeneration(t)).toBe(true)
    const killedId = b.subscriberId!
    // Only b's subscriber: other runs on this Redis keep theirs.
    expect(Number(await raw.client('KILL', 'ID', String(killedId)))).toBe(1)
    // Sent right after the kill (ioredis waits before reconnecting): its message never reaches b.
    await a.flush(t)
    await vi.waitFor(async () => expect(await b.get(t, 'k', orUndefined)).toBeUndefined(), { timeout: 10_000, interval: 5 })
    // Subscribed again, on a new connection: later flushes reach b as before.
    await vi.waitFor(() => expect(b.subscribed && b.subscriberId !== killedId).toBe(true), { timeout: 10_000, interval: 10 })
    await a.set(t, 'k', '"after"', 0)
    expect(await b.get(t, 'k', orUndefined)).toBe('"after"')
    expect(b.holdsGeneration(t)).toBe(true)
    await a.flush(t)
    await vi.waitFor(async () => expect(await b.get(t, 'k', orUndefined)).toBeUndefined(), { timeout: 10_000, interval: 5 })
  })

  it('keeps the generations of at most maxCachedTenants tenants, least recently used dropped first', async () => {
    const c = open(3)
    await subscribed(c)
    const ts = Array.from({ length: 6 }, tenantId)
    for (const t of ts.slice(0, 5)) await c.set(t, 'k', JSON.stringify(t), 0)
    expect(c.cachedTenants).toBe(3)
    expect(ts.map((t) => c.holdsGeneration(t))).toEqual([false, false, true, true, true, false])
    // Using ts[2] makes it the most recent: ts[3] goes when ts[5] comes in.
    expect(await c.get(ts[2]!, 'k', orUndefined)).toBe(JSON.stringify(ts[2]))
    await c.set(ts[5]!, 'k', JSON.stringify(ts[5]), 0)
    expect(ts.map((t) => c.holdsGeneration(t))).toEqual([false, false, true, false, true, true])
    // A tenant whose generation was dropped reads it again: nothing is lost.
    expect(await c.get(ts[0]!, 'k', orUndefined)).toBe(JSON.stringify(ts[0]))
    expect(c.cachedTenants).toBe(3)
  })

  it('runs its scripts by SHA1 and loads one Redis does not know; its client defines no commands', async () => {
    const d = open()
    const client = await d.client()
    // ioredis copies defined commands onto every auto-pipeline: the hot path would pay for them.
    expect(Object.keys((client as unknown as { scriptsSet: object }).scriptsSet)).toEqual([])
    // A script no run has sent before (its text is new), so EVALSHA first meets NOSCRIPT.
    const script = luaScript(`return {KEYS[1], ARGV[1], '${process.pid}-${Math.random()}'}`)
    expect(await raw.script('EXISTS', script.sha)).toEqual([0])
    const first = (await runScript(client, script, ['k'], [7])) as string[]
    expect(first.slice(0, 2)).toEqual(['k', '7'])
    expect(await raw.script('EXISTS', script.sha)).toEqual([1])
    expect(await runScript(client, script, ['k2'], ['x'])).toEqual(['k2', 'x', first[2]])
    // A refusal other than NOSCRIPT is the script's own, not retried.
    await expect(runScript(client, luaScript(`return redis.error_reply('NOPE ${Math.random()}')`), [], [])).rejects.toThrow(/NOPE/)
  })

  it('drops the oldest generation not called since the LRU last passed over it (second chance), within maxCachedTenants', async () => {
    const c = open(2)
    await subscribed(c)
    const ts = Array.from({ length: 4 }, tenantId)
    await c.set(ts[0]!, 'k', '0', 0)
    await c.set(ts[1]!, 'k', '1', 0)
    expect(await c.get(ts[1]!, 'k', orUndefined)).toBe('1')
    expect(await c.get(ts[0]!, 'k', orUndefined)).toBe('0')
    // Both called: the pass unmarks them and the oldest goes (with every one called, second
    // chance is first in, first out); the new one is always kept.
    await c.set(ts[2]!, 'k', '2', 0)
    expect(ts.map((t) => c.holdsGeneration(t))).toEqual([false, true, true, false])
    // ts[1] was passed over (marked unused) and not called since: it goes before ts[2].
    expect(await c.get(ts[2]!, 'k', orUndefined)).toBe('2')
    await c.set(ts[3]!, 'k', '3', 0)
    expect(ts.map((t) => c.holdsGeneration(t))).toEqual([false, false, true, true])
    expect(c.cachedTenants).toBe(2)
    // Every value is still read right, the dropped tenants' through their generation read again.
    for (const [i, t] of ts.entries()) expect(await c.get(t, 'k', orUndefined)).toBe(String(i))
    expect(c.cachedTenants).toBe(2)
  })

  it("the sweep never removes the current generation's entries, even when a flush lands during its step", async () => {
    const a = open()
    await subscribed(a)
    const t = tenantId()
    const base = a.tenantBase(t)
    await a.set(t, 'old', '1', 0)
    await a.flush(t)
    await a.set(t, 'kept', '2', 0)
    await a.flush(t)
    // The step reads the generation, then another flush and a write land before its UNLINK.
    const client = await a.client()
    const mget = client.mget.bind(client) as (...keys: string[]) => Promise<Array<string | null>>
    ;(client as unknown as { mget: typeof mget }).mget = async (...keys) => {
      const read = await mget(...keys)
      if (!keys.includes(`${base}g`)) return read
      delete (client as unknown as { mget?: unknown }).mget
      await a.flush(t)
      await a.set(t, 'newest', '3', 0)
      return read
    }
    // Other tests' tenants may be queued too: until this one's sweep is through.
    while ((await raw.sismember(`${sharedPrefix}sweep`, t)) === 1) await a.sweep()
    const [current] = await raw.mget(`${base}g`)
    const entries = (await redisKeys(raw, base)).filter((k) => /^\d+:/.test(k.slice(base.length)))
    expect(entries).toEqual([`${base}${current}:newest`])
  })
})
