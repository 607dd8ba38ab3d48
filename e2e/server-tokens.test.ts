import { createClient } from '@libsql/client'
import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, signUp, startTestServer, type TestServer } from './fixtures/server.js'

// Integration tokens managed over HTTP (seed 000's settings page: copy a URL and a read-only
// token into n8n), and used with the official libSQL client.
let server: TestServer
let owner: Client
let member: Client
let stranger: Client

beforeAll(async () => {
  server = await startTestServer()
  owner = await signUp(server, 'owner@tokens.test')
  member = await signUp(server, 'member@tokens.test')
  stranger = await signUp(server, 'stranger@tokens.test')
  expect((await owner.post('/api/auth/organization/create', { name: 'Acme', slug: 'acme' })).status).toBe(200)
  expect((await stranger.post('/api/auth/organization/create', { name: 'Globex', slug: 'globex' })).status).toBe(200)
  const catalog = server.tenantry.catalog.db as unknown as Kysely<any>
  const org = await catalog.selectFrom('organization').select('id').where('slug', '=', 'acme').executeTakeFirstOrThrow()
  const invite = await owner.post('/api/auth/organization/invite-member', { email: 'member@tokens.test', role: 'member', organizationId: org.id })
  expect((await member.post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })).status).toBe(200)
})
afterAll(async () => server?.stop())

describe('integration tokens over HTTP', () => {
  it('are created by owners, shown once, and work with the official libSQL client', async () => {
    const created = await owner.post('/api/t/acme/tokens', { name: 'n8n', readOnly: true, expiresIn: '30d' })
    expect(created.status).toBe(201)
    expect(created.body.token).toMatch(/^tnt_/)
    expect(created.body.record).toMatchObject({ name: 'n8n', readOnly: true, revokedAt: null })
    expect(created.body.record.expiresAt).not.toBeNull()

    const listed = await owner.get('/api/t/acme/tokens')
    expect(listed.status).toBe(200)
    expect(listed.text).not.toContain(created.body.token)
    expect(listed.text).not.toContain(created.body.token.split('_')[2])
    expect(listed.body.items.map((t: { id: string }) => t.id)).toContain(created.body.record.id)

    const client = createClient({ url: server.url, authToken: created.body.token })
    try {
      const result = await client.execute('select count(*) as n from jobs')
      expect(Number(result.rows[0]!.n)).toBe(0)
      await expect(client.execute("insert into jobs (company, title, start_date) values ('x', 'y', '2020-01-01')")).rejects.toThrow()
    } finally {
      client.close()
    }

    expect((await owner.delete(`/api/t/acme/tokens/${created.body.record.id}`)).body.revokedAt).not.toBeNull()
    const revoked = createClient({ url: server.url, authToken: created.body.token })
    try {
      await expect(revoked.execute('select 1')).rejects.toThrow()
    } finally {
      revoked.close()
    }
  })

  it('are managed by owners and admins only, never by members, tokens or other tenants', async () => {
    expect((await member.post('/api/t/acme/tokens', {})).status).toBe(403)
    expect((await member.get('/api/t/acme/tokens')).status).toBe(403)
    // Not a member at all: the tenant does not exist for them.
    expect((await stranger.post('/api/t/acme/tokens', {})).status).toBe(404)

    const { body } = await owner.post('/api/t/acme/tokens', { name: 'rw' })
    const asToken = new Client(server.url, { authorization: `Bearer ${body.token}` })
    expect((await asToken.post('/api/t/acme/tokens', {})).status).toBe(403)
    expect((await asToken.get('/api/tenant/tokens')).status).toBe(403)

    // Globex's owner cannot revoke Acme's token through Globex.
    expect((await stranger.delete(`/api/t/globex/tokens/${body.record.id}`)).status).toBe(404)
    expect((await owner.get('/api/t/acme/tokens')).body.items.find((t: { id: string }) => t.id === body.record.id).revokedAt).toBeNull()
  })

  it('offer Postgres read-only URLs only where privileges confine them', async () => {
    // Acme lives in a SQLite file: SQL-over-HTTP with a read-only token is its read-only path.
    const reply = await owner.post('/api/t/acme/postgres-readonly', {})
    expect(reply.status).toBe(400)
    expect(reply.body.error.code).toBe('UNSUPPORTED_PLACEMENT')
    expect((await member.post('/api/t/acme/postgres-readonly', {})).status).toBe(403)
  })

  it('refuse malformed input with 400 and create nothing', async () => {
    const before = (await owner.get('/api/t/acme/tokens')).body.items.length
    for (const body of [{ readOnly: 'yes' }, { expiresIn: 'forever' }, { expiresIn: 30 }, { name: 42 }, { name: 'x'.repeat(500) }]) {
      const reply = await owner.post('/api/t/acme/tokens', body)
      expect(reply.status, JSON.stringify(body)).toBe(400)
      expect(reply.body.error.code).toMatch(/VALIDATION_FAILED|INVALID_OPTION/)
    }
    expect((await owner.get('/api/t/acme/tokens')).body.items.length).toBe(before)
  })
})
