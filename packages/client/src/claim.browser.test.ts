import type { Server } from 'node:http'
import { fileURLToPath } from 'node:url'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TenantryConfig } from 'tenantry'
import { Client, signUp, startTestServer, type TestServer } from '@tenantry/server/testing'
import repoConfig from '../../../tenantry.config.js'
import { bundleForPage, haveChromium, launchChromium, servePage } from './testing/chromium.fixture.js'

/**
 * Claim on first sign-in (issue 10) in real Chromium: anonymous data in IndexedDB, a sign-up,
 * the claim; a tab closed mid-claim and reopened; two tabs claiming at once; two users. After
 * every story the server holds each local row exactly once, and IndexedDB holds none of them.
 *
 * Chromium is Debian's package (`scripts/ensure.mjs` installs it under `npm test` as root),
 * never a downloaded browser.
 */
const at = (path: string) => fileURLToPath(new URL(path, import.meta.url))

const withChromium = haveChromium('the claim browser tests')

/** The page's script: the client and the CV builder's declarations, with a few entry points for the test. */
function bundle(): Promise<string> {
  return bundleForPage(
    `import { createClient, localBackend, remoteBackend, queuedBackend, claimLocalData, resumeClaim, hasPendingClaim } from ${JSON.stringify(at('./index.ts'))}
// highlights.job_id references jobs: what the claim remaps and the local backend enforces.
import { collections, localDefaults } from ${JSON.stringify(at('../../../examples/cv-builder/collections.ts'))}
const local = (name) => localBackend({ collections, defaults: localDefaults, name })
const withLocal = async (name, fn) => { const backend = local(name); try { return await fn(backend) } finally { await backend.close() } }
/** Anonymous data: jobs, each with highlights. */
globalThis.seedLocal = (name, jobs, perJob) => withLocal(name, async (backend) => {
  const client = createClient({ backend })
  for (let j = 0; j < jobs; j++) {
    const job = await client.collection('jobs').create({ company: name + ' company ' + j, title: 'Engineer', start_date: '2020-01-01' })
    for (let h = 0; h < perJob; h++) await client.collection('highlights').create({ job_id: job.id, content: 'job ' + j + ' highlight ' + h, position: h })
  }
})
/** Every local row, by collection: [id, company] for jobs, [job_id, content] for highlights. */
globalThis.localRows = (name) => withLocal(name, async (backend) => ({
  jobs: (await backend.dexie.table('jobs').toArray()).map((r) => [r.id, r.company]),
  highlights: (await backend.dexie.table('highlights').toArray()).map((r) => [r.job_id, r.content]),
  pending: await hasPendingClaim(backend),
}))
globalThis.claim = (name, options) => withLocal(name, (backend) => claimLocalData({ local: backend, ...options }))
globalThis.resume = (name) => withLocal(name, (backend) => resumeClaim({ local: backend }))
globalThis.remoteCreate = (baseUrl, values) => remoteBackend({ collections, baseUrl, retry: { baseDelayMs: 20 } }).create('jobs', values)
let queue
const summary = (s) => ({ state: s.state, pending: s.pending.length, failed: s.failed.map((f) => f.failed.code) })
globalThis.openQueue = (baseUrl, name) => { queue = queuedBackend({ collections, baseUrl, name, retry: { retries: 0 } }); return true }
globalThis.queueWrite = async (op, ...args) => { try { return { ok: await queue[op](...args) } } catch (e) { return { error: e.code, seq: e.queued?.seq } } }
globalThis.queueStatus = async () => summary(await queue.status())
globalThis.queueFlush = async () => summary(await queue.flush())
globalThis.ready = true
`,
  )
}


type LocalRows = { jobs: Array<[number, string]>; highlights: Array<[number, string]>; pending: boolean }
type Outcome = { status: string; claimId?: string; counts?: Record<string, number>; previous?: { claimId: string } }

describe.skipIf(!withChromium)('claim on first sign-in, retried writes and the offline queue, in Chromium', () => {
  let tenantry: TestServer
  let page: { origin: string; server: Server }
  let browser: Browser

  beforeAll(async () => {
    page = await servePage(await bundle(), 'tenantry claim')
    const config: TenantryConfig = { ...repoConfig, server: { ...(repoConfig.server as Record<string, unknown>), cors: { origins: [page.origin] } } }
    tenantry = await startTestServer({ config, env: { TENANTRY_TRUSTED_ORIGINS: '' } })
    browser = await launchChromium()
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await tenantry?.stop()
    await new Promise((resolve) => page?.server.close(resolve))
  })

  /** A tab on the app's page, loaded. */
  const open = async (context: BrowserContext): Promise<Page> => {
    const tab = await context.newPage()
    await tab.goto(`${page.origin}/`)
    await tab.waitForFunction(() => (globalThis as { ready?: boolean }).ready === true, undefined, { timeout: 20_000 })
    return tab
  }
  const call = <T>(tab: Page, fn: string, ...args: unknown[]): Promise<T> =>
    tab.evaluate(([fn, args]) => (globalThis as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[fn as string]!(...(args as unknown[])), [fn, args] as const) as Promise<T>

  /** A new user, signed up on the server, whose session the browser context then holds. */
  const signIn = async (context: BrowserContext, email: string): Promise<{ client: Client; slug: string }> => {
    const client = await signUp(tenantry, email)
    await context.addCookies([...client.cookies].map(([name, value]) => ({ name, value, url: tenantry.url })))
    return { client, slug: (await client.get('/api/me')).body.activeTenant.slug }
  }

  /** The user's server rows: [company] of jobs, and [company of its job, content] of highlights. */
  const serverRows = async (client: Client) => {
    const jobs = (await client.get('/api/tenant/data/jobs?limit=100&order=id')).body.items as Array<{ id: number; company: string }>
    const highlights = (await client.get('/api/tenant/data/highlights?limit=100&order=id')).body.items as Array<{ job_id: number; content: string }>
    const company = new Map(jobs.map((j) => [j.id, j.company]))
    return { jobs: jobs.map((j) => j.company).sort(), highlights: highlights.map((h) => `${company.get(h.job_id)} / ${h.content}`).sort() }
  }
  /** What the server must hold after claiming the local rows `rows` (joined as `serverRows` answers). */
  const expected = (rows: LocalRows) => {
    const company = new Map(rows.jobs)
    return { jobs: rows.jobs.map(([, c]) => c).sort(), highlights: rows.highlights.map(([job, content]) => `${company.get(job)} / ${content}`).sort() }
  }

  it('anonymous data survives a reload, then moves to the server on sign-in with highlights on their jobs, leaving IndexedDB empty', async () => {
    const context = await browser.newContext()
    const tab = await open(context)
    await call(tab, 'seedLocal', 'alice-db', 6, 3)
    await tab.reload()
    await tab.waitForFunction(() => (globalThis as { ready?: boolean }).ready === true)
    const before = await call<LocalRows>(tab, 'localRows', 'alice-db')
    expect(before.jobs).toHaveLength(6)
    expect(before.highlights).toHaveLength(18)

    const alice = await signIn(context, 'alice-claim@example.com')
    // Something already in her tenant: the claim appends, so ids differ from the local ones.
    await alice.client.post('/api/tenant/data/jobs', { company: 'already there', title: 'CTO', start_date: '2019-01-01' })
    const progress: number[] = []
    await tab.exposeFunction('reportProgress', (sent: number) => progress.push(sent))
    const outcome = await tab.evaluate(
      (baseUrl) =>
        (globalThis as unknown as { claim: (n: string, o: unknown) => Promise<Outcome> }).claim('alice-db', {
          baseUrl,
          chunkSize: 5,
          onProgress: ({ sent }: { sent: number }) => (globalThis as unknown as { reportProgress: (n: number) => void }).reportProgress(sent),
        }),
      tenantry.url,
    )
    expect(outcome).toMatchObject({ status: 'committed', counts: { jobs: 6, highlights: 18 } })
    expect(progress.at(-1)).toBe(24)
    expect(progress.length).toBe(5)
    const rows = await serverRows(alice.client)
    const want = expected(before)
    expect(rows).toEqual({ jobs: ['already there', ...want.jobs].sort(), highlights: want.highlights })
    expect(await call<LocalRows>(tab, 'localRows', 'alice-db')).toEqual({ jobs: [], highlights: [], pending: false })
    await context.close()
  }, 120_000)

  for (const when of ['after the third chunk is sent', 'while the commit’s answer is on its way'] as const) {
    it(`a tab closed ${when}, reopened, ends with exactly one copy on the server`, async () => {
      const context = await browser.newContext()
      const name = `closed-${when.length}`
      let tab = await open(context)
      await call(tab, 'seedLocal', name, 5, 3)
      const before = await call<LocalRows>(tab, 'localRows', name)
      const user = await signIn(context, `closed-${when.length}@example.com`)
      // The tab dies at the chosen moment: the request reaches the server, its answer never the page.
      let closed!: Promise<void>
      const died = new Promise<void>((resolve) => {
        const pattern = when.startsWith('after') ? /\/claims\/[^/]+\/chunks\/2$/ : /\/claims\/[^/]+\/commit$/
        void context.route(pattern, async (route) => {
          await route.fetch()
          closed = tab.close()
          resolve()
        })
      })
      const claim = call(tab, 'claim', name, { baseUrl: tenantry.url, chunkSize: 4 }).catch(() => 'closed')
      await died
      await closed
      expect(await claim).toBe('closed')
      await context.unrouteAll({ behavior: 'ignoreErrors' })

      tab = await open(context)
      expect((await call<LocalRows>(tab, 'localRows', name)).pending).toBe(true)
      const outcome = await call<Outcome>(tab, 'resume', name)
      expect(outcome).toMatchObject({ status: 'committed', counts: { jobs: 5, highlights: 15 } })
      expect(await serverRows(user.client)).toEqual(expected(before))
      expect(await call<LocalRows>(tab, 'localRows', name)).toEqual({ jobs: [], highlights: [], pending: false })
      // Nothing left to resume, and claiming again sends nothing.
      expect(await call(tab, 'resume', name)).toBeUndefined()
      expect(await serverRows(user.client)).toEqual(expected(before))
      await context.close()
    }, 120_000)
  }

  it('two tabs claiming at once make one claim; the second sees the first’s result', async () => {
    const context = await browser.newContext()
    const [one, two] = [await open(context), await open(context)]
    await call(one, 'seedLocal', 'tabs-db', 4, 2)
    const before = await call<LocalRows>(one, 'localRows', 'tabs-db')
    const user = await signIn(context, 'tabs@example.com')
    const outcomes = await Promise.all([one, two].map((tab) => call<Outcome>(tab, 'claim', 'tabs-db', { baseUrl: tenantry.url, chunkSize: 3 })))
    const committed = outcomes.filter((o) => o.status === 'committed')
    expect(committed).toHaveLength(1)
    const other = outcomes.find((o) => o.status !== 'committed')!
    expect(other).toMatchObject({ status: 'nothing-to-claim', previous: { claimId: committed[0]!.claimId } })
    expect(await serverRows(user.client)).toEqual(expected(before))
    await context.close()
  }, 120_000)

  it('a remote write whose answer is lost, or that meets a 503, is retried with the same Idempotency-Key and applied once', async () => {
    const context = await browser.newContext()
    const tab = await open(context)
    const user = await signIn(context, 'retry@example.com')
    const keys: string[] = []
    let attempt = 0
    await context.route(/\/api\/tenant\/data\/jobs$/, async (route) => {
      if (route.request().method() !== 'POST') return route.continue()
      keys.push(route.request().headers()['idempotency-key'] ?? '')
      attempt++
      // 1: reaches the server, which commits, but the answer is lost; 2: a 503; 3: goes through.
      if (attempt === 1) {
        await route.fetch()
        return route.abort('connectionreset')
      }
      if (attempt === 2) return route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: { code: 'DATABASE_BUSY', message: 'busy' } }) })
      return route.continue()
    })
    const row = await call<{ id: number; company: string }>(tab, 'remoteCreate', tenantry.url, { company: 'Once Inc', title: 'CTO', start_date: '2021-01-01' })
    expect(row.company).toBe('Once Inc')
    expect(keys).toHaveLength(3)
    expect(new Set(keys).size).toBe(1)
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/)
    const stored = (await user.client.get('/api/tenant/data/jobs?company=Once%20Inc')).body.items as Array<{ id: number }>
    expect(stored.map((r) => r.id)).toEqual([row.id])
    await context.close()
  }, 120_000)

  it('offline, writes queue in IndexedDB with their keys and replay in order once the server is reachable, each once', async () => {
    const context = await browser.newContext()
    const tab = await open(context)
    const user = await signIn(context, 'queue@example.com')
    await call(tab, 'openQueue', tenantry.url, 'queue-db')
    const a = await call<{ ok: { id: number } }>(tab, 'queueWrite', 'create', 'jobs', { company: 'Queue A', title: 'Online', start_date: '2020-01-01' })
    expect(await call(tab, 'queueStatus')).toEqual({ state: 'synced', pending: 0, failed: [] })

    await context.setOffline(true)
    const offline = [
      await call<{ error: string }>(tab, 'queueWrite', 'update', 'jobs', a.ok.id, { title: 'Offline 1' }),
      await call<{ error: string }>(tab, 'queueWrite', 'create', 'jobs', { company: 'Queue B', title: 'Offline', start_date: '2020-01-01' }),
      await call<{ error: string }>(tab, 'queueWrite', 'update', 'jobs', a.ok.id, { title: 'Offline 2' }),
      // Refused on replay (no content): set aside, and the replay goes on.
      await call<{ error: string }>(tab, 'queueWrite', 'create', 'highlights', { job_id: a.ok.id }),
      await call<{ error: string }>(tab, 'queueWrite', 'create', 'highlights', { job_id: a.ok.id, content: 'queued highlight' }),
    ]
    expect(offline.map((r) => r.error)).toEqual(['QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED'])
    expect(await call(tab, 'queueStatus')).toEqual({ state: 'pending', pending: 5, failed: [] })
    // Still offline: a flush keeps everything.
    expect(await call(tab, 'queueFlush')).toEqual({ state: 'pending', pending: 5, failed: [] })

    await context.setOffline(false)
    expect(await call(tab, 'queueFlush')).toEqual({ state: 'synced', pending: 0, failed: ['VALIDATION_FAILED'] })
    const jobs = (await user.client.get('/api/tenant/data/jobs?order=id')).body.items as Array<{ company: string; title: string }>
    expect(jobs.map((j) => [j.company, j.title])).toEqual([
      ['Queue A', 'Offline 2'],
      ['Queue B', 'Offline'],
    ])
    const highlights = (await user.client.get('/api/tenant/data/highlights')).body.items as Array<{ content: string }>
    expect(highlights.map((h) => h.content)).toEqual(['queued highlight'])

    // A write that reached the server but whose answer was lost: queued, replayed under its key, applied once.
    await context.route(/\/api\/tenant\/data\/jobs$/, async (route) => {
      if (route.request().method() !== 'POST') return route.continue()
      await route.fetch()
      return route.abort('connectionreset')
    })
    expect((await call<{ error: string }>(tab, 'queueWrite', 'create', 'jobs', { company: 'Lost answer', title: 'Once', start_date: '2020-01-01' })).error).toBe('QUEUED')
    await context.unrouteAll({ behavior: 'ignoreErrors' })
    expect(await call(tab, 'queueFlush')).toMatchObject({ state: 'synced', pending: 0 })
    expect((await user.client.get('/api/tenant/data/jobs/count?company=Lost%20answer')).body).toEqual({ count: 1 })
    await context.close()
  }, 120_000)

  it('two users never see each other’s data', async () => {
    const contexts = [await browser.newContext(), await browser.newContext()]
    const users = []
    for (const [i, context] of contexts.entries()) {
      const tab = await open(context)
      await call(tab, 'seedLocal', `user${i}-db`, 2, 1)
      const before = await call<LocalRows>(tab, 'localRows', `user${i}-db`)
      const user = await signIn(context, `user${i}-two@example.com`)
      expect(await call<Outcome>(tab, 'claim', `user${i}-db`, { baseUrl: tenantry.url })).toMatchObject({ status: 'committed' })
      users.push({ ...user, before })
    }
    for (const user of users) expect(await serverRows(user.client)).toEqual(expected(user.before))
    // Each one's tenant is invisible to the other, as if it did not exist.
    expect((await users[0]!.client.get(`/api/t/${users[1]!.slug}/data/jobs`)).status).toBe(404)
    expect((await users[1]!.client.get(`/api/t/${users[0]!.slug}/data/jobs`)).status).toBe(404)
    for (const context of contexts) await context.close()
  }, 120_000)
})
