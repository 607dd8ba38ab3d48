// A quiet tenant's point reads over HTTP, alone and while a noisy neighbour attacks: the
// load-isolation promise (#8) in numbers. The quiet reader and every attacker are separate
// processes; the server (with its executor processes) runs in this one.
import { createTenantry, type Tenantry } from 'tenantry'
import { startServer, type RunningServer } from '@tenantry/server'
import { fmt, percentile, summarizeLatency, type BenchContext, type LatencyRow } from '../harness.js'
import type { LoadRequest } from '../http-load-child.js'
import { startLoadClient, type LoadClient, type LoadResult } from '../load-client.js'
import { benchServerSetup, seedJobs } from '../server-fixture.js'

/** Concurrent attacking connections: far more than the attacker's share of the executor pool. */
const ATTACK_CONNECTIONS = 16
/** How long attackers run before the quiet reader starts, so their statements are already running. */
const RAMP_MS = 1000
/** A phase ends after this long even if it has fewer samples: a slow neighbour must not make the run endless. */
const PHASE_MAX_MS = 30_000
/** The width of one point of the latency-over-time series. */
const BUCKET_MS = 200

/** One attack's run as a time series (metrics.noisyTimeline): the quiet reader alone, then under attack. */
export interface NoisyTimeline {
  attack: string
  /** Seconds from the start of the idle phase at which the attacker started. */
  attackStartSec: number
  points: Array<{ phase: 'alone' | 'under attack'; tSec: number; p50Ms: number; p99Ms: number; samples: number }>
}

/** The quiet reader's samples of one phase, bucketed by when each was sent. */
function bucket(phase: NoisyTimeline['points'][number]['phase'], offsetMs: number, sentAtMs: number[], latenciesMs: number[]): NoisyTimeline['points'] {
  const buckets = new Map<number, number[]>()
  sentAtMs.forEach((at, i) => {
    const k = Math.floor(at / BUCKET_MS)
    const list = buckets.get(k) ?? []
    list.push(latenciesMs[i]!)
    buckets.set(k, list)
  })
  return [...buckets.entries()]
    .sort(([a], [b]) => a - b)
    .map(([k, list]) => {
      const sorted = list.sort((a, b) => a - b)
      const round = (n: number) => Math.round(n * 1000) / 1000
      return { phase, tSec: round((offsetMs + (k + 0.5) * BUCKET_MS) / 1000), p50Ms: round(percentile(sorted, 50)), p99Ms: round(percentile(sorted, 99)), samples: sorted.length }
    })
}

/** An attack: requests the noisy tenant sends as fast as its connections allow. */
interface Attack {
  name: string
  note: string
  request(url: string, token: string, slug: string): Omit<LoadRequest, 'requests' | 'connections'>
}

/**
 * Who attacks: a tenant on the default plan (1,200 requests a minute, 600 per token: what a
 * deployment has unless it says otherwise), and one on a plan with no request limit, where only
 * the executor's and the streams' per-tenant shares stand in its way.
 */
const ATTACKERS = [
  { slug: 'noisy', plan: 'default plan' },
  { slug: 'flood', plan: 'no request limit' },
] as const
const UNLIMITED = 1_000_000_000

const ATTACKS: Attack[] = [
  {
    name: 'SQL-over-HTTP runaway CTE',
    note: 'a recursive CTE that never ends, read-only token: each runs to its 5 s deadline and is killed',
    request: (url, token) => ({
      url: `${url}/v2/pipeline`,
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        requests: [{ type: 'execute', stmt: { sql: 'with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c' } }, { type: 'close' }],
      }),
    }),
  },
  {
    name: 'data API search scans',
    note: 'GET /data/jobs?q=<200 characters that match nothing> over the noisy tenant\'s long rows: a full scan each',
    request: (url, token, slug) => ({
      url: `${url}/api/t/${slug}/data/jobs?q=${'zq'.repeat(100)}&limit=50`,
      method: 'GET',
      headers: { authorization: `Bearer ${token}` },
    }),
  },
]

export async function noisyGroup(ctx: BenchContext): Promise<void> {
  const samples = ctx.size(3000, 600)
  const noisyRows = ctx.size(20_000, 4000)
  const setup = await benchServerSetup(ctx)
  const env = setup.env
  // The quiet tenant and `flood` on a plan without request limits; `noisy` on the default plan.
  const config = {
    ...setup.config,
    server: {
      ...(setup.config.server as object),
      limits: { anonymous: UNLIMITED, user: UNLIMITED, plans: { bench: { tenant: UNLIMITED, token: UNLIMITED } }, tenants: { quiet: 'bench', flood: 'bench' } },
    },
  }
  const tenantry: Tenantry = await createTenantry(config)
  let server: RunningServer | undefined
  const clients: LoadClient[] = []
  try {
    await tenantry.createTenant({ slug: 'quiet' })
    const id = await seedJobs(tenantry, 'quiet', 100)
    const attackerTokens = new Map<string, string>()
    for (const { slug } of ATTACKERS) {
      await tenantry.createTenant({ slug })
      await seedJobs(tenantry, slug, noisyRows, (i) => `Ärztin und Entwicklerin ${i} `.repeat(60))
      attackerTokens.set(slug, (await tenantry.tokens.create(slug, { readOnly: true, name: 'bench' })).token)
    }
    const quietToken = (await tenantry.tokens.create('quiet', { readOnly: true, name: 'bench' })).token
    server = await startServer({ tenantry, port: 0, host: '127.0.0.1', handleSignals: false, app: { logger: { level: 'error' }, env } })
    const url = server.url

    const quiet = await startLoadClient()
    const attackLoad = await startLoadClient()
    clients.push(quiet, attackLoad)
    const read: LoadRequest = {
      url: `${url}/api/t/quiet/data/jobs/${id}`,
      method: 'GET',
      headers: { authorization: `Bearer ${quietToken}` },
      requests: samples,
      connections: 1,
      latencies: true,
    }
    await quiet.run({ ...read, requests: Math.min(500, samples) }) // warm-up

    const rows: LatencyRow[] = []
    const idle: LatencyRow[] = []
    const idleSamples: number[] = []
    const attackStats: Array<{ attack: string; answered: LoadResult }> = []
    const timelines: NoisyTimeline[] = []
    ctx.metric('noisyTimeline', timelines)
    /** The quiet reader's samples, for at most PHASE_MAX_MS, and when its phase started (ms on this process's clock). */
    const sample = async () => {
      const timer = setTimeout(() => quiet.stop(), PHASE_MAX_MS)
      try {
        const startedAt = performance.now()
        const result = await quiet.run(read)
        return { latencies: result.latenciesMs!, sentAt: result.sentAtMs!, startedAt }
      } finally {
        clearTimeout(timer)
      }
    }
    for (const attacker of ATTACKERS) {
      for (const attack of ATTACKS) {
        const name = `${attack.name}, ${attacker.plan}`
        const alone = await sample()
        idleSamples.push(...alone.latencies)
        idle.push(summarizeLatency(`alone (before "${name}")`, alone.latencies))
        const request = attack.request(url, attackerTokens.get(attacker.slug)!, attacker.slug)
        const attackStartedAt = performance.now()
        const running = attackLoad.run({ ...request, requests: Number.MAX_SAFE_INTEGER, connections: ATTACK_CONNECTIONS, anyStatus: true })
        await new Promise((resolve) => setTimeout(resolve, RAMP_MS))
        const attacked = await sample()
        attackLoad.stop()
        const answered = await running
        attackStats.push({ attack: name, answered })
        rows.push(summarizeLatency(`under attack: ${name}`, attacked.latencies, attack.note))
        timelines.push({
          attack: name,
          attackStartSec: Math.round(attackStartedAt - alone.startedAt) / 1000,
          points: [
            ...bucket('alone', 0, alone.sentAt, alone.latencies),
            ...bucket('under attack', attacked.startedAt - alone.startedAt, attacked.sentAt, attacked.latencies),
          ],
        })
      }
    }
    // Alone is every idle phase together: one idle phase's p99 moves with the machine's noise.
    const baseline = summarizeLatency('alone (every idle phase)', idleSamples)
    for (const row of [baseline, ...idle, ...rows]) row.p50VsBaseline = row.p50Ms / baseline.p50Ms
    ctx.table({
      kind: 'latency',
      title: `Quiet tenant: data API point read, 1 connection, up to ${samples} samples or ${PHASE_MAX_MS / 1000} s per phase; the attacker uses ${ATTACK_CONNECTIONS} connections`,
      baseline: baseline.name,
      rows: [baseline, ...idle, ...rows],
    })
    ctx.table({
      kind: 'table',
      title: 'What the attacker got back',
      headers: ['attack', 'requests answered', 'statuses'],
      rows: attackStats.map(({ attack, answered }) => [attack, answered.requests, Object.entries(answered.statuses).map(([s, n]) => `${s}×${n}`).join(' ')]),
    })
    for (const row of rows) {
      const ratio = row.p99Ms / baseline.p99Ms
      ctx.goal({
        name: `quiet tenant's p99 ${row.name.replace('under attack: ', 'under ')} vs alone`,
        target: '≤ 1.5×',
        measured: `${ratio.toFixed(2)}× (${fmt(row.p99Ms)} ms vs ${fmt(baseline.p99Ms)} ms; p50 ${fmt(row.p50Ms)} vs ${fmt(baseline.p50Ms)} ms)`,
        met: ratio <= 1.5,
      })
    }
    ctx.note('the attacker and the quiet reader are separate processes; the server and its executor processes share the machine\'s cores with them')
  } finally {
    for (const client of clients) await client.close()
    await server?.close()
    await tenantry.close()
  }
}
