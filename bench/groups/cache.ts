// `npm run bench -- --only cache`: `tenantry.cache` get and set on Redis against the same
// commands sent with raw ioredis (issue 12's goal: at most 1.2× the time). Tenantry's extra work
// per call is the tenant lookup in the context, the key check, JSON, and the generation held in
// the process (learned once, kept current by pub/sub): the command itself is a plain GET or SET.
// Both clients have the same options, auto-pipelining on (commands sent in the same tick go out
// in one write, as the driver's do), and neither defines Lua commands. Rounds are interleaved (the
// harness rotates the variants), so load from elsewhere on the machine hits both sides alike; this
// process's CPU time per call is reported too, as load inflates the wall time of both.
import { Redis } from 'ioredis'
import { createTenantry, type Tenantry } from 'tenantry'
import { findRedis } from 'tenantry/testing'
import { compareThroughput, fmt, median, type BenchContext, type ThroughputVariant } from '../harness.js'

/** A value of about 120 bytes as JSON, like a cached settings object. */
const VALUE = { plan: 'pro', seats: 25, features: ['sso', 'audit', 'export'], region: 'eu-west-1', trialEndsAt: '2026-01-31T00:00:00.000Z' }
const KEYS = 100

export async function cacheGroup(ctx: BenchContext): Promise<void> {
  const found = await findRedis()
  if ('skip' in found) throw new Error(`the cache group needs Redis: ${found.skip}`)
  const prefix = `tenantry-bench-${process.pid}:`
  const home = await ctx.workDir('cache')
  const tenantry: Tenantry = await createTenantry({ home, services: { cache: { driver: 'redis', url: found.url, prefix } } })
  // The same client options as the driver's, so the comparison is of what Tenantry adds.
  const raw = new Redis(found.url, { maxRetriesPerRequest: 2, enableAutoPipelining: true })
  try {
    await tenantry.createTenant({ slug: 'bench' })
    const json = JSON.stringify(VALUE)
    const rawKey = (i: number) => `${prefix}raw:${i % KEYS}`
    const cacheKey = (i: number) => `settings:${i % KEYS}`
    // Filled first, so every get is a hit on both sides.
    for (let i = 0; i < KEYS; i++) await raw.set(rawKey(i), json)
    await tenantry.withTenant('bench', () => tenantry.cache.setMany(Array.from({ length: KEYS }, (_, i) => [cacheKey(i), VALUE] as const)))

    /** `ops` calls, `inFlight` at a time, inside one `withTenant` for Tenantry (as one request's work would be). */
    const run = (op: (i: number) => Promise<unknown>, inFlight: number) => async (ops: number) => {
      let next = 0
      const worker = async () => {
        while (next < ops) await op(next++)
      }
      await Promise.all(Array.from({ length: inFlight }, worker))
    }
    const inTenant = (op: (i: number) => Promise<unknown>, inFlight: number) => (ops: number) => tenantry.withTenant('bench', () => run(op, inFlight)(ops))

    for (const inFlight of [1, 16]) {
      /** This process's CPU microseconds per call, per round, by variant (the warm-up round left out). */
      const cpu = new Map<string, number[]>()
      const withCpu = (variant: ThroughputVariant): ThroughputVariant => ({
        ...variant,
        run: async (ops) => {
          const started = process.cpuUsage()
          await variant.run(ops)
          const used = process.cpuUsage(started)
          const rounds = cpu.get(variant.name) ?? []
          cpu.set(variant.name, rounds)
          rounds.push((used.user + used.system) / ops)
        },
      })
      const variants: ThroughputVariant[] = [
        { name: 'raw ioredis GET', run: run(async (i) => JSON.parse((await raw.get(rawKey(i)))!), inFlight), note: 'JSON.parse included' },
        { name: 'tenantry.cache.get', run: inTenant((i) => tenantry.cache.get(cacheKey(i)), inFlight) },
        { name: 'raw ioredis SET', run: run((i) => raw.set(rawKey(i), JSON.stringify(VALUE)), inFlight), note: 'JSON.stringify included' },
        { name: 'tenantry.cache.set', run: inTenant((i) => tenantry.cache.set(cacheKey(i), VALUE), inFlight) },
      ].map(withCpu)
      const result = await compareThroughput({
        title: `cache get/set of a ${json.length}-byte JSON value on Redis, ${inFlight} call${inFlight > 1 ? 's' : ''} in flight`,
        baseline: 'raw ioredis GET',
        variants,
        // Short rounds, many of them: a median over more interleaved rounds is steadier under load.
        opsPerRound: ctx.size(2_000, 800),
        rounds: ctx.size(11, 3),
        warmupRounds: 1,
        unit: 'calls',
      })
      ctx.table(result)
      const cpuUs = (name: string) => median(cpu.get(name)!.slice(1))
      ctx.table({
        kind: 'table',
        title: `this process's CPU per call, ${inFlight} in flight (median of the measured rounds; Redis' own CPU not included)`,
        headers: ['variant', 'CPU µs/call', 'vs raw'],
        rows: variants.map((v) => {
          const raw = v.name.includes('get') || v.name.includes('GET') ? 'raw ioredis GET' : 'raw ioredis SET'
          return [v.name, fmt(cpuUs(v.name)), `${(cpuUs(v.name) / cpuUs(raw)).toFixed(2)}×`]
        }),
      })
      const us = (name: string) => result.rows.find((r) => r.name === name)!.medianUsPerOp
      for (const [op, rawName, ours] of [
        ['get', 'raw ioredis GET', 'tenantry.cache.get'],
        ['set', 'raw ioredis SET', 'tenantry.cache.set'],
      ] as const) {
        const ratio = us(ours) / us(rawName)
        ctx.metric(`${op}Ratio${inFlight}`, ratio)
        ctx.metric(`${op}CpuRatio${inFlight}`, cpuUs(ours) / cpuUs(rawName))
        ctx.goal({
          name: `tenantry.cache.${op} vs raw ioredis, ${inFlight} in flight`,
          target: '≤ 1.2× the time',
          measured: `${ratio.toFixed(2)}× (${fmt(us(ours))} vs ${fmt(us(rawName))} µs per call)`,
          met: ratio <= 1.2,
        })
      }
    }
  } finally {
    let cursor = '0'
    do {
      const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length) await raw.unlink(...keys)
      cursor = next
    } while (cursor !== '0')
    raw.disconnect()
    await tenantry.close()
  }
}
