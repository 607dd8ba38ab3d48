import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, it } from 'vitest'
import type { Tenantry, TenantLimitOverrides, TenantryConfig } from 'tenantry'
import { parseServerConfig } from '@tenantry/server'
import { Client, signUp, startTestServer, verifyEmail, type TestServer } from '@tenantry/server/testing'
import { limitsOf } from './tenant-limits.js'

// Issue 8: a tenant's plan and its SQL-over-HTTP and data API limits were set only in the server
// config by slug (a restart to change). Now they are per tenant in the catalog, over the config.

const notes = {
  up: async (db: Kysely<any>) => {
    await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('title', 'text').addColumn('body', 'text').execute()
  },
}

const config: TenantryConfig = {
  migrations: { tenant: { '0001_notes': notes } },
  server: {
    collections: {
      notes: {
        columns: { id: { type: 'integer', generated: true }, title: { type: 'text', searchable: true }, body: { type: 'text', nullable: true, searchable: true, maxLength: 20_000 } },
      },
    },
    limits: { plans: { small: { tenant: 100, token: 3 }, pro: { tenant: 1000, token: 500 } }, tenants: { acme: 'small' } },
    sqlOverHttp: { tenants: { acme: { statementTimeoutMs: 4000, maxStreams: 5 } } },
  },
}

describe('per-tenant limits in the catalog', () => {
  let server: TestServer
  let root: Client
  let owner: Client
  let token: string
  beforeAll(async () => {
    server = await startTestServer({ config, env: { TENANTRY_PLATFORM_ADMINS: 'root@example.com' } })
    root = await signUp(server, 'root@example.com')
    await verifyEmail(server, 'root@example.com')
    await server.tenantry.createTenant({ slug: 'acme' })
    owner = await signUp(server, 'owner@example.com')
    ;({ token } = await server.tenantry.tokens.create('acme', { readOnly: false, createdBy: 'test' }))
  })
  afterAll(async () => server?.stop())

  it('shows effective limits and their source; PUT is for platform admins and refuses unknown plans, changing nothing', async ({ expect }) => {
    const before = await root.get('/api/admin/tenants/acme/limits')
    expect(before.status, before.text).toBe(200)
    expect(before.body.limits).toMatchObject({
      plan: { value: 'small', source: 'config' },
      rates: { tenant: 100, token: 3 },
      sqlStatementTimeoutMs: { value: 4000, source: 'config' },
      sqlMaxStreams: { value: 5, source: 'config' },
      sqlTransactionTimeoutMs: { value: null, source: 'default' },
      dataApiStatementTimeoutMs: { value: null, source: 'default' },
    })
    expect(before.body.plans).toEqual(['default', 'small', 'pro'])

    const unknown = await root.request('PUT', '/api/admin/tenants/acme/limits', { plan: 'platinum' })
    expect(unknown.status).toBe(400)
    expect(unknown.body.error.code).toBe('INVALID_OPTION')
    expect(unknown.body.error.message).toMatch(/Unknown plan "platinum"/)
    expect((await root.request('PUT', '/api/admin/tenants/acme/limits', { sqlMaxStreams: 0 })).status).toBe(400)
    expect((await root.request('PUT', '/api/admin/tenants/acme/limits', { sqlTimeout: 5 })).status).toBe(400)
    // Platform admins only: another tenant's owner, and (below) a tenant's own owner, are refused.
    expect((await owner.request('PUT', '/api/admin/tenants/acme/limits', { plan: 'pro' })).status).toBe(403)
    expect((await root.get('/api/admin/tenants/acme/limits')).body.overrides).toEqual({})

    const ownSlug = (await owner.get('/api/me')).body.activeTenant.slug as string
    expect((await owner.get(`/api/admin/tenants/${ownSlug}/limits`)).status).toBe(200)
    expect((await owner.request('PUT', `/api/admin/tenants/${ownSlug}/limits`, { plan: 'pro' })).status).toBe(403)
  })

  it('a plan set in the catalog applies at once over the config’s', async ({ expect }) => {
    const client = new Client(server.url, { authorization: `Bearer ${token}` })
    // small: 3 requests per token per window.
    for (let i = 0; i < 3; i++) expect((await client.get('/api/tenant/data/notes')).status).toBe(200)
    expect((await client.get('/api/tenant/data/notes')).status).toBe(429)
    const put = await root.request('PUT', '/api/admin/tenants/acme/limits', { plan: 'pro' })
    expect(put.status, put.text).toBe(200)
    expect(put.body.limits.plan).toEqual({ value: 'pro', source: 'tenant' })
    expect(put.body.limits.rates).toMatchObject({ tenant: 1000, token: 500 })
    for (let i = 0; i < 3; i++) expect((await client.get('/api/tenant/data/notes')).status).toBe(200)
    const log = await server.tenantry.catalog.auditLog((await server.tenantry.catalog.findTenantBySlug('acme'))!.id)
    expect(log.some((e) => e.action === 'limits.set' && e.actor.startsWith('user:'))).toBe(true)
  })

  it('SQL-over-HTTP streams follow the tenant’s own sqlMaxStreams', async ({ expect }) => {
    await server.tenantry.limits.set('acme', { sqlMaxStreams: 1 })
    const pipeline = (body: unknown) =>
      fetch(`${server.url}/v2/pipeline`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as any }),
      )
    const held = await pipeline({ requests: [{ type: 'execute', stmt: { sql: 'BEGIN' } }] })
    expect(held.status).toBe(200)
    try {
      const second = await pipeline({ requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }] })
      expect(second.status).toBe(429)
    } finally {
      await pipeline({ baton: held.body.baton, requests: [{ type: 'execute', stmt: { sql: 'ROLLBACK' } }, { type: 'close' }] })
    }
    const view = (await root.get('/api/admin/tenants/acme/limits')).body
    expect(view.limits.sqlMaxStreams).toEqual({ value: 1, source: 'tenant' })
    // Still the config's where the tenant sets nothing.
    expect(view.limits.sqlStatementTimeoutMs).toEqual({ value: 4000, source: 'config' })
  })

  it('the data API deadline follows the tenant’s own dataApiStatementTimeoutMs', async ({ expect }) => {
    const put = await root.request('PUT', '/api/admin/tenants/acme/limits', { plan: 'pro', dataApiStatementTimeoutMs: 100 })
    expect(put.body.limits.dataApiStatementTimeoutMs).toEqual({ value: 100, source: 'tenant' })
    // A SQL-over-HTTP transaction holds the write lock: a data API write waits on it until its
    // deadline (the tenant's 100 ms), not the executor's busy timeout (1 s, then 503 DATABASE_BUSY).
    const pipeline = (body: unknown) =>
      fetch(`${server.url}/v2/pipeline`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as any }),
      )
    const held = await pipeline({ requests: [{ type: 'execute', stmt: { sql: 'BEGIN' } }, { type: 'execute', stmt: { sql: "INSERT INTO notes (title) VALUES ('held')" } }] })
    expect(held.status).toBe(200)
    try {
      const client = new Client(server.url, { authorization: `Bearer ${token}` })
      const blocked = await client.post('/api/tenant/data/notes', { title: 'blocked' })
      expect(blocked.status, blocked.text).toBe(408)
      expect(blocked.body.error.code).toBe('STATEMENT_TIMEOUT')
      expect(blocked.body.error.message).toMatch(/100 ms/)
    } finally {
      await pipeline({ baton: held.body.baton, requests: [{ type: 'execute', stmt: { sql: 'ROLLBACK' } }, { type: 'close' }] })
    }
    // A PUT replaces: what it leaves out follows the config again.
    const reset = await root.request('PUT', '/api/admin/tenants/acme/limits', {})
    expect(reset.body.overrides).toEqual({})
    expect(reset.body.limits.plan).toEqual({ value: 'small', source: 'config' })
  })
})

describe('server.limits.plans', () => {
  it('refuses a plan named config: the CLI reads `--plan config` as "follow the config"', ({ expect }) => {
    expect(() => parseServerConfig({ limits: { plans: { config: {} } } })).toThrow(/server\.limits\.plans\.config: "config" is reserved/)
  })
})

describe('limitsOf', () => {
  it('computes once per cached set of the tenant’s own limits, and again when they or its slug change', async ({ expect }) => {
    const server = parseServerConfig(config.server)
    let own: TenantLimitOverrides = { plan: 'pro' }
    const tenantry = { limits: { of: async () => own } } as unknown as Tenantry
    const first = await limitsOf(tenantry, server, { id: 't1', slug: 'acme' })
    expect(first.plan).toEqual({ value: 'pro', source: 'tenant' })
    expect(first.sqlMaxStreams).toEqual({ value: 5, source: 'config' })
    expect(await limitsOf(tenantry, server, { id: 't1', slug: 'acme' })).toBe(first)
    // Renamed: the config's settings by slug no longer apply.
    const renamed = await limitsOf(tenantry, server, { id: 't1', slug: 'acme-2' })
    expect(renamed.sqlMaxStreams.source).toBe('default')
    // Its own limits changed (the cache of `tenantry.limits.of` hands out a new object).
    own = {}
    expect((await limitsOf(tenantry, server, { id: 't1', slug: 'acme-2' })).plan).toEqual({ value: 'default', source: 'default' })
  })
})
