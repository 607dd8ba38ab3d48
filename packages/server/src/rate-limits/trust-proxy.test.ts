import { afterAll, beforeAll, describe, it } from 'vitest'
import type { TenantryConfig } from 'tenantry'
import { parseServerConfig } from '@tenantry/server'
import { Client, startTestServer, type TestServer } from '@tenantry/server/testing'

// Issue 9: limits by address (the sign-in throttle above all) key on the client's address.
// Behind a reverse proxy every client is the proxy; believing any X-Forwarded-For instead
// would let a password guesser name a new address per attempt. `server.trustProxy` says whose
// X-Forwarded-For is believed: nobody's by default.

function config(trustProxy: unknown): TenantryConfig {
  return { server: { trustProxy, limits: { signIn: 2, anonymous: 4 } } } as TenantryConfig
}

/** A wrong-password sign-in from `forwardedFor`: 401 while under the throttle, 429 past it. */
async function signInFrom(server: TestServer, forwardedFor: string): Promise<number> {
  const client = new Client(server.url, { 'x-forwarded-for': forwardedFor })
  return (await client.post('/api/auth/sign-in/email', { email: 'nobody@example.com', password: 'wrong password' })).status
}

describe('server.trustProxy off (the default)', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startTestServer({ config: { server: { limits: { signIn: 2, anonymous: 1000 } } } })
  })
  afterAll(async () => server?.stop())

  it('a spoofed X-Forwarded-For does not reset the sign-in throttle', async ({ expect }) => {
    expect(await signInFrom(server, '203.0.113.1')).toBe(401)
    expect(await signInFrom(server, '203.0.113.2')).toBe(401)
    // Two attempts from 127.0.0.1 whatever the header claimed: the third is throttled.
    expect(await signInFrom(server, '203.0.113.3')).toBe(429)
    expect(await signInFrom(server, '198.51.100.7')).toBe(429)
    // Nor does the header Better Auth reads the address from: the server sets it, replacing the client's.
    const direct = new Client(server.url, { 'x-tenantry-client-ip': '198.51.100.8' })
    expect((await direct.post('/api/auth/sign-in/email', { email: 'nobody@example.com', password: 'wrong password' })).status).toBe(429)
  })
})

describe('server.trustProxy naming the proxy (127.0.0.1)', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startTestServer({ config: config(['127.0.0.1']) })
  })
  afterAll(async () => server?.stop())

  it('throttles sign-ins of two forwarded addresses separately', async ({ expect }) => {
    expect(await signInFrom(server, '203.0.113.1')).toBe(401)
    expect(await signInFrom(server, '203.0.113.1')).toBe(401)
    expect(await signInFrom(server, '203.0.113.1')).toBe(429)
    // Another client behind the same proxy is not throttled by the first one's attempts.
    expect(await signInFrom(server, '203.0.113.2')).toBe(401)
    // A client's own claim before the proxy's entry is not believed: the proxy appended the real address.
    expect(await signInFrom(server, '198.51.100.9, 203.0.113.1')).toBe(429)
  })

  it('limits callers without credentials by the forwarded address', async ({ expect }) => {
    const from = (address: string) => new Client(server.url, { 'x-forwarded-for': address })
    const statuses: number[] = []
    for (let i = 0; i < 5; i++) statuses.push((await from('192.0.2.10').get('/api/me')).status)
    expect(statuses).toEqual([401, 401, 401, 401, 429])
    expect((await from('192.0.2.11').get('/api/me')).status).toBe(401)
  })
})

describe('server.trustProxy config', () => {
  it('takes false, true, a hop count, addresses and CIDR ranges, and refuses anything else by path', ({ expect }) => {
    for (const ok of [false, true, 1, '10.0.0.1', 'loopback', ['10.0.0.0/8', '::1', 'fd00::/8']]) {
      expect(parseServerConfig({ trustProxy: ok }).trustProxy, JSON.stringify(ok)).toEqual(ok)
    }
    expect(parseServerConfig({}).trustProxy).toBe(false)
    for (const bad of ['everyone', '10.0.0.0/33', ['10.0.0.1', 'proxy.local'], 0, []]) {
      expect(() => parseServerConfig({ trustProxy: bad }), JSON.stringify(bad)).toThrow(/server\.trustProxy/)
    }
  })
})
