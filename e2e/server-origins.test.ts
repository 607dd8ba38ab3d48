import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Client, signUp, startTestServer, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../tenantry.config.ts', import.meta.url))

// Regression: the README sends people to http://localhost:3000 while the server calls itself
// 127.0.0.1, and Better Auth refused the signed-in browser's `localhost` origin as foreign.
let server: TestServer
beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG })
})
afterAll(async () => server?.stop())

/** A signed-in browser whose requests carry `origin`. Better Auth checks the origin of requests with cookies (CSRF). */
async function browserAt(origin: string, email: string): Promise<Client> {
  const client = await signUp(server, email)
  const browser = new Client(server.url, { origin })
  for (const [name, value] of client.cookies) browser.cookies.set(name, value)
  return browser
}

it('accepts both loopback spellings of its own origin from a signed-in browser, and refuses foreign ones', async () => {
  const port = new URL(server.url).port
  const create = (client: Client, slug: string) => client.post('/api/auth/organization/create', { name: slug, slug })
  expect((await create(await browserAt(`http://localhost:${port}`, 'a@origins.test'), 'via_localhost')).status).toBe(200)
  expect((await create(await browserAt(`http://127.0.0.1:${port}`, 'b@origins.test'), 'via_loopback')).status).toBe(200)
  for (const origin of ['http://evil.example', `http://localhost:${Number(port) + 1}`]) {
    const reply = await create(await browserAt(origin, `c${origin.length}@origins.test`), 'forged')
    expect(reply.status, origin).toBe(403)
    expect(reply.body.code).toBe('INVALID_ORIGIN') // Better Auth's own shape on its routes
  }
  expect(await server.tenantry.catalog.findTenantBySlug('forged')).toBeUndefined()
})
