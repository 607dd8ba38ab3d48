import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TokenRecord, Tenantry } from 'tenantry'
import { Client, signUp, startTestServer, type TestServer } from '@tenantry/server/testing'
import { VerifiedTokenCache, verifiedTokens } from './verified-tokens.js'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))

function record(id: string, tenantId: string, extra: Partial<TokenRecord> = {}): TokenRecord {
  const now = new Date().toISOString()
  return { id, tenantId, name: 't', prefix: `tnt_${id}_xxxx`, readOnly: true, createdAt: now, expiresAt: null, revokedAt: null, lastUsedAt: now, createdBy: 'system', ...extra }
}

/** A stand-in for `tenantry.tokens.verify` that counts its calls and answers from `valid`. */
function fakeTenantry(valid: Map<string, TokenRecord>) {
  const calls: string[] = []
  const tenantry = {
    tokens: {
      verify: async (token: string) => {
        calls.push(token)
        return valid.get(token)
      },
    },
  } as unknown as Tenantry
  return { tenantry, calls }
}

describe('VerifiedTokenCache', () => {
  it('asks the catalog once per TTL, and again once the TTL is over', async () => {
    let now = 1_000_000
    const cache = new VerifiedTokenCache({ ttlMs: 1000, now: () => now })
    const { tenantry, calls } = fakeTenantry(new Map([['tnt_a', record('a', 'A')]]))
    expect((await cache.verify(tenantry, 'tnt_a'))?.id).toBe('a')
    expect((await cache.verify(tenantry, 'tnt_a'))?.id).toBe('a')
    expect(calls).toHaveLength(1)
    now += 1000
    expect((await cache.verify(tenantry, 'tnt_a'))?.id).toBe('a')
    expect(calls).toHaveLength(2)
  })

  it('never keeps a refusal, and keys by the whole token: a wrong secret for a cached id is judged again', async () => {
    const cache = new VerifiedTokenCache()
    const valid = new Map([['tnt_a_right', record('a', 'A')]])
    const { tenantry, calls } = fakeTenantry(valid)
    expect(await cache.verify(tenantry, 'tnt_a_right')).toBeDefined()
    expect(await cache.verify(tenantry, 'tnt_a_wrong')).toBeUndefined()
    expect(await cache.verify(tenantry, 'tnt_a_wrong')).toBeUndefined()
    expect(calls).toEqual(['tnt_a_right', 'tnt_a_wrong', 'tnt_a_wrong'])
    // A token refused once and valid since (not a real case, but a refusal must not stick).
    valid.set('tnt_a_wrong', record('a2', 'A'))
    expect((await cache.verify(tenantry, 'tnt_a_wrong'))?.id).toBe('a2')
  })

  it('drops a token on invalidate, a tenant’s tokens on invalidateTenant, everything on clear', async () => {
    const cache = new VerifiedTokenCache({ ttlMs: 60_000 })
    const valid = new Map([
      ['tnt_a1', record('a1', 'A')],
      ['tnt_a2', record('a2', 'A')],
      ['tnt_b1', record('b1', 'B')],
    ])
    const { tenantry, calls } = fakeTenantry(valid)
    for (const token of valid.keys()) await cache.verify(tenantry, token)
    expect(cache.size).toBe(3)
    valid.delete('tnt_a1') // revoked
    cache.invalidate('a1')
    expect(await cache.verify(tenantry, 'tnt_a1')).toBeUndefined()
    expect(cache.size).toBe(2)
    cache.invalidateTenant('A')
    expect(cache.size).toBe(1)
    cache.invalidateTenant('B')
    expect(cache.size).toBe(0)
    for (const token of ['tnt_a2', 'tnt_b1']) await cache.verify(tenantry, token)
    cache.clear()
    expect(cache.size).toBe(0)
    expect(calls).toHaveLength(6)
  })

  it('does not keep an answer read before an invalidation that came while it was being read', async () => {
    const cache = new VerifiedTokenCache({ ttlMs: 60_000 })
    let release!: () => void
    const tenantry = {
      tokens: { verify: () => new Promise<TokenRecord>((resolve) => (release = () => resolve(record('a', 'A')))) },
    } as unknown as Tenantry
    const pending = cache.verify(tenantry, 'tnt_a')
    cache.invalidate('a') // the revocation commits while the old row is on its way
    release()
    expect((await pending)?.id).toBe('a')
    expect(cache.size).toBe(0)
  })

  it('trusts a token no longer than its own expiry, and lets `verify` write last_used_at each minute', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z')
    const cache = new VerifiedTokenCache({ ttlMs: 10 * 60_000, now: () => now })
    const { tenantry, calls } = fakeTenantry(
      new Map([
        ['tnt_e', record('e', 'A', { expiresAt: new Date(now + 5_000).toISOString(), lastUsedAt: new Date(now).toISOString() })],
        ['tnt_u', record('u', 'A', { lastUsedAt: new Date(now - 59_000).toISOString() })],
      ]),
    )
    await cache.verify(tenantry, 'tnt_e')
    await cache.verify(tenantry, 'tnt_u')
    now += 1_000
    await cache.verify(tenantry, 'tnt_e')
    await cache.verify(tenantry, 'tnt_u') // its last use is a minute old: `verify` must see it
    expect(calls).toEqual(['tnt_e', 'tnt_u', 'tnt_u'])
    now += 5_000
    await cache.verify(tenantry, 'tnt_e')
    expect(calls).toEqual(['tnt_e', 'tnt_u', 'tnt_u', 'tnt_e'])
  })

  it('follows a change feed: token, tenant and reset changes', async () => {
    const cache = new VerifiedTokenCache({ ttlMs: 60_000 })
    let listener!: (change: { kind: string; tokenId?: string; tenantId?: string }) => void
    const stop = cache.follow({ subscribe: (l) => ((listener = l), () => undefined) })
    const { tenantry } = fakeTenantry(new Map([['tnt_a', record('a', 'A')], ['tnt_b', record('b', 'B')], ['tnt_c', record('c', 'C')]]))
    for (const token of ['tnt_a', 'tnt_b', 'tnt_c']) await cache.verify(tenantry, token)
    listener({ kind: 'token', tokenId: 'a' })
    expect(cache.size).toBe(2)
    listener({ kind: 'tenant', tenantId: 'B' })
    expect(cache.size).toBe(1)
    listener({ kind: 'reset' })
    expect(cache.size).toBe(0)
    stop()
  })
})

describe('verified tokens over HTTP', () => {
  let server: TestServer
  let owner: Client
  beforeAll(async () => {
    server = await startTestServer({ config: REPO_CONFIG })
    owner = await signUp(server, 'owner@cache.test')
    const org = await owner.post('/api/auth/organization/create', { name: 'Other', slug: 'cache_b' })
    expect(org.status, org.text).toBe(200)
  })
  afterAll(async () => server?.stop())
  const expect200 = (reply: { status: number; text: string }) => {
    if (reply.status !== 200) throw new Error(`${reply.status} ${reply.text}`)
  }

  it('refuses a token revoked through the API on the very next request, though it was just verified', async () => {
    const created = await owner.post('/api/t/cache_b/tokens', { name: 'ci', readOnly: true })
    expect(created.status, created.text).toBe(201)
    const token = new Client(server.url, { authorization: `Bearer ${created.body.token}` })
    expect200(await token.get('/api/t/cache_b/data/jobs'))
    expect200(await token.get('/api/t/cache_b/data/jobs'))
    expect(verifiedTokens(server.tenantry).size).toBeGreaterThan(0)
    expect((await owner.delete(`/api/t/cache_b/tokens/${created.body.record.id}`)).status).toBe(200)
    expect((await token.get('/api/t/cache_b/data/jobs')).status).toBe(401)
  })

  it('refuses a token revoked in-process through core (the change feed), though it was just verified', async () => {
    const { token, record } = await server.tenantry.tokens.create('cache_b', { readOnly: true })
    const client = new Client(server.url, { authorization: `Bearer ${token}` })
    expect200(await client.get('/api/t/cache_b/data/jobs'))
    await server.tenantry.tokens.revoke(record.id)
    expect((await client.get('/api/t/cache_b/data/jobs')).status).toBe(401)
  })

  it('keeps tenants apart: a cached token of one tenant never reads another', async () => {
    await server.tenantry.createTenant({ slug: 'cache_a' })
    const a = await server.tenantry.tokens.create('cache_a', { readOnly: true })
    const b = await server.tenantry.tokens.create('cache_b', { readOnly: true })
    const clientA = new Client(server.url, { authorization: `Bearer ${a.token}` })
    const clientB = new Client(server.url, { authorization: `Bearer ${b.token}` })
    // Both cached now.
    expect200(await clientA.get('/api/t/cache_a/data/jobs'))
    expect200(await clientB.get('/api/t/cache_b/data/jobs'))
    expect((await clientA.get('/api/t/cache_b/data/jobs')).status).toBe(404)
    expect((await clientB.get('/api/t/cache_a/data/jobs')).status).toBe(404)
    // The token's own tenant, not the path's, is what `/api/tenant` serves.
    expect((await clientA.get('/api/tenant/data/jobs')).status).toBe(200)
    // A's id with B's secret: not A's cached entry.
    const forged = `tnt_${a.record.id}_${b.token.split('_').at(-1)!}`
    expect((await new Client(server.url, { authorization: `Bearer ${forged}` }).get('/api/t/cache_a/data/jobs')).status).toBe(401)
  })

  it('refuses a suspended tenant’s cached token at once', async () => {
    await server.tenantry.createTenant({ slug: 'cache_s' })
    const { token } = await server.tenantry.tokens.create('cache_s', { readOnly: true })
    const client = new Client(server.url, { authorization: `Bearer ${token}` })
    expect200(await client.get('/api/t/cache_s/data/jobs'))
    await server.tenantry.tenants.suspend('cache_s')
    const after = await client.get('/api/t/cache_s/data/jobs')
    expect([401, 409]).toContain(after.status)
  })
})
