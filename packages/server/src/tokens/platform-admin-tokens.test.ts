import { afterAll, beforeAll, describe, it } from 'vitest'
import { Client, signUp, startTestServer, verifyEmail, type TestServer } from '@tenantry/server/testing'

// Issue 9, item 5: a token is revoked when its creator leaves the tenant or is demoted in it
// (organizations.ts, `revokeTokensOf`). A platform admin may create tokens for a tenant it is
// no member of. Platform admin status comes only from the config (`server.platformAdmins`,
// `TENANTRY_PLATFORM_ADMINS`) and a verified email, which cannot be unverified or changed at
// run time: there is no run-time demotion to revoke on. Such tokens belong to the tenant: its
// owners see them, with their creator, and revoke them like any other.

describe("platform admins' tokens", () => {
  let server: TestServer
  let root: Client
  let owner: Client
  let slug: string
  beforeAll(async () => {
    server = await startTestServer({ config: { server: {} }, env: { TENANTRY_PLATFORM_ADMINS: 'root@example.com' } })
    root = await signUp(server, 'root@example.com')
    await verifyEmail(server, 'root@example.com')
    owner = await signUp(server, 'owner@example.com')
    slug = (await owner.get('/api/me')).body.activeTenant.slug
  })
  afterAll(async () => server?.stop())

  it('are listed to the tenant’s owners with their creator, and the owners can revoke them', async ({ expect }) => {
    const rootId = (await root.get('/api/me')).body.user.id as string
    const created = await root.post(`/api/t/${slug}/tokens`, { name: 'support' })
    expect(created.status, created.text).toBe(201)
    expect(created.body.record.createdBy).toBe(`user:${rootId}`)

    const listed = await owner.get(`/api/t/${slug}/tokens`)
    expect(listed.status).toBe(200)
    expect(listed.body.items).toEqual([expect.objectContaining({ id: created.body.record.id, name: 'support', createdBy: `user:${rootId}`, revokedAt: null })])

    const token = new Client(server.url, { authorization: `Bearer ${created.body.token}` })
    expect((await token.get('/api/tenant/tokens')).status).toBe(403) // a token cannot manage tokens
    const revoked = await owner.delete(`/api/t/${slug}/tokens/${created.body.record.id}`)
    expect(revoked.status, revoked.text).toBe(200)
    expect(revoked.body.revokedAt).toEqual(expect.any(String))
    const after = await fetch(`${server.url}/v2/pipeline`, {
      method: 'POST',
      headers: { authorization: `Bearer ${created.body.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }] }),
    })
    expect(after.status).toBe(401)
  })
})
