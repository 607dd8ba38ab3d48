import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { signUp, startTestServer, verifyEmail, type Client, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))

let server: TestServer
let root: Client
beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG, env: { TENANTRY_PLATFORM_ADMINS: 'root@example.com' } })
  root = await signUp(server, 'root@example.com')
  await verifyEmail(server, 'root@example.com')
})
afterAll(async () => server?.stop())

describe('admin API', () => {
  it('creates a tenant with an owner, runs the fan-out, lists data sources, and purges', async ({ expect }) => {
    const owner = await signUp(server, 'cust@example.com')
    const created = await root.post('/api/admin/tenants', { slug: 'globex', name: 'Globex', isolation: 'database', dataSource: 'local', ownerEmail: 'cust@example.com' })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ slug: 'globex', status: 'ready', placement: { isolation: 'database', dataSourceId: 'local' } })
    expect((await owner.get('/api/me')).body.tenants.map((t: { slug: string; role: string }) => [t.slug, t.role])).toContainEqual(['globex', 'owner'])
    expect((await root.post('/api/admin/tenants', { slug: 'globex' })).body.error.code).toBe('SLUG_TAKEN')
    expect((await root.post('/api/admin/tenants', { slug: 'Bad Slug' })).body.error.code).toBe('INVALID_SLUG')

    const report = await root.post('/api/admin/migrations/run', { concurrency: 2 })
    expect(report.status).toBe(200)
    expect(report.body.failed).toBe(0)
    expect((await root.get('/api/admin/migrations/run')).body.run).toMatchObject({ running: false })
    expect((await root.get('/api/admin/migrations')).body.behind).toEqual([])
    expect((await root.get('/api/admin/data-sources')).body.dataSources.map((d: { id: string }) => d.id)).toEqual(['local'])

    await owner.post('/api/t/globex/data/jobs', { company: 'G', title: 'T', start_date: '2020-01-01' })
    const purged = await owner.delete('/api/admin/tenants/globex?purge=true')
    expect(purged.body.status).toBe('deleted')
    expect((await owner.get('/api/t/globex/data/jobs')).status).toBe(404)
    // The slug is free again, for a tenant and for an organization.
    expect((await owner.post('/api/auth/organization/create', { name: 'Globex 2', slug: 'globex' })).status).toBe(200)
    expect((await owner.get('/api/t/globex/data/jobs')).body.items).toEqual([])
  })

  it('erases a tenant (platform admins only): its organization and memberships end, one audit entry remains', async ({ expect }) => {
    const owner = await signUp(server, 'erase-me@example.com')
    expect((await root.post('/api/admin/tenants', { slug: 'erasable', name: 'Erase Me Inc', ownerEmail: 'erase-me@example.com' })).status).toBe(201)
    expect((await owner.get('/api/me')).body.tenants.map((t: { slug: string }) => t.slug)).toContain('erasable')
    const refused = await owner.post('/api/admin/tenants/erasable/erase')
    expect(refused.status).toBe(403)
    const erased = await root.post('/api/admin/tenants/erasable/erase')
    expect(erased.status, JSON.stringify(erased.body)).toBe(200)
    expect(erased.body.removed).toMatchObject({ organizations: 1, tokens: 0, services: { files: { files: 0, bytes: 0 } } })
    expect((await owner.get('/api/me')).body.tenants.map((t: { slug: string }) => t.slug)).not.toContain('erasable')
    const audit = await server.tenantry.catalog.auditLog(erased.body.tenantId)
    expect(audit.map((e) => e.action)).toEqual(['tenant.erased'])
    expect(JSON.stringify(audit)).not.toContain('erase-me@example.com')
    expect((await root.post('/api/admin/tenants/erasable/erase')).status).toBe(404)
    // The slug is free again.
    expect((await root.post('/api/admin/tenants', { slug: 'erasable' })).status).toBe(201)
  })
})
