import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TenantryConfig } from 'tenantry'
import { Client, signUp, startTestServer, type TestServer } from '@tenantry/server/testing'
import repoConfig from '../../../../tenantry.config.js'
import { parseServerConfig } from '../server-config.js'

const APP = 'http://app.cors.test:5173'
const EVIL = 'http://evil.cors.test'

/** The repo's config (the CV builder's collections) with `server.cors`. */
const withCors = (cors: Record<string, unknown> | undefined): TenantryConfig => {
  const server = { ...(repoConfig.server as Record<string, unknown>) }
  if (cors) server.cors = cors
  else delete server.cors
  return { ...repoConfig, server }
}

let server: TestServer
let user: Client
let data: string
beforeAll(async () => {
  server = await startTestServer({ config: withCors({ origins: [APP] }), env: { TENANTRY_TRUSTED_ORIGINS: '' } })
  user = await signUp(server, 'cors@example.com')
  data = `/api/t/${(await user.get('/api/me')).body.activeTenant.slug}/data`
})
afterAll(async () => server?.stop())

/** The signed-in user's browser on a page of `origin`. */
const browserAt = (origin: string) => {
  const browser = new Client(server.url, { origin })
  for (const [name, value] of user.cookies) browser.cookies.set(name, value)
  return browser
}
const preflight = (path: string, origin: string, method = 'POST') =>
  new Client(server.url).request('OPTIONS', path, undefined, { origin, 'access-control-request-method': method, 'access-control-request-headers': 'content-type' })

describe('CORS', () => {
  it('answers a listed origin’s preflight for the data API and SQL-over-HTTP, with credentials', async () => {
    for (const [path, method] of [[`${data}/jobs`, 'POST'], [`${data}/jobs/1`, 'PATCH'], ['/api/tenant/data/jobs', 'DELETE'], ['/v2/pipeline', 'POST'], ['/v3/pipeline', 'POST']] as const) {
      const reply = await preflight(path, APP, method)
      expect(reply.status, path).toBe(204)
      expect(reply.headers.get('access-control-allow-origin'), path).toBe(APP)
      expect(reply.headers.get('access-control-allow-credentials'), path).toBe('true')
      expect(reply.headers.get('access-control-allow-methods'), path).toContain(method)
      // JSON bodies, writes' idempotency keys (a retry from the browser applies once), a file's byte range.
      for (const header of ['content-type', 'idempotency-key', 'range']) expect(reply.headers.get('access-control-allow-headers'), path).toContain(header)
      expect(reply.headers.get('vary'), path).toMatch(/origin/i)
    }
  })

  it('gives an unlisted origin no CORS header at all, on preflights and on answers', async () => {
    for (const path of [`${data}/jobs`, '/v2/pipeline', '/v3/pipeline']) {
      const reply = await preflight(path, EVIL)
      expect(reply.status, path).toBe(404)
      expect([...reply.headers.keys()].filter((h) => h.startsWith('access-control-')), path).toEqual([])
    }
    const read = await browserAt(EVIL).get(`${data}/jobs`)
    expect(read.headers.get('access-control-allow-origin')).toBeNull()
    // Outside the API (operators' endpoints), even a listed origin gets nothing.
    expect((await new Client(server.url).get('/healthz', { origin: APP })).headers.get('access-control-allow-origin')).toBeNull()
  })

  it('lets a listed origin read and write with the session cookie; an unlisted one still fails the Origin check', async () => {
    const app = browserAt(APP)
    const created = await app.post(`${data}/jobs`, { company: 'Cors GmbH', title: 'Dev', start_date: '2020-01-01' })
    expect(created.status).toBe(201)
    expect(created.headers.get('access-control-allow-origin')).toBe(APP)
    expect(created.headers.get('access-control-allow-credentials')).toBe('true')
    // A retried write's answer says it was a replay: the app must be able to read that header.
    expect(created.headers.get('access-control-expose-headers')).toContain('idempotent-replayed')
    const listed = await app.get(`${data}/jobs?company=${encodeURIComponent('Cors GmbH')}`)
    expect(listed.body.items).toHaveLength(1)
    expect(listed.headers.get('access-control-allow-origin')).toBe(APP)

    const forged = await browserAt(EVIL).post(`${data}/jobs`, { company: 'Forged', title: 'Dev', start_date: '2020-01-01' })
    expect(forged.status).toBe(403)
    expect(forged.body.error.code).toBe('INVALID_ORIGIN')
    expect(forged.headers.get('access-control-allow-origin')).toBeNull()
    expect((await user.get(`${data}/jobs/count?company=Forged`)).body).toEqual({ count: 0 })
  })

  it('trusts the listed origins for sign-in too (one list)', async () => {
    const reply = await new Client(server.url, { origin: APP }).post('/api/auth/sign-up/email', { email: 'cors-app@example.com', password: 'correct horse battery', name: 'app' })
    expect(reply.status).toBe(200)
    expect(reply.headers.get('access-control-allow-origin')).toBe(APP)
    const forged = await new Client(server.url, { origin: EVIL }).post('/api/auth/sign-up/email', { email: 'cors-evil@example.com', password: 'correct horse battery', name: 'evil' })
    expect(forged.status).toBe(403)
  })
})

describe('CORS config', () => {
  it('serves no CORS by default: a preflight is a 404 as before', async () => {
    const plain = await startTestServer({ config: withCors(undefined), env: { TENANTRY_TRUSTED_ORIGINS: '' } })
    try {
      const reply = await new Client(plain.url).request('OPTIONS', '/api/tenant/data/jobs', undefined, { origin: APP, 'access-control-request-method': 'POST' })
      expect(reply.status).toBe(404)
      expect(reply.headers.get('access-control-allow-origin')).toBeNull()
    } finally {
      await plain.stop()
    }
  })

  it('refuses a wildcard or anything that is not a bare origin', () => {
    for (const origins of [['*'], ['https://app.example.com/'], ['https://app.example.com/path'], ['app.example.com']]) {
      expect(() => parseServerConfig({ cors: { origins } }), origins[0]).toThrow(/server\.cors\.origins\.0/)
    }
    expect(parseServerConfig({}).cors).toEqual({ origins: [], maxAge: 600 })
    expect(parseServerConfig({ cors: { origins: ['http://localhost:5173'] } }).cors.origins).toEqual(['http://localhost:5173'])
  })
})
