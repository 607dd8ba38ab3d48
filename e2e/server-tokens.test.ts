import { fileURLToPath } from 'node:url'
import { createClient } from '@libsql/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, signUp, startTestServer, verifyEmail, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../tenantry.config.ts', import.meta.url))

// Integration tokens managed over HTTP (seed 000's settings page: copy a URL and a read-only
// token into n8n), and used with the official libSQL client.
let server: TestServer
let owner: Client
let member: Client
let stranger: Client

beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG })
  owner = await signUp(server, 'owner@tokens.test')
  member = await signUp(server, 'member@tokens.test')
  stranger = await signUp(server, 'stranger@tokens.test')
  const acme = await owner.post('/api/auth/organization/create', { name: 'Acme', slug: 'acme' })
  expect(acme.status).toBe(200)
  expect((await stranger.post('/api/auth/organization/create', { name: 'Globex', slug: 'globex' })).status).toBe(200)
  const invite = await owner.post('/api/auth/organization/invite-member', { email: 'member@tokens.test', role: 'member', organizationId: acme.body.id })
  await verifyEmail(server, 'member@tokens.test')
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
    // The whole secret (it may itself contain `_`); its first 4 characters are the listed prefix by design.
    expect(listed.text).not.toContain(created.body.token.split('_').slice(2).join('_'))
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

  it('read-only access is granted and revoked by owners and admins, only where the database confines it', async () => {
    // Acme lives in a SQLite file: SQL-over-HTTP with a read-only token is its read-only path.
    for (const [method, path] of [['POST', '/api/t/acme/read-only-access'], ['DELETE', '/api/t/acme/read-only-access']] as const) {
      const reply = await owner.request(method, path, method === 'POST' ? {} : undefined)
      expect(reply.status, `${method} ${path}`).toBe(400)
      expect(reply.body.error.code).toBe('UNSUPPORTED_PLACEMENT')
      expect((await member.request(method, path, method === 'POST' ? {} : undefined)).status).toBe(403)
      expect((await stranger.request(method, path, method === 'POST' ? {} : undefined)).status).toBe(404)
    }
    expect((await owner.post('/api/tenant/read-only-access', {})).body.error.code).toBe('UNSUPPORTED_PLACEMENT')
    // The old name is gone: one name per concept.
    expect((await owner.post('/api/t/acme/postgres-readonly', {})).status).toBe(404)
  })

  it('refuse malformed input with 400 and create nothing', async () => {
    const before = (await owner.get('/api/t/acme/tokens')).body.items.length
    for (const body of [{ readOnly: 'yes' }, { expiresIn: 'forever' }, { expiresIn: 30 }, { expiresIn: '0d' }, { name: 42 }, { name: 'x'.repeat(500) }]) {
      const reply = await owner.post('/api/t/acme/tokens', body)
      expect(reply.status, JSON.stringify(body)).toBe(400)
      expect(reply.body.error.code).toMatch(/VALIDATION_FAILED|INVALID_OPTION/)
    }
    expect((await owner.get('/api/t/acme/tokens')).body.items.length).toBe(before)
  })

  it('regression: a misspelled field ({"access":"read-only"}) created a read-write token that never expires', async () => {
    const before = (await owner.get('/api/t/acme/tokens')).body.items.length
    for (const body of [{ access: 'read-only' }, { read_only: true }, { readonly: true }, { name: 'n8n', expires: '30d' }, { expiresInMs: 1000 }]) {
      const reply = await owner.post('/api/tenant/tokens', body)
      expect(reply.status, JSON.stringify(body)).toBe(400)
      expect(reply.body.error.code).toBe('VALIDATION_FAILED')
      // The message names the field the server did not expect.
      expect(reply.body.error.message).toContain(`"${Object.keys(body).at(-1)}"`)
    }
    for (const text of ['read-only', '["readOnly"]', '"readOnly"']) {
      const reply = await owner.post('/api/tenant/tokens', text)
      expect(reply.status, text).toBe(400)
      expect(reply.body.error.code).toBe('VALIDATION_FAILED')
    }
    expect((await owner.get('/api/t/acme/tokens')).body.items.length).toBe(before)
  })
})
