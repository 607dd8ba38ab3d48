import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, startTestServer, type TestServer } from '../testing/index.js'

/**
 * The console at `/` (a stand-in build in a temporary directory: the real one is walked in
 * Chromium by packages/console's browser test): files as they are, `index.html` for console
 * routes, the API's JSON 404s untouched, and a page saying how to build when there is no build.
 */
const html = { accept: 'text/html,application/xhtml+xml' }

describe('the console served at /', () => {
  let dir: string
  let server: TestServer
  let bare: TestServer
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tenantry-console-dist-'))
    mkdirSync(join(dir, 'assets'))
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>console</title><div id="root"></div>')
    writeFileSync(join(dir, 'assets', 'index-abc123.js'), 'console.log("app")')
    writeFileSync(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>')
    server = await startTestServer({ app: { consoleDir: dir } })
    bare = await startTestServer({ app: { consoleDir: join(dir, 'not-built') } })
  })
  afterAll(async () => {
    await server?.stop()
    await bare?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('serves index.html at / and for console routes a browser opens (reload, shared link)', async () => {
    const client = new Client(server.url)
    for (const path of ['/', '/settings', '/admin?tab=tenants']) {
      const reply = await client.get(path, html)
      expect(reply.status, path).toBe(200)
      expect(reply.headers.get('content-type')).toMatch(/^text\/html/)
      expect(reply.text).toContain('<title>console</title>')
      expect(reply.headers.get('cache-control')).toBe('no-cache')
    }
  })

  it('serves the build’s files, hashed assets as immutable', async () => {
    const client = new Client(server.url)
    const asset = await client.get('/assets/index-abc123.js')
    expect(asset.status).toBe(200)
    expect(asset.headers.get('content-type')).toMatch(/javascript/)
    expect(asset.text).toBe('console.log("app")')
    expect(asset.headers.get('cache-control')).toMatch(/immutable/)
    const icon = await client.get('/favicon.svg')
    expect(icon.status).toBe(200)
    expect(icon.headers.get('cache-control')).toBe('no-cache')
  })

  it('keeps the API’s JSON 404s: unknown API paths, missing assets, non-HTML requests, other methods', async () => {
    const client = new Client(server.url)
    const cases: Array<[string, string, Record<string, string>]> = [
      ['GET', '/api/no-such-route', html],
      ['GET', '/v2/nothing-here', html],
      ['GET', '/v3/nothing-here', html],
      ['GET', '/metrics/x', html],
      ['GET', '/assets/missing-999.js', html],
      ['GET', '/settings', { accept: 'application/json' }],
      // fetch and curl (`*/*`): the API's 404 at `/` (Hrana's WebSocket endpoint without an upgrade).
      ['GET', '/', { accept: '*/*' }],
      ['POST', '/settings', {}],
    ]
    for (const [method, path, headers] of cases) {
      const reply = await client.request(method, path, method === 'POST' ? {} : undefined, headers)
      expect(reply.status, `${method} ${path}`).toBe(404)
      expect(reply.body, `${method} ${path}`).toEqual({ error: { code: 'NOT_FOUND', message: 'Not found' } })
    }
  })

  it('never serves a file outside the build', async () => {
    writeFileSync(join(dir, '..', 'tenantry-console-secret.txt'), 'secret')
    try {
      for (const path of ['/../tenantry-console-secret.txt', '/%2e%2e/tenantry-console-secret.txt', '/assets/%2e%2e/%2e%2e/tenantry-console-secret.txt']) {
        const reply = await new Client(server.url).get(path, { accept: '*/*' })
        expect(reply.text, path).not.toContain('secret')
        expect(reply.status, path).toBe(404)
      }
    } finally {
      rmSync(join(dir, '..', 'tenantry-console-secret.txt'), { force: true })
    }
  })

  it('the API still answers beside it', async () => {
    const client = new Client(server.url)
    expect((await client.get('/healthz')).status).toBe(200)
    expect((await client.get('/api/me')).body.error.code).toBe('UNAUTHENTICATED')
  })

  it('without a build, / says how to build it instead of a JSON 404', async () => {
    const reply = await new Client(bare.url).get('/', html)
    expect(reply.status).toBe(503)
    expect(reply.headers.get('content-type')).toMatch(/^text\/html/)
    expect(reply.text).toContain('npm run build -w @tenantry/console')
    expect(reply.text).toContain('npm start')
    // A script asking for JSON still gets the API's answer.
    expect((await new Client(bare.url).get('/', { accept: 'application/json' })).body.error.code).toBe('NOT_FOUND')
  })
})

describe('GET /api/sign-in-providers', () => {
  it('lists none when only email and password are on', async () => {
    const server = await startTestServer({ app: { consoleDir: false }, env: { GITHUB_CLIENT_ID: '', GOOGLE_CLIENT_ID: '', TENANTRY_OIDC_ISSUER: '' } })
    try {
      const reply = await new Client(server.url).get('/api/sign-in-providers')
      expect(reply.status).toBe(200)
      expect(reply.body).toEqual({ providers: [] })
      // Part of the API: documented, and it refuses a query it does not take.
      expect((await new Client(server.url).get('/openapi.json')).body.paths['/api/sign-in-providers']).toBeDefined()
      expect((await new Client(server.url).get('/api/sign-in-providers?x=1')).body.error.code).toBe('VALIDATION_FAILED')
    } finally {
      await server.stop()
    }
  })

  it('lists the configured social and OpenID providers, with their names', async () => {
    const server = await startTestServer({
      app: { consoleDir: false },
      env: {
        GITHUB_CLIENT_ID: 'gh-id',
        GITHUB_CLIENT_SECRET: 'gh-secret',
        GOOGLE_CLIENT_ID: '',
        TENANTRY_OIDC_ISSUER: 'http://127.0.0.1:9/realm',
        TENANTRY_OIDC_CLIENT_ID: 'oidc-id',
        TENANTRY_OIDC_NAME: 'Acme SSO',
      },
    })
    try {
      const reply = await new Client(server.url).get('/api/sign-in-providers')
      expect(reply.body).toEqual({
        providers: [
          { id: 'github', name: 'GitHub', kind: 'social' },
          { id: 'oidc', name: 'Acme SSO', kind: 'oauth2' },
        ],
      })
    } finally {
      await server.stop()
    }
  })
})
