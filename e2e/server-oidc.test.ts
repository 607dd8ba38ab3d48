import { fileURLToPath } from 'node:url'
import { OAuth2Server } from 'oauth2-mock-server'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { Client, startTestServer, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../tenantry.config.ts', import.meta.url))

let idp: OAuth2Server
let server: TestServer
const profile = { sub: 'oidc-user-1', email: 'oidc@example.com', email_verified: true, name: 'Oidc User' }

beforeAll(async () => {
  idp = new OAuth2Server()
  await idp.issuer.keys.generate('RS256')
  await idp.start(0, '127.0.0.1')
  idp.service.on('beforeTokenSigning', (token) => Object.assign(token.payload, profile))
  idp.service.on('beforeUserinfo', (userInfo) => {
    userInfo.body = profile
  })
  server = await startTestServer({
    config: REPO_CONFIG,
    env: {
      TENANTRY_OIDC_ISSUER: idp.issuer.url!,
      TENANTRY_OIDC_CLIENT_ID: 'tenantry-test',
      TENANTRY_OIDC_CLIENT_SECRET: 'not-a-real-secret',
      TENANTRY_PLATFORM_ADMINS: profile.email,
    },
  })
})
afterAll(async () => {
  await server?.stop()
  await idp?.stop()
})

describe('generic OpenID provider', () => {
  it('signs in through the authorization-code redirect flow and provisions a personal tenant', async ({ expect }) => {
    const browser = new Client(server.url)
    const start = await browser.post('/api/auth/sign-in/social', { provider: 'oidc', callbackURL: '/api/me' })
    expect(start.status).toBe(200)
    const authorize = new URL(start.body.url)
    expect(authorize.origin).toBe(new URL(idp.issuer.url!).origin)
    expect(authorize.searchParams.get('code_challenge')).toBeTruthy()

    // The provider signs the user in and redirects back with a code.
    const atIdp = await browser.get(authorize.toString())
    expect(atIdp.status).toBe(302)
    const callback = atIdp.headers.get('location')!
    expect(callback.startsWith(`${server.url}/api/auth/callback/oidc`)).toBe(true)

    const back = await browser.get(callback)
    expect(back.status).toBe(302)
    expect(back.headers.get('location')).toBe('/api/me')

    const me = await browser.get('/api/me')
    expect(me.status).toBe(200)
    expect(me.body.user).toMatchObject({ email: 'oidc@example.com', platformAdmin: true })
    expect(me.body.tenants).toHaveLength(1)
    expect(me.body.activeTenant.slug).toMatch(/^u_/)
    expect((await browser.get('/api/admin/data-sources')).status).toBe(200)

    // A second sign-in reuses the account and its tenant.
    const again = new Client(server.url)
    const url = (await again.post('/api/auth/sign-in/social', { provider: 'oidc', callbackURL: '/api/me' })).body.url
    await again.get((await again.get(url)).headers.get('location')!)
    expect((await again.get('/api/me')).body.tenants).toEqual(me.body.tenants)
  })

  it('a forged callback (unknown state) signs nobody in', async ({ expect }) => {
    const browser = new Client(server.url)
    const forged = await browser.get('/api/auth/callback/oidc?code=abc&state=forged')
    expect(forged.status).toBeGreaterThanOrEqual(300)
    expect((await browser.get('/api/me')).status).toBe(401)
  })
})
