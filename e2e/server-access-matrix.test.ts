import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { Client, signUp, startTestServer, verifyEmail, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../tenantry.config.ts', import.meta.url))

/**
 * Every route × every kind of caller → the expected status, over two tenants whose rows
 * collide (both have job id 1), and no response may carry the other tenant's data.
 */
let server: TestServer
const actors: Record<string, Client> = {}

const ACTORS = ['none', 'other', 'member', 'admin', 'platform', 'unverifiedPlatform', 'token', 'readOnlyToken', 'otherToken', 'expiredToken', 'revokedToken'] as const
type Actor = (typeof ACTORS)[number]

async function invite(owner: Client, orgId: string, email: string, role: 'member' | 'admin'): Promise<Client> {
  const client = await signUp(server, email)
  const inv = await owner.post('/api/auth/organization/invite-member', { email, role, organizationId: orgId })
  await verifyEmail(server, email)
  const ok = await client.post('/api/auth/organization/accept-invitation', { invitationId: inv.body.id })
  if (ok.status !== 200) throw new Error(`accept ${email}: ${ok.text}`)
  return client
}

beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG, env: { TENANTRY_PLATFORM_ADMINS: 'root@example.com, fake-root@example.com' } })
  const ownerA = await signUp(server, 'owner-a@example.com')
  const alpha = await ownerA.post('/api/auth/organization/create', { name: 'Alpha', slug: 'alpha' })
  const ownerB = await signUp(server, 'owner-b@example.com')
  await ownerB.post('/api/auth/organization/create', { name: 'Beta', slug: 'beta' })
  expect2((await ownerA.post('/api/t/alpha/data/jobs', { company: 'Alpha Secret', title: 'A', start_date: '2020-01-01' })).body.id, 1)
  expect2((await ownerB.post('/api/t/beta/data/jobs', { company: 'Beta Secret', title: 'B', start_date: '2020-01-01' })).body.id, 1)

  actors.none = new Client(server.url)
  actors.other = ownerB
  actors.member = await invite(ownerA, alpha.body.id, 'member-a@example.com', 'member')
  actors.admin = await invite(ownerA, alpha.body.id, 'admin-a@example.com', 'admin')
  actors.platform = await signUp(server, 'root@example.com')
  actors.unverifiedPlatform = await signUp(server, 'fake-root@example.com')
  // The operator verified root's address; fake-root's never was.
  await verifyEmail(server, 'root@example.com')

  const bearer = (token: string) => new Client(server.url, { authorization: `Bearer ${token}` })
  actors.token = bearer((await server.tenantry.tokens.create('alpha', { readOnly: false })).token)
  actors.readOnlyToken = bearer((await server.tenantry.tokens.create('alpha', { readOnly: true })).token)
  actors.otherToken = bearer((await server.tenantry.tokens.create('beta', { readOnly: false })).token)
  actors.expiredToken = bearer((await server.tenantry.tokens.create('alpha', { readOnly: false, expiresIn: 1 })).token)
  const revoked = await server.tenantry.tokens.create('alpha', { readOnly: false })
  await server.tenantry.tokens.revoke(revoked.record.id)
  actors.revokedToken = bearer(revoked.token)
  await new Promise((r) => setTimeout(r, 20))
})
afterAll(async () => server?.stop())

function expect2(actual: unknown, expected: unknown) {
  if (actual !== expected) throw new Error(`setup: expected ${String(expected)}, got ${String(actual)}`)
}

type Row = { method: string; path: string; body?: unknown; expect: Record<Actor, number> }
const job = { company: 'New', title: 'T', start_date: '2021-01-01' }

/** Statuses for reads and writes of alpha's data by path. */
const read = { none: 401, other: 404, member: 200, admin: 200, platform: 200, unverifiedPlatform: 404, token: 200, readOnlyToken: 200, otherToken: 404, expiredToken: 401, revokedToken: 401 }
const write = (ok: number) => ({ ...read, member: ok, admin: ok, platform: ok, token: ok, readOnlyToken: 403 })
const active = { none: 401, other: 200, member: 200, admin: 200, platform: 200, unverifiedPlatform: 200, token: 200, readOnlyToken: 200, otherToken: 200, expiredToken: 401, revokedToken: 401 }
const platformOnly = { none: 401, other: 403, member: 403, admin: 403, platform: 200, unverifiedPlatform: 403, token: 403, readOnlyToken: 403, otherToken: 403, expiredToken: 401, revokedToken: 401 }

const ROWS: Row[] = [
  { method: 'GET', path: '/api/t/alpha/data/jobs', expect: read },
  { method: 'GET', path: '/api/t/alpha/data/jobs/1', expect: read },
  { method: 'GET', path: '/api/t/alpha/data/jobs/count', expect: read },
  { method: 'GET', path: '/api/t/alpha/data/jobs?q=secret', expect: read },
  { method: 'GET', path: '/api/t/alpha/data/highlights', expect: read },
  { method: 'POST', path: '/api/t/alpha/data/jobs', body: job, expect: write(201) },
  { method: 'POST', path: '/api/t/alpha/data/jobs/bulk', body: { items: [job] }, expect: write(201) },
  { method: 'PATCH', path: '/api/t/alpha/data/jobs/1', body: { title: 'A' }, expect: write(200) },
  { method: 'DELETE', path: '/api/t/alpha/data/jobs/999', expect: write(404) },
  { method: 'POST', path: '/api/t/alpha/data/jobs/bulk-delete', body: { ids: [999] }, expect: write(200) },
  { method: 'GET', path: '/api/t/nosuch/data/jobs', expect: { ...read, member: 404, admin: 404, platform: 404, token: 404, readOnlyToken: 404 } },
  { method: 'GET', path: '/api/tenant/data/jobs', expect: active },
  // Accepting an invitation makes that tenant active; root's active tenant is its empty personal one.
  { method: 'GET', path: '/api/tenant/data/jobs/1', expect: { ...active, platform: 404, unverifiedPlatform: 404 } },
  { method: 'GET', path: '/api/me', expect: { ...active } },
  { method: 'GET', path: '/api/admin/tenants', expect: { ...platformOnly, other: 200, member: 200, admin: 200, unverifiedPlatform: 200 } },
  { method: 'GET', path: '/api/admin/tenants/alpha', expect: { ...platformOnly, other: 404, admin: 200, unverifiedPlatform: 404 } },
  { method: 'GET', path: '/api/admin/migrations', expect: platformOnly },
  { method: 'GET', path: '/api/admin/migrations/run', expect: platformOnly },
  { method: 'GET', path: '/api/admin/data-sources', expect: platformOnly },
]

describe('access matrix', () => {
  it('answers every route × caller as expected, and never with another tenant\'s data', async ({ expect }) => {
    const failures: string[] = []
    for (const row of ROWS) {
      for (const actor of ACTORS) {
        const reply = await actors[actor]!.request(row.method, row.path, row.body)
        const where = `${actor} ${row.method} ${row.path}`
        if (reply.status !== row.expect[actor]) failures.push(`${where}: ${reply.status} (expected ${row.expect[actor]}) ${reply.text.slice(0, 120)}`)
        // Alpha's callers never see beta's rows and vice versa; outsiders see neither.
        const seesAlpha = ['member', 'admin', 'platform', 'token', 'readOnlyToken'].includes(actor)
        const seesBeta = ['other', 'otherToken'].includes(actor) || (actor === 'platform' && row.path.includes('/beta/'))
        if (!seesAlpha && reply.text.includes('Alpha Secret')) failures.push(`${where}: leaked alpha's data`)
        if (!seesBeta && reply.text.includes('Beta Secret')) failures.push(`${where}: leaked beta's data`)
        if (reply.status >= 400) {
          if (typeof reply.body?.error?.code !== 'string' || typeof reply.body?.error?.message !== 'string') failures.push(`${where}: error body ${reply.text}`)
        }
      }
    }
    expect(failures).toEqual([])
  })

  it('a tenant not yours and one that does not exist answer the same', async ({ expect }) => {
    const [alpha, nosuch] = await Promise.all([actors.other!.get('/api/t/alpha/data/jobs/1'), actors.other!.get('/api/t/nosuch/data/jobs/1')])
    expect(alpha.status).toBe(nosuch.status)
    expect(alpha.body).toEqual(nosuch.body)
    const [tokenAlpha, tokenNosuch] = await Promise.all([actors.otherToken!.get('/api/t/alpha/data/jobs'), actors.otherToken!.get('/api/t/nosuch/data/jobs')])
    expect(tokenAlpha.body).toEqual(tokenNosuch.body)
  })

  it('job 1 is each tenant\'s own job 1', async ({ expect }) => {
    expect((await actors.token!.get('/api/tenant/data/jobs/1')).body.company).toBe('Alpha Secret')
    expect((await actors.otherToken!.get('/api/tenant/data/jobs/1')).body.company).toBe('Beta Secret')
    expect((await actors.other!.get('/api/t/beta/data/jobs/1')).body.company).toBe('Beta Secret')
    expect((await actors.platform!.get('/api/t/beta/data/jobs/1')).body.company).toBe('Beta Secret')
  })

  it('a suspended tenant answers 409 to its members and 404 to everyone else; owners and platform admins resume it', async ({ expect }) => {
    expect((await actors.member!.post('/api/admin/tenants/alpha/suspend')).status).toBe(403)
    expect((await actors.other!.post('/api/admin/tenants/alpha/suspend')).status).toBe(404)
    const suspended = await actors.admin!.post('/api/admin/tenants/alpha/suspend')
    expect(suspended.body.status).toBe('suspended')
    expect((await actors.member!.get('/api/t/alpha/data/jobs')).body.error.code).toBe('TENANT_NOT_READY')
    expect((await actors.member!.get('/api/t/alpha/data/jobs')).status).toBe(409)
    expect((await actors.other!.get('/api/t/alpha/data/jobs')).status).toBe(404)
    expect((await actors.platform!.post('/api/admin/tenants/alpha/resume')).body.status).toBe('ready')
    expect((await actors.member!.get('/api/t/alpha/data/jobs')).status).toBe(200)
  })
})
