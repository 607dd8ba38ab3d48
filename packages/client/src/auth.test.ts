import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, startTestServer, type TestServer } from '@tenantry/server/testing'
import { createAuth, type TenantryAuthClient } from './auth.js'
import { TenantryClientError } from './errors.js'

/**
 * The auth wrapper against the real server, from Node: `fetch` is given a cookie jar and the
 * page's Origin, which is what a browser adds by itself (the console's Chromium walk covers
 * the browser). Better Auth's errors and Tenantry's come out as `TenantryClientError`s.
 */

/** A browser's fetch, for one origin: keeps the cookies the server sets and sends its Origin. */
function browserLikeFetch(origin: string): typeof fetch {
  const jar = new Map<string, string>()
  return async (input, init = {}) => {
    const headers = new Headers(init.headers)
    headers.set('origin', origin)
    if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '))
    const request = new Request(input, { ...init, headers })
    const response = await fetch(request)
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq)
      const value = pair!.slice(eq + 1)
      if (value === '' || /max-age=0/i.test(cookie)) jar.delete(name)
      else jar.set(name, value)
    }
    return response
  }
}

const caught = async (run: () => Promise<unknown>) => {
  try {
    await run()
  } catch (error) {
    return error
  }
  throw new Error('expected a failure')
}

describe('createAuth (the auth wrapper of @tenantry/client)', () => {
  let server: TestServer
  let auth: TenantryAuthClient
  beforeAll(async () => {
    server = await startTestServer({ app: { consoleDir: false }, env: { GITHUB_CLIENT_ID: 'gh-id', GITHUB_CLIENT_SECRET: 'gh-secret', GOOGLE_CLIENT_ID: '', TENANTRY_OIDC_ISSUER: '' } })
    auth = createAuth({ baseUrl: server.url, fetch: browserLikeFetch(server.url) })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('lists the configured providers', async () => {
    expect(await auth.providers()).toEqual([{ id: 'github', name: 'GitHub', kind: 'social' }])
  })

  it('signed out: no session, no me; switching tenant is refused with the server’s code', async () => {
    expect(await auth.session()).toBeNull()
    expect(await auth.me()).toBeNull()
    const error = await caught(() => auth.switchTenant('anything'))
    expect(error).toBeInstanceOf(TenantryClientError)
    expect(error).toMatchObject({ code: 'UNAUTHENTICATED', status: 401 })
  })

  it('a wrong password is Better Auth’s code and message, as a client error', async () => {
    const error = await caught(() => auth.signIn({ email: 'nobody@example.com', password: 'not the password' }))
    expect(error).toBeInstanceOf(TenantryClientError)
    expect(error).toMatchObject({ code: 'INVALID_EMAIL_OR_PASSWORD', status: 401 })
    expect((error as Error).message).toMatch(/invalid email or password/i)
  })

  it('a too-short password on sign-up is refused with its code', async () => {
    const error = await caught(() => auth.signUp({ email: 'short@example.com', password: 'short' }))
    expect(error).toMatchObject({ code: 'PASSWORD_TOO_SHORT', status: 400 })
  })

  it('signs up (and so in), tells session changes, lists tenants, switches the active one, signs out', async () => {
    const seen: Array<string | null> = []
    const stop = auth.onSessionChange((session) => seen.push(session?.user.email ?? null))
    try {
      const session = await auth.signUp({ email: 'erin@example.com', password: 'correct horse battery', name: 'Erin' })
      expect(session.user).toMatchObject({ email: 'erin@example.com', name: 'Erin', emailVerified: false })
      expect(Date.parse(session.expiresAt)).toBeGreaterThan(Date.now())
      expect((await auth.session())?.user.email).toBe('erin@example.com')

      const me = (await auth.me())!
      expect(me.user).toMatchObject({ email: 'erin@example.com', platformAdmin: false })
      expect(me.tenants).toHaveLength(1)
      expect(me.activeTenant).toEqual(me.tenants[0])
      const personal = me.activeTenant!.slug

      // An organization is a tenant too: switch to it, and back.
      const erin = new Client(server.url)
      await erin.post('/api/auth/sign-in/email', { email: 'erin@example.com', password: 'correct horse battery' })
      expect((await erin.post('/api/auth/organization/create', { name: 'Erin Co', slug: 'erin_co' })).status).toBe(200)
      expect((await auth.me())!.tenants.map((t) => t.slug).sort()).toEqual([personal, 'erin_co'].sort())
      expect(await auth.switchTenant('erin_co')).toMatchObject({ slug: 'erin_co', role: 'owner' })
      expect((await auth.me())!.activeTenant?.slug).toBe('erin_co')
      expect((await auth.switchTenant(personal)).slug).toBe(personal)
      // A tenant the user is not in: refused, and the active one stays.
      expect(await caught(() => auth.switchTenant('not_mine'))).toMatchObject({ code: 'TENANT_NOT_FOUND', status: 404 })
      expect((await auth.me())!.activeTenant?.slug).toBe(personal)

      await auth.signOut()
      expect(await auth.session()).toBeNull()
      expect(await auth.me()).toBeNull()
      await expect.poll(() => seen.at(-1)).toBeNull()
      expect(seen).toContain('erin@example.com')
    } finally {
      stop()
    }
  })

  it('a social sign-in answers the provider’s address (without leaving, when asked)', async () => {
    const url = await auth.signInWith('github', { callbackURL: `${server.url}/`, navigate: false })
    expect(new URL(url).origin).toBe('https://github.com')
    expect(new URL(url).searchParams.get('client_id')).toBe('gh-id')
    expect(await caught(() => auth.signInWith('gitlab', { navigate: false }))).toMatchObject({ code: 'VALIDATION_FAILED', status: 400 })
  })

  it('an unreachable server is NETWORK_ERROR', async () => {
    const offline = createAuth({ baseUrl: 'http://127.0.0.1:9' })
    expect(await caught(() => offline.me())).toMatchObject({ code: 'NETWORK_ERROR', status: 0 })
    expect(await caught(() => offline.signIn({ email: 'a@example.com', password: 'whatever1' }))).toMatchObject({ status: 0 })
  })
})
