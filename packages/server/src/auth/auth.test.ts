import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { Client, signUp, startTestServer, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))

let server: TestServer
beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG })
})
afterAll(async () => server?.stop())

describe('email and password', () => {
  it('signs up, gets a personal tenant, signs out and back in', async ({ expect }) => {
    const alice = await signUp(server, 'alice@example.com')
    const me = await alice.get('/api/me')
    expect(me.status).toBe(200)
    expect(me.body.user.email).toBe('alice@example.com')
    expect(me.body.tenants).toHaveLength(1)
    expect(me.body.tenants[0].slug).toMatch(/^u_[a-z0-9]{16}$/)
    expect(me.body.tenants[0].role).toBe('owner')
    expect(me.body.activeTenant.slug).toBe(me.body.tenants[0].slug)
    const tenant = await server.tenantry.catalog.findTenantBySlug(me.body.tenants[0].slug)
    expect(tenant?.status).toBe('ready')

    expect((await alice.post('/api/auth/sign-out')).status).toBe(200)
    expect((await alice.get('/api/me')).status).toBe(401)

    const again = new Client(server.url)
    const wrong = await again.post('/api/auth/sign-in/email', { email: 'alice@example.com', password: 'wrong password' })
    expect(wrong.status).toBe(401)
    expect(wrong.body.code).toBe('INVALID_EMAIL_OR_PASSWORD') // Better Auth's own shape on its routes
    const signIn = await again.post('/api/auth/sign-in/email', { email: 'alice@example.com', password: 'correct horse battery' })
    expect(signIn.status).toBe(200)
    const meAgain = await again.get('/api/me')
    expect(meAgain.body.tenants.map((t: { slug: string }) => t.slug)).toEqual([me.body.tenants[0].slug])
  })
})
