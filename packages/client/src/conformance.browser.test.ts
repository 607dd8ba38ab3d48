import type { Server } from 'node:http'
import { fileURLToPath } from 'node:url'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TenantryConfig } from 'tenantry'
import { Client, signUp, startTestServer, type TestServer } from '@tenantry/server/testing'
import repoConfig from '../../../tenantry.config.js'
import { bundleForPage, haveChromium, launchChromium, servePage } from './testing/chromium.fixture.js'

/**
 * The conformance suite (`@tenantry/client/testing`) in real Chromium, once against the remote
 * backend (a Tenantry server on another origin: CORS, the session cookie, the Origin check) and
 * once against the local backend (IndexedDB in the same browser): every step must observe the
 * same thing, and the values the suite is about are checked too, so two backends that agree on
 * a wrong answer still fail.
 *
 * Chromium is Debian's package (`scripts/ensure.mjs` installs it under `npm test` as root),
 * never a downloaded browser.
 */
const at = (path: string) => fileURLToPath(new URL(path, import.meta.url))

const withChromium = haveChromium('the browser tests')

/** The page's script: the client, the suite and the CV builder's declarations, bundled by Vite for the browser. */
function bundle(): Promise<string> {
  return bundleForPage(
    `import { createClient, localBackend, remoteBackend } from ${JSON.stringify(at('./index.ts'))}
import { runConformance } from ${JSON.stringify(at('./testing/index.ts'))}
import { collections, localDefaults } from ${JSON.stringify(at('../../../examples/cv-builder/collections.ts'))}
globalThis.conformance = async (kind, options) => {
  const backend = kind === 'local'
    ? localBackend({ collections, defaults: localDefaults, name: options.name })
    : remoteBackend({ collections, baseUrl: options.baseUrl, tenant: options.tenant })
  const client = createClient({ backend })
  try { return await runConformance(client) } finally { await client.close() }
}
globalThis.localIds = async (name) => {
  const backend = localBackend({ collections, defaults: localDefaults, name })
  try { return (await backend.list('jobs', { order: 'id', limit: 100 })).items.map((r) => r.id) } finally { await backend.close() }
}
globalThis.remoteError = async (options) => {
  try { await remoteBackend({ collections, ...options }).list('jobs', {}); return null } catch (e) { return { name: e.name, code: e.code, status: e.status } }
}
`,
  )
}


type Observation = { step: string; value: unknown }

describe.skipIf(!withChromium)('@tenantry/client conformance in Chromium', () => {
  let tenantry: TestServer
  let page: { origin: string; server: Server }
  let browser: Browser
  let tab: Page
  let slug: string
  let cookieHeader: string
  const localName = `conformance-${Date.now()}`
  const results: Record<'remote' | 'local', Observation[]> = { remote: [], local: [] }

  beforeAll(async () => {
    page = await servePage(await bundle(), 'tenantry conformance')
    const config: TenantryConfig = { ...repoConfig, server: { ...(repoConfig.server as Record<string, unknown>), cors: { origins: [page.origin] } } }
    tenantry = await startTestServer({ config, env: { TENANTRY_TRUSTED_ORIGINS: '' } })
    const user = await signUp(tenantry, 'browser@example.com')
    slug = (await user.get('/api/me')).body.activeTenant.slug
    cookieHeader = [...user.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    browser = await launchChromium()
    const context = await browser.newContext()
    // The session as the browser would hold it after signing in on the server's origin.
    await context.addCookies([...user.cookies].map(([name, value]) => ({ name, value, url: tenantry.url })))
    tab = await context.newPage()
    const errors: string[] = []
    tab.on('pageerror', (error) => errors.push(error.message))
    await tab.goto(`${page.origin}/`)
    await tab.waitForFunction(() => typeof (globalThis as { conformance?: unknown }).conformance === 'function', undefined, { timeout: 20_000 })
    expect(errors).toEqual([])
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await tenantry?.stop()
    await new Promise((resolve) => page?.server.close(resolve))
  })

  const run = (kind: 'remote' | 'local', options: Record<string, string>) =>
    tab.evaluate(
      ([kind, options]) => (globalThis as unknown as { conformance: (k: string, o: unknown) => Promise<Observation[]> }).conformance(kind, options),
      [kind, options] as const,
    )

  it('runs against the remote backend: a Tenantry server on another origin, with the session cookie', async () => {
    results.remote = await run('remote', { baseUrl: tenantry.url, tenant: slug })
    checkExpected(results.remote)
  }, 120_000)

  it('runs against the local backend (IndexedDB in the same Chromium)', async () => {
    results.local = await run('local', { name: localName })
    checkExpected(results.local)
  }, 120_000)

  it('keeps the local data across a reload (IndexedDB)', async () => {
    await tab.reload()
    await tab.waitForFunction(() => typeof (globalThis as { localIds?: unknown }).localIds === 'function', undefined, { timeout: 20_000 })
    const ids = await tab.evaluate((name) => (globalThis as unknown as { localIds: (n: string) => Promise<number[]> }).localIds(name), localName)
    // The suite ends by deleting its first job (and one more it made), so 2 and 6–12 remain.
    expect(ids).toEqual([2, 6, 7, 8, 9, 10, 11, 12])
  })

  it('passes the server’s error codes through CORS: a tenant the user is not in, and no session', async () => {
    const evaluate = (target: Page, options: Record<string, string>) =>
      target.evaluate((o) => (globalThis as unknown as { remoteError: (o: unknown) => Promise<unknown> }).remoteError(o), options)
    const foreign = await evaluate(tab, { baseUrl: tenantry.url, tenant: 'no-such-tenant' })
    const expected = await new Client(tenantry.url).get('/api/t/no-such-tenant/data/jobs', { cookie: cookieHeader })
    expect(foreign).toEqual({ name: 'TenantryClientError', code: expected.body.error.code, status: expected.status })
    // A browser with no session: the server's 401, readable cross-origin.
    const anonymous = await (await browser.newContext()).newPage()
    await anonymous.goto(`${page.origin}/`)
    await anonymous.waitForFunction(() => typeof (globalThis as { remoteError?: unknown }).remoteError === 'function', undefined, { timeout: 20_000 })
    const signedOut = await evaluate(anonymous, { baseUrl: tenantry.url, tenant: slug })
    const plain = await new Client(tenantry.url).get(`/api/t/${slug}/data/jobs`)
    expect(plain.status).toBe(401)
    expect(signedOut).toEqual({ name: 'TenantryClientError', code: plain.body.error.code, status: 401 })
  })

  it('observes the same on both backends, step by step', () => {
    expect(results.remote.length).toBeGreaterThan(50)
    expect(results.local.map((o) => o.step)).toEqual(results.remote.map((o) => o.step))
    results.remote.forEach((remote, i) => expect(results.local[i]!.value, remote.step).toEqual(remote.value))
  })
})

/** The values the suite is about, on one backend's record. */
function checkExpected(observations: Observation[]): void {
  const seen = new Map(observations.map((o) => [o.step, o.value]))
  const value = (step: string) => {
    expect(seen.has(step), step).toBe(true)
    return seen.get(step)
  }
  const invalid = { error: 'VALIDATION_FAILED', status: 400 }
  const missing = { error: 'NOT_FOUND', status: 404 }
  expect(value('create')).toMatchObject({ id: 1, company: 'Initech', location: 'Austin', end_date: null, description: null, created_at: '<timestamp>' })
  expect(value('update: set nullable to null')).toMatchObject({ id: 1, title: 'CTO', end_date: '2021-01-01', location: null })
  for (const step of ['get missing', 'update missing', 'delete missing', 'get deleted']) expect(value(step), step).toEqual(missing)
  expect(value('highlight with the table defaults')).toMatchObject({ id: 1, job_id: 1, domains: '[]', skills: '[]', metric: null, hidden: false, position: 0 })
  for (const step of [
    'create: required missing',
    'create: unknown field',
    'create: generated field',
    'create: too long',
    'create: null where not nullable',
    'create: wrong type',
    'create: not a date',
    'highlight: not a boolean',
    'highlight: not an integer',
    'update: nothing to change',
    'update: unknown field',
    'bulk: one invalid item refuses all',
    'bulk: empty',
    'bulk: over 500',
    'cursor of another order',
    'cursor: garbage',
    'filter: not filterable',
    'filter: unknown operator',
    'filter: wrong type',
    'search: too long',
    'list: order not sortable',
    'list: limit over max',
    'list: limit zero',
    'bulk delete: empty',
  ]) {
    expect(value(step), step).toEqual(invalid)
  }
  expect(value('create: longest allowed')).toMatchObject({ id: 2 })
  expect(value('count after refused writes')).toBe(2)
  expect(value('count after refused bulks')).toBe(2)
  expect(value('count after bulk')).toBe(12)
  // Nulls first ascending, last descending; ties by id in the same direction.
  const byLocation = value('list: location ascending') as Array<[number, string | null]>
  expect(byLocation.slice(0, 5)).toEqual([[1, null], [2, null], [3, null], [6, null], [9, null]])
  const byLocationDesc = value('list: location descending') as Array<[number, string | null]>
  expect(byLocationDesc.slice(0, 3)).toEqual([[11, 'Zürich'], [8, 'Zürich'], [5, 'Zürich']])
  expect(byLocationDesc.slice(-6)).toEqual([[12, null], [9, null], [6, null], [3, null], [2, null], [1, null]])
  const companies = value('list: company ascending (code point order)') as string[]
  // By code point, as SQLite's binary collation: upper case before lower, ASCII before Ä before Σ.
  expect(companies).toEqual(['Acme', 'Acme', 'Globex', 'Hooli', 'Initech', 'Stark 50%', 'Umbrella', 'arztpraxis', 'y'.repeat(200), 'ÄRZTE ohne Grenzen', 'Ärzte-Verband', 'Σίσυφος'])
  for (const order of ['-location', 'location', 'end_date', '-start_date', 'id']) {
    const pages = value(`pages of 3 by ${order}`) as Array<{ ids: number[]; nextCursor: string | null }>
    const all = pages.flatMap((p) => p.ids)
    expect(pages, order).toHaveLength(4)
    expect([...all].sort((a, b) => a - b), order).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  }
  expect(value('filter: equals')).toEqual([8, 3])
  expect(value('filter: is null')).toEqual([1, 2, 3, 6, 9, 12])
  expect(value('filter: is not null')).toEqual([4, 5, 7, 8, 10, 11])
  expect(value('filter: not equal leaves nulls out')).toEqual([5, 8, 11])
  expect(value('filter: id greater')).toEqual([9, 10, 11, 12])
  expect(value('filter: range')).toEqual([5, 6, 7])
  expect(value('filter: boolean')).toEqual([[1, false]])
  expect(value('search ÄRZTE')).toEqual([5, 7])
  expect(value('search ärzte')).toEqual([5, 7])
  expect(value('search ÄRZT')).toEqual([5, 6, 7])
  expect(value('search arzt')).toEqual([12])
  expect(value('search ΣΊΣΥΦΟΣ')).toEqual([10])
  expect(value('search σίσυφος')).toEqual([10])
  expect(value('search 50%')).toEqual([9])
  expect(value('search %')).toEqual([9])
  expect(value('search _')).toEqual([])
  expect(value('search engineer')).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  expect(value('search zürich')).toEqual([])
  expect(value('search highlights')).toEqual([1])
  expect(value('count: all')).toBe(12)
  expect(value('count: search')).toBe(2)
  expect(value('count: null filter')).toBe(6)
  expect(value('bulk delete, one id unknown')).toBe(2)
  expect(value('count at the end')).toBe(9)
  expect(value('highlight of a missing job')).toEqual({ error: 'CONSTRAINT_VIOLATION', status: 409 })
  expect(value('highlights of the first job')).toBe(2)
  expect(value('its highlights went with it')).toBe(0)
  expect(value('bulk delete cascades too')).toBe(1)
  expect(value('highlights at the end')).toBe(0)
}
