import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, it } from 'vitest'
import type { TenantryConfig } from 'tenantry'
import { createTestDatabase, dropAppRoles, findPostgres, type TestDatabase } from 'tenantry/testing'
import { runCliCaptured } from '@tenantry/cli/testing'
import { Client, signUp, startTestServer, verifyEmail, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections), with small quotas where a test needs them. */
const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url))
const METRICS_TOKEN = 'metrics-token-for-the-quota-test'

let server: TestServer
let root: Client
let owner: Client
let slug: string
let tenantId: string

const job = (description: string | null = null) => ({ company: 'Acme', title: 'Engineer', start_date: '2020-01-01', description })
const BIG = 'x'.repeat(9_000)

beforeAll(async () => {
  const base = (await import(`${REPO_ROOT}tenantry.config.ts`)).default as TenantryConfig
  server = await startTestServer({
    config: { ...base, quotas: { organizationsPerUser: 3 }, usage: { flushIntervalMs: 60_000 } },
    root: REPO_ROOT,
    env: { TENANTRY_PLATFORM_ADMINS: 'root@example.com', TENANTRY_METRICS_TOKEN: METRICS_TOKEN },
  })
  root = await signUp(server, 'root@example.com')
  await verifyEmail(server, 'root@example.com')
  owner = await signUp(server, 'owner@example.com')
  slug = (await owner.get('/api/me')).body.activeTenant.slug
  tenantId = (await server.tenantry.catalog.findTenantBySlug(slug))!.id
})
afterAll(async () => server?.stop())

/** Sends writes until one is refused; returns how many passed and the refusal. */
async function writeUntilRefused(write: () => Promise<{ status: number; body: any }>): Promise<{ passed: number; refusal: { status: number; body: any } }> {
  for (let passed = 0; passed < 200; passed++) {
    const reply = await write()
    if (reply.status >= 400) return { passed, refusal: reply }
  }
  throw new Error('the storage quota never refused a write')
}

async function setQuotas(body: Record<string, number | null>) {
  const reply = await root.request('PUT', `/api/admin/tenants/${slug}/quotas`, body)
  if (reply.status !== 200) throw new Error(`PUT quotas: ${reply.status} ${reply.text}`)
  return reply.body
}

async function count(): Promise<number> {
  return (await owner.get(`/api/t/${slug}/data/jobs/count`)).body.count
}

describe('quotas', () => {
  it('stops data API writes at the SQLite storage quota with QUOTA_EXCEEDED, losing nothing; raising it lets writes go on', async ({ expect }) => {
    for (let i = 0; i < 3; i++) expect((await owner.post(`/api/t/${slug}/data/jobs`, job())).status).toBe(201)
    const before = (await root.get(`/api/admin/tenants/${slug}/quotas`)).body
    expect(before.quotas).toEqual({ storageBytes: 1024 ** 3, tokens: 100, bulkRows: 500, fileBytes: 1024 ** 3 })
    expect(before.usage.fileBytes).toBe(0)
    expect(before.usage.storageBytes).toBeGreaterThan(0)
    await setQuotas({ storageBytes: before.usage.storageBytes + 256 * 1024 })

    const { passed, refusal } = await writeUntilRefused(() => owner.post(`/api/t/${slug}/data/jobs`, job(BIG)))
    expect(refusal.status, JSON.stringify(refusal.body)).toBe(403)
    expect(refusal.body.error.code).toBe('QUOTA_EXCEEDED')
    expect(await count()).toBe(3 + passed)
    // A bulk create that cannot fit writes none of its rows.
    const bulk = await owner.post(`/api/t/${slug}/data/jobs/bulk`, { items: [job(BIG), job(BIG), job(BIG)] })
    expect(bulk.body.error?.code).toBe('QUOTA_EXCEEDED')
    expect(await count()).toBe(3 + passed)
    expect((await owner.get(`/api/t/${slug}/data/jobs?limit=5`)).body.items).toHaveLength(5)

    await setQuotas({ storageBytes: 64 * 1024 * 1024 })
    expect((await owner.post(`/api/t/${slug}/data/jobs`, job(BIG))).status).toBe(201)
    expect(await count()).toBe(4 + passed)
  })

  it('stops SQL-over-HTTP writes at the storage quota with QUOTA_EXCEEDED, and the database stays readable', async ({ expect }) => {
    const created = await owner.post(`/api/t/${slug}/tokens`, { name: 'sql' })
    expect(created.status).toBe(201)
    const sqlClient = new Client(server.url, { authorization: `Bearer ${created.body.token}` })
    const pipeline = (sql: string) => sqlClient.post('/v2/pipeline', { requests: [{ type: 'execute', stmt: { sql } }, { type: 'close' }] })
    const size = (await root.get(`/api/admin/tenants/${slug}/quotas`)).body.usage.storageBytes
    await setQuotas({ storageBytes: size + 256 * 1024 })
    const rows = await count()

    const { passed, refusal } = await writeUntilRefused(() =>
      pipeline(`INSERT INTO jobs (company, title, start_date, description) VALUES ('SQL', 'T', '2020-01-01', hex(randomblob(30000)))`),
    )
    expect(refusal.status).toBe(403)
    expect(refusal.body.error.code).toBe('QUOTA_EXCEEDED')
    const read = await pipeline('SELECT count(*) FROM jobs')
    expect(read.status).toBe(200)
    expect(Number(read.body.results[0].response.result.rows[0][0].value)).toBe(rows + passed)

    await setQuotas({ storageBytes: null })
    expect((await pipeline(`INSERT INTO jobs (company, title, start_date) VALUES ('SQL', 'T', '2020-01-01')`)).status).toBe(200)
  })

  it('refuses a token past the tokens quota', async ({ expect }) => {
    await setQuotas({ tokens: 2 })
    expect((await owner.post(`/api/t/${slug}/tokens`, { name: 'second' })).status).toBe(201)
    const third = await owner.post(`/api/t/${slug}/tokens`, { name: 'third' })
    expect(third.status).toBe(403)
    expect(third.body.error.code).toBe('QUOTA_EXCEEDED')
    expect((await owner.get(`/api/t/${slug}/tokens`)).body.items).toHaveLength(2)
  })

  it('refuses bulk requests of more rows than the bulkRows quota, writing nothing', async ({ expect }) => {
    await setQuotas({ bulkRows: 2 })
    const rows = await count()
    const create = await owner.post(`/api/t/${slug}/data/jobs/bulk`, { items: [job(), job(), job()] })
    expect(create.status).toBe(403)
    expect(create.body.error.code).toBe('QUOTA_EXCEEDED')
    const remove = await owner.post(`/api/t/${slug}/data/jobs/bulk-delete`, { ids: [1, 2, 3] })
    expect(remove.body.error.code).toBe('QUOTA_EXCEEDED')
    expect(await count()).toBe(rows)
    expect((await owner.post(`/api/t/${slug}/data/jobs/bulk`, { items: [job(), job()] })).status).toBe(201)
    // PUT replaces: what it leaves out follows the defaults again.
    expect((await setQuotas({})).quotas).toEqual({ storageBytes: 1024 ** 3, tokens: 100, bulkRows: 500, fileBytes: 1024 ** 3 })
  })

  it('refuses organizations past organizationsPerUser (the personal tenant counts)', async ({ expect }) => {
    const user = await signUp(server, 'many@example.com')
    expect((await user.post('/api/auth/organization/create', { name: 'One', slug: 'many_one' })).status).toBe(200)
    expect((await user.post('/api/auth/organization/create', { name: 'Two', slug: 'many_two' })).status).toBe(200)
    const third = await user.post('/api/auth/organization/create', { name: 'Three', slug: 'many_three' })
    expect(third.status).toBe(403)
    expect(third.text).toContain('QUOTA_EXCEEDED')
    expect(await server.tenantry.catalog.findTenantBySlug('many_three')).toBeUndefined()
  })

  it('lets only platform admins set quotas, and only the tenant’s managers read them', async ({ expect }) => {
    const stranger = await signUp(server, 'stranger@example.com')
    expect((await stranger.get(`/api/admin/tenants/${slug}/quotas`)).status).toBe(404)
    expect((await stranger.get(`/api/admin/tenants/${slug}/usage`)).status).toBe(404)
    expect((await stranger.request('PUT', `/api/admin/tenants/${slug}/quotas`, { tokens: 1000 })).status).toBe(403)
    // The tenant's owner may read, not raise, its own quotas.
    expect((await owner.get(`/api/admin/tenants/${slug}/quotas`)).status).toBe(200)
    const raise = await owner.request('PUT', `/api/admin/tenants/${slug}/quotas`, { storageBytes: null })
    expect(raise.status).toBe(403)
    expect((await root.request('PUT', `/api/admin/tenants/${slug}/quotas`, { storage: 1 })).body.error.code).toBe('VALIDATION_FAILED')
    expect((await root.request('PUT', `/api/admin/tenants/${slug}/quotas`, { tokens: -1 })).body.error.code).toBe('VALIDATION_FAILED')
  })

  it('meters usage per tenant: admin API, /metrics (by tenant id) and the CLI', async ({ expect }) => {
    const usage = (await owner.get(`/api/admin/tenants/${slug}/usage?days=7`)).body
    expect(usage.tenantId).toBe(tenantId)
    expect(usage.days).toHaveLength(1)
    const today = usage.days[0]
    expect(today.requests).toBeGreaterThan(10)
    expect(today.statements).toBeGreaterThan(10)
    expect(today.rowsWritten).toBeGreaterThan(5)
    expect(today.rowsRead).toBeGreaterThan(0)
    expect(today.storageBytes).toBeGreaterThan(0)

    const metrics = await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text()
    expect(metrics).toMatch(new RegExp(`tenantry_tenant_requests_total\\{tenant="${tenantId}"\\} [1-9]`))
    expect(metrics).toMatch(new RegExp(`tenantry_tenant_statements_total\\{tenant="${tenantId}"\\} [1-9]`))
    expect(metrics).toMatch(new RegExp(`tenantry_tenant_rows_written_total\\{tenant="${tenantId}"\\} [1-9]`))
    expect(metrics).not.toContain(slug)

    await server.tenantry.usage.flush()
    const cli = (args: string[]) => runCliCaptured(args, { cwd: REPO_ROOT, env: { TENANTRY_HOME: server.home, TENANTRY_CATALOG_URL: undefined } })
    const shown = await cli(['tenant', 'usage', slug, '--json', '--days', '2'])
    expect(shown.code, shown.stderr).toBe(0)
    expect(JSON.parse(shown.stdout).days[0].statements).toBeGreaterThanOrEqual(today.statements)
    const quota = await cli(['tenant', 'quota', slug, '--tokens', '7', '--json'])
    expect(quota.code, quota.stderr).toBe(0)
    expect(JSON.parse(quota.stdout)).toMatchObject({ quotas: { tokens: 7 }, overrides: { tokens: 7 }, usage: { tokens: 2 } })
    const bad = await cli(['tenant', 'quota', slug, '--storage', '12XB'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--storage: Invalid size "12XB"')
    expect((await cli(['tenant', 'quota', slug])).stdout).toMatch(/tokens\s+7\s+2/)
    // The tenant's files quota (tenantry.files), shown with what its files take.
    const files = await cli(['tenant', 'quota', slug, '--files', '5MB', '--json'])
    expect(files.code, files.stderr).toBe(0)
    expect(JSON.parse(files.stdout)).toMatchObject({ quotas: { fileBytes: 5 * 1024 ** 2 }, overrides: { fileBytes: 5 * 1024 ** 2 }, usage: { fileBytes: 0 } })
    expect((await cli(['tenant', 'quota', slug])).stdout).toMatch(/files\s+5 MB\s+0 B/)
  })
})

const postgres = await findPostgres()
describe.skipIf('skip' in postgres)('quotas on Postgres (checked, not enforced)', () => {
  let pgServer: TestServer
  let db: TestDatabase
  beforeAll(async () => {
    const url = (postgres as { url: string }).url
    db = await createTestDatabase(url)
    const base = (await import(`${REPO_ROOT}tenantry.config.ts`)).default as TenantryConfig
    pgServer = await startTestServer({
      config: {
        ...base,
        dataSources: [{ id: 'quota_pg', engine: 'postgres', url: db.url, isolations: ['schema'] }],
        defaults: { isolation: 'schema', dataSource: 'quota_pg' },
        quotas: { storageCheckIntervalMs: 1 },
      },
      root: REPO_ROOT,
      env: { TENANTRY_PLATFORM_ADMINS: 'root@pg.example.com' },
    })
  })
  afterAll(async () => {
    await pgServer?.stop()
    await dropAppRoles((postgres as { url: string }).url, ['quota_pg']).catch(() => {})
    await db?.drop()
  })

  it('refuses data API writes once the measured size reaches the storage quota; raising it lets writes go on', async ({ expect }) => {
    const admin = await signUp(pgServer, 'root@pg.example.com')
    await verifyEmail(pgServer, 'root@pg.example.com')
    const user = await signUp(pgServer, 'user@pg.example.com')
    const own = (await user.get('/api/me')).body.activeTenant.slug
    expect((await user.post(`/api/t/${own}/data/jobs`, job(BIG))).status).toBe(201)
    const size = (await admin.get(`/api/admin/tenants/${own}/quotas`)).body.usage.storageBytes
    expect(size).toBeGreaterThan(0)
    expect((await admin.request('PUT', `/api/admin/tenants/${own}/quotas`, { storageBytes: size })).status).toBe(200)
    const refused = await user.post(`/api/t/${own}/data/jobs`, job())
    expect(refused.status).toBe(403)
    expect(refused.body.error.code).toBe('QUOTA_EXCEEDED')
    // Reads and deletes go on: they free space, and must stay possible at the quota.
    expect((await user.get(`/api/t/${own}/data/jobs/count`)).body.count).toBe(1)
    expect((await admin.request('PUT', `/api/admin/tenants/${own}/quotas`, { storageBytes: size * 10 })).status).toBe(200)
    expect((await user.post(`/api/t/${own}/data/jobs`, job())).status).toBe(201)
  })
})
