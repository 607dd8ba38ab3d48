import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { signUp, startTestServer, verifyEmail, type Client, type TestServer } from '@tenantry/server/testing'

// Issue 13: maintenance mode over HTTP (reads served; data API and SQL-over-HTTP writes refused
// with the message), and a live move over the admin API.

const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))

let server: TestServer
let root: Client
beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG, env: { TENANTRY_PLATFORM_ADMINS: 'root@example.com' } })
  root = await signUp(server, 'root@example.com')
  await verifyEmail(server, 'root@example.com')
})
afterAll(async () => server?.stop())

describe('admin API: maintenance mode and moves', () => {
  it('read-only: reads served, data API and SQL-over-HTTP writes refused with the message; off restores them', async ({ expect }) => {
    const owner = await signUp(server, 'calm-owner@example.com')
    expect((await root.post('/api/admin/tenants', { slug: 'calm', ownerEmail: 'calm-owner@example.com' })).status).toBe(201)
    expect((await owner.post('/api/t/calm/data/jobs', { company: 'Before', title: 'T', start_date: '2020-01-01' })).status).toBe(201)
    const token = (await owner.post('/api/t/calm/tokens', { name: 'rw' })).body.token as string
    const pipeline = (sql: string) =>
      fetch(`${server.url}/v2/pipeline`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql } }, { type: 'close' }] }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { results: Array<{ type: string; error?: { message: string } }> } }))

    const on = await owner.post('/api/admin/tenants/calm/maintenance', { readOnly: true, message: 'Upgrading, back at noon' })
    expect(on.status, JSON.stringify(on.body)).toBe(200)
    expect(on.body).toMatchObject({ slug: 'calm', status: 'ready' })

    const refused = await owner.post('/api/t/calm/data/jobs', { company: 'During', title: 'T', start_date: '2020-01-01' })
    expect([refused.status, refused.body.error.code, refused.body.error.message]).toEqual([503, 'TENANT_MAINTENANCE', 'Upgrading, back at noon'])
    const read = await owner.get('/api/t/calm/data/jobs')
    expect(read.status).toBe(200)
    expect(read.body.items.map((j: { company: string }) => j.company)).toEqual(['Before'])
    const sqlWrite = await pipeline("INSERT INTO jobs (company, title, start_date) VALUES ('Raw', 'T', '2020-01-01')")
    expect(sqlWrite.body.results[0]!.type).toBe('error')
    const sqlRead = await pipeline('SELECT count(*) FROM jobs')
    expect(sqlRead.body.results[0]!.type).toBe('ok')

    // Bad input: refused, nothing changes.
    expect((await owner.post('/api/admin/tenants/calm/maintenance', {})).status).toBe(400)
    expect((await owner.post('/api/admin/tenants/calm/maintenance', { readOnly: true, message: '' })).status).toBe(400)
    expect((await owner.post('/api/admin/tenants/calm/maintenance', { readOnly: 'yes' })).status).toBe(400)

    expect((await owner.post('/api/admin/tenants/calm/maintenance', { readOnly: false })).status).toBe(200)
    expect((await owner.post('/api/t/calm/data/jobs', { company: 'After', title: 'T', start_date: '2020-01-01' })).status).toBe(201)
    expect((await pipeline("INSERT INTO jobs (company, title, start_date) VALUES ('Raw', 'T', '2020-01-01')")).body.results[0]!.type).toBe('ok')
  })

  it('move: platform admins only; bad input answered 4xx', async ({ expect }) => {
    const owner = await signUp(server, 'mover-owner@example.com')
    expect((await root.post('/api/admin/tenants', { slug: 'mover', ownerEmail: 'mover-owner@example.com' })).status).toBe(201)
    expect((await owner.post('/api/admin/tenants/mover/move', { dataSource: 'local' })).status).toBe(403)
    const same = await root.post('/api/admin/tenants/mover/move', { dataSource: 'local' })
    expect([same.status, same.body.error.code]).toEqual([400, 'INVALID_OPTION'])
    const unknown = await root.post('/api/admin/tenants/mover/move', { dataSource: 'nowhere' })
    expect([unknown.status, unknown.body.error.code]).toEqual([400, 'DATA_SOURCE_NOT_FOUND'])
    expect((await root.post('/api/admin/tenants/mover/move', { dataSource: 'local', isolation: 'sideways' })).status).toBe(400)
    expect((await root.post('/api/admin/tenants/mover/move', {})).status).toBe(400)
  })
})
