import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, it } from 'vitest'
import type { EmailMessage } from '@tenantry/server'
import { Client, signUp, startTestServer, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))

let server: TestServer
const sent: EmailMessage[] = []
beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG, app: { sendEmail: async (message) => void sent.push(message) } })
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

describe('sign-up does not reveal which emails have an account (issue 9 #7)', () => {
  /** The shape of a JSON value: its keys and their types, all the way down, with no values. */
  const shape = (value: unknown): unknown =>
    value === null ? 'null' : Array.isArray(value) ? value.map(shape) : typeof value === 'object' ? Object.fromEntries(Object.entries(value as object).sort().map(([k, v]) => [k, shape(v)])) : typeof value

  it('answers a new and an existing email alike, and tells the account owner instead', async ({ expect }) => {
    const signUpAs = (email: string, password: string) =>
      new Client(server.url).post('/api/auth/sign-up/email', { email, password, name: 'someone' })
    // Each answer sends one email: a new address its verification link, an existing one the notice below.
    const toCarol = () => sent.filter((m) => m.to === 'carol@example.com')
    const notices = () => toCarol().filter((m) => m.subject === 'Someone tried to sign up with your email')
    const fresh = await signUpAs('carol@example.com', 'correct horse battery')
    await expect.poll(() => toCarol().map((m) => m.subject)).toEqual(['Verify your email address'])
    const taken = await signUpAs('carol@example.com', 'another password entirely')

    expect(taken.status).toBe(fresh.status)
    expect(fresh.status).toBe(200)
    expect(shape(taken.body)).toEqual(shape(fresh.body))
    expect(taken.body.token).toBeNull()
    expect(fresh.body.token).toBeNull()
    expect(taken.body.user.email).toBe(fresh.body.user.email)
    // Neither signs in (a session for the existing account would give it away, or hand it over).
    expect(fresh.headers.getSetCookie()).toEqual([])
    expect(taken.headers.getSetCookie()).toEqual([])

    // The account is untouched: its own password signs in, the second sign-up's does not.
    const signIn = (password: string) => new Client(server.url).post('/api/auth/sign-in/email', { email: 'carol@example.com', password })
    expect((await signIn('another password entirely')).status).toBe(401)
    expect((await signIn('correct horse battery')).status).toBe(200)

    await expect.poll(() => notices().length).toBe(1)
    expect(notices()[0]).toMatchObject({ to: 'carol@example.com', subject: 'Someone tried to sign up with your email' })
    expect(notices()[0]!.text).toContain(server.url)
    expect(toCarol().filter((m) => m.subject === 'Verify your email address')).toHaveLength(1)
  })
})
