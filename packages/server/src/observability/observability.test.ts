import { fileURLToPath } from 'node:url'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { signUp, startTestServer, type TestServer } from '@tenantry/server/testing'
import Fastify from 'fastify'
import { metricsRoutes, TenantLabels } from './metrics.js'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))

const METRICS_TOKEN = 'metrics-token-for-the-test'
const lines: Array<Record<string, any>> = []
const raw: string[] = []
let server: TestServer
beforeAll(async () => {
  const stream = new Writable({
    write(chunk, _encoding, done) {
      raw.push(String(chunk))
      lines.push(JSON.parse(String(chunk)))
      done()
    },
  })
  server = await startTestServer({ config: REPO_CONFIG, logger: { level: 'info', stream }, env: { TENANTRY_METRICS_TOKEN: METRICS_TOKEN } })
})
afterAll(async () => server?.stop())

describe('observability', () => {
  it('serves an OpenAPI document and a docs page', async ({ expect }) => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> }
    expect(doc.openapi).toMatch(/^3\./)
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/t/{slug}/data/jobs', '/api/tenant/data/highlights/{id}', '/api/admin/tenants', '/api/me']))
    expect(Object.keys(doc.paths).some((p) => p.startsWith('/api/auth'))).toBe(false)
    const docs = await fetch(`${server.url}/docs/`)
    expect(docs.status).toBe(200)
    expect(await docs.text()).toContain('swagger')
  })

  it('logs one line per request with the tenant id, and no credentials', async ({ expect }) => {
    const user = await signUp(server, 'logs@example.com', 'a secret password')
    const slug = (await user.get('/api/me')).body.activeTenant.slug
    const tenant = await server.tenantry.catalog.findTenantBySlug(slug)
    await user.get(`/api/t/${slug}/data/jobs?company=x`)
    await new Promise((r) => setTimeout(r, 50))
    const line = lines.find((l) => l.msg === 'request completed' && l.route === '/api/t/:slug/data/jobs')
    expect(line).toMatchObject({ tenantId: tenant!.id, status: 200, method: 'GET', principal: 'user' })
    expect(lines.filter((l) => l.msg === 'request completed').every((l) => 'tenantId' in l)).toBe(true)
    const all = raw.join('')
    expect(all).not.toContain('a secret password')
    for (const value of user.cookies.values()) expect(all).not.toContain(value)
    expect(all).not.toContain(process.env.BETTER_AUTH_SECRET ?? 'never-set')
  })

  it('keeps the generated auth secret private (mode 0600)', ({ expect }) => {
    expect(statSync(join(server.home, 'auth-secret')).mode & 0o777).toBe(0o600)
  })

  it('exports per-tenant request counts and latency, labelled by tenant id, to the metrics token only', async ({ expect }) => {
    // Issue 9 #8: /metrics was public and labelled series with tenant slugs (customer names).
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401)
    expect((await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer not-the-metrics-token' } })).status).toBe(401)
    const reply = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
    expect(reply.status).toBe(200)
    const text = await reply.text()
    expect(text).toMatch(/tenantry_http_requests_total\{method="GET",route="\/api\/t\/:slug\/data\/jobs",status="200",tenant="t[a-z0-9]{19}"\} 1/)
    expect(text).not.toMatch(/tenant="u_/)
    expect(text).toContain('tenantry_http_request_duration_seconds_bucket')
    expect(text).toMatch(/tenant="none"/)
  })
})

describe('TenantLabels', () => {
  it('labels at most N tenants; a more active tenant displaces the least active one', ({ expect }) => {
    const evicted: string[] = []
    const labels = new TenantLabels(2, (slug) => evicted.push(slug))
    expect(labels.label('a')).toBe('a')
    expect(labels.label('b')).toBe('b')
    expect(labels.label('c')).toBe('other')
    expect(labels.label(undefined)).toBe('none')
    labels.label('a')
    expect(labels.label('c')).toBe('c') // c: 2 requests, b: 1
    expect(evicted).toEqual(['b'])
    expect(labels.label('b')).toBe('other')
  })
})

describe('metricsRoutes', () => {
  it('counts requests per series as scraped, and drops a displaced tenant’s series', async ({ expect }) => {
    const app = Fastify()
    // Stands in for tenant admission: the tenant id from a header.
    app.addHook('onRequest', async (request) => {
      const id = request.headers['x-tenant']
      if (typeof id === 'string') request.tenant = { id, slug: id, role: 'token', readOnly: true }
    })
    const registry = metricsRoutes(app, { topTenants: 1 })
    app.get('/t/:n', async () => ({ ok: true }))
    app.get('/missing', async (_request, reply) => reply.status(404).send({ ok: false }))
    const ask = (url: string, tenant?: string) => app.inject({ method: 'GET', url, headers: tenant ? { 'x-tenant': tenant } : {} })
    const count = (text: string, labels: string) => Number(new RegExp(`tenantry_http_requests_total\\{${labels}\\} (\\d+)`).exec(text)?.[1] ?? 0)
    try {
      for (let i = 0; i < 3; i++) await ask(`/t/${i}`, 'ta')
      await ask('/missing', 'ta')
      await ask('/t/1')
      let text = await registry.metrics()
      expect(count(text, 'method="GET",route="/t/:n",status="200",tenant="ta"')).toBe(3)
      expect(count(text, 'method="GET",route="/missing",status="404",tenant="ta"')).toBe(1)
      expect(count(text, 'method="GET",route="/t/:n",status="200",tenant="none"')).toBe(1)
      expect(text).toMatch(/tenantry_http_request_duration_seconds_count\{method="GET",route="\/t\/:n",tenant="ta"\} 3/)

      // tb's first four count as other; its fifth overtakes ta (5 to 4): ta's series go, and its
      // later requests count as other too.
      for (let i = 0; i < 5; i++) await ask('/t/1', 'tb')
      await ask('/t/1', 'ta')
      text = await registry.metrics()
      expect(text).not.toContain('tenant="ta"')
      expect(count(text, 'method="GET",route="/t/:n",status="200",tenant="tb"')).toBe(1)
      expect(count(text, 'method="GET",route="/t/:n",status="200",tenant="other"')).toBe(5)
      expect(text).toMatch(/tenantry_http_request_duration_seconds_count\{method="GET",route="\/t\/:n",tenant="tb"\} 1/)
    } finally {
      await app.close()
    }
  })
})
