import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Logger } from '../logger.js'
import { createTenantry, type Tenantry } from '../tenantry.js'
import { tempDir } from '../testing/services.js'
import { LAST_USED_GRANULARITY_MS, parseDuration, TOKEN_PATTERN, TokenStore } from './token-store.js'

const { timingSafeEqual } = vi.hoisted(() => ({ timingSafeEqual: vi.fn() }))
vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:crypto')>()
  timingSafeEqual.mockImplementation(original.timingSafeEqual)
  return { ...original, timingSafeEqual }
})

const dir = tempDir()
let tenantry: Tenantry
const home = join(dir.path, 'home')

beforeAll(async () => {
  tenantry = await createTenantry({
    home,
    migrations: { tenant: { '0001_notes': { up: (db) => db.schema.createTable('notes').addColumn('id', 'integer').execute() } } },
  })
  await tenantry.tenants.create({ slug: 'acme' })
  await tenantry.tenants.create({ slug: 'globex' })
})
afterAll(async () => {
  await tenantry?.close()
  dir.cleanup()
})

/** Every byte of the catalog database and its WAL, as latin1 text to search in. */
function catalogBytes(): string {
  return readdirSync(home)
    .filter((f) => f.startsWith('catalog'))
    .map((f) => readFileSync(join(home, f)).toString('latin1'))
    .join('')
}

describe('TokenStore', () => {
  it('creates a token shown once, verifies it, and keeps only its hash at rest', async () => {
    const { token, record } = await tenantry.tokens.create('acme', { readOnly: true, name: 'n8n', createdBy: 'test' })
    expect(token).toMatch(TOKEN_PATTERN)
    expect(token.startsWith(`tnt_${record.id}_`)).toBe(true)
    expect(record).toMatchObject({ name: 'n8n', readOnly: true, revokedAt: null, expiresAt: null, createdBy: 'test' })
    expect(token.startsWith(record.prefix)).toBe(true)
    expect(record.prefix.length).toBeLessThan(token.length - 30)

    const verified = await tenantry.tokens.verify(token)
    expect(verified).toMatchObject({ id: record.id, readOnly: true })
    const acme = await tenantry.catalog.findTenantBySlug('acme')
    expect(verified?.tenantId).toBe(acme?.id)

    const secret = token.slice(`tnt_${record.id}_`.length)
    const bytes = catalogBytes()
    expect(bytes).not.toContain(secret)
    expect(bytes).not.toContain(secret.slice(8))
    expect(JSON.stringify(await tenantry.tokens.list('acme'))).not.toContain(secret.slice(8))

    const audit = await tenantry.catalog.auditLog(acme!.id)
    expect(audit.find((e) => e.action === 'token.created')).toMatchObject({ actor: 'test', details: { tokenId: record.id } })
    expect(JSON.stringify(audit)).not.toContain(secret.slice(8))
  })

  it('rejects wrong, malformed and foreign-looking tokens', async () => {
    const { token, record } = await tenantry.tokens.create('acme', { readOnly: false })
    const last = token.at(-1) === 'A' ? 'B' : 'A'
    const wrongSecret = token.slice(0, -1) + last
    const unknownId = `tnt_${'a'.repeat(16)}_${token.slice(-43)}`
    const cases = [wrongSecret, unknownId, '', 'tnt_', `tnt_${record.id}`, `${token} `, `${token}x`, token.slice(0, -1), token.toUpperCase(), `Bearer ${token}`, 'not a token']
    for (const candidate of cases) expect(await tenantry.tokens.verify(candidate), candidate).toBeUndefined()
    expect(await tenantry.tokens.verify(token)).toBeDefined()
  })

  it('compares in constant time on both the known-id and the unknown-id path', async () => {
    const { token } = await tenantry.tokens.create('acme', { readOnly: true })
    timingSafeEqual.mockClear()
    expect(await tenantry.tokens.verify(token.slice(0, -1) + (token.at(-1) === 'A' ? 'B' : 'A'))).toBeUndefined()
    expect(await tenantry.tokens.verify(`tnt_${'b'.repeat(16)}_${'x'.repeat(43)}`)).toBeUndefined()
    expect(await tenantry.tokens.verify(token)).toBeDefined()
    // Wrong secret, unknown id and the right token all took the same hash-and-compare path.
    expect(timingSafeEqual).toHaveBeenCalledTimes(3)
    for (const [a, b] of timingSafeEqual.mock.calls) expect([(a as Buffer).length, (b as Buffer).length]).toEqual([32, 32])
  })

  it('lists tokens of one tenant only, with no secret or hash', async () => {
    const { record } = await tenantry.tokens.create('globex', { readOnly: true, name: 'globex-only' })
    const globex = await tenantry.tokens.list('globex')
    expect(globex.map((t) => t.id)).toEqual([record.id])
    expect(Object.keys(globex[0]!)).not.toContain('secretHash')
    expect(JSON.stringify(globex)).not.toMatch(/hash/i)
    expect((await tenantry.tokens.list('acme')).some((t) => t.id === record.id)).toBe(false)
    await expect(tenantry.tokens.list('nobody')).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })
    await expect(tenantry.tokens.create('nobody', { readOnly: true })).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })
  })

  it('revokes one token, leaving the others valid, and audits it', async () => {
    const a = await tenantry.tokens.create('acme', { readOnly: true })
    const b = await tenantry.tokens.create('acme', { readOnly: true })
    const revoked = await tenantry.tokens.revoke(a.record.id, { actor: 'test' })
    expect(revoked.revokedAt).not.toBeNull()
    expect(await tenantry.tokens.verify(a.token)).toBeUndefined()
    expect(await tenantry.tokens.verify(b.token)).toBeDefined()
    expect((await tenantry.tokens.revoke(a.record.id)).revokedAt).toBe(revoked.revokedAt)
    await expect(tenantry.tokens.revoke('zzzzzzzzzzzzzzzz')).rejects.toMatchObject({ code: 'TOKEN_NOT_FOUND' })
    await expect(tenantry.tokens.revoke('../etc')).rejects.toMatchObject({ code: 'TOKEN_NOT_FOUND' })
    const audit = await tenantry.catalog.auditLog(a.record.tenantId)
    expect(audit.filter((e) => e.action === 'token.revoked')).toEqual([
      expect.objectContaining({ actor: 'test', details: expect.objectContaining({ tokenId: a.record.id }) }),
    ])
  })

  it('expires tokens', async () => {
    const { token, record } = await tenantry.tokens.create('acme', { readOnly: true, expiresIn: 50 })
    expect(Date.parse(record.expiresAt!) - Date.parse(record.createdAt)).toBe(50)
    expect(await tenantry.tokens.verify(token)).toBeDefined()
    await new Promise((r) => setTimeout(r, 80))
    expect(await tenantry.tokens.verify(token)).toBeUndefined()
    await expect(tenantry.tokens.create('acme', { readOnly: true, name: 'a\nb' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
  })

  it('takes expiresIn as duration text or milliseconds, and refuses anything else', async () => {
    const lifetime = async (expiresIn: string | number) => {
      const { record } = await tenantry.tokens.create('acme', { readOnly: true, expiresIn })
      return Date.parse(record.expiresAt!) - Date.parse(record.createdAt)
    }
    expect(await lifetime('30d')).toBe(30 * 86_400_000)
    expect(await lifetime('12h')).toBe(12 * 3_600_000)
    expect(await lifetime('90m')).toBe(90 * 60_000)
    expect(await lifetime(60_000)).toBe(60_000)
    expect((await tenantry.tokens.create('acme', { readOnly: true })).record.expiresAt).toBeNull()
    const before = (await tenantry.tokens.list('acme')).length
    for (const bad of [0, -1, Number.NaN, Infinity, 101 * 365 * 86_400_000, '', '30', '30 days', '1y', '0d', '999999w']) {
      await expect(tenantry.tokens.create('acme', { readOnly: true, expiresIn: bad }), String(bad)).rejects.toMatchObject({
        code: 'INVALID_OPTION',
        message: expect.stringMatching(/^Invalid expiresIn /),
      })
    }
    // Refused before anything was written.
    expect(await tenantry.tokens.list('acme')).toHaveLength(before)
  })

  it('refuses tokens of a tenant that is not ready', async () => {
    await tenantry.tenants.create({ slug: 'initech' })
    const { token } = await tenantry.tokens.create('initech', { readOnly: false })
    expect(await tenantry.tokens.verify(token)).toBeDefined()
    await tenantry.tenants.suspend('initech')
    expect(await tenantry.tokens.verify(token)).toBeUndefined()
    await tenantry.tenants.resume('initech')
    expect(await tenantry.tokens.verify(token)).toBeDefined()
    await tenantry.tenants.delete('initech')
    expect(await tenantry.tokens.verify(token)).toBeUndefined()
  })

  it('records last use at most once a minute', async () => {
    const { token, record } = await tenantry.tokens.create('acme', { readOnly: true })
    const first = await tenantry.tokens.verify(token)
    expect(first?.lastUsedAt).not.toBeNull()
    await tenantry.tokens.verify(token)
    const stored = await tenantry.tokens.find(record.id)
    expect(stored?.lastUsedAt).toBe(first?.lastUsedAt)
    // Pretend the last use was long ago: the next verify writes again.
    const old = new Date(Date.now() - LAST_USED_GRANULARITY_MS - 1000).toISOString()
    await tenantry.catalog.db.updateTable('tokens').set({ last_used_at: old }).where('id', '=', record.id).execute()
    await tenantry.tokens.verify(token)
    expect((await tenantry.tokens.find(record.id))?.lastUsedAt).not.toBe(old)
  })

  it('parses durations', () => {
    expect(parseDuration('30d')).toBe(30 * 86_400_000)
    expect(parseDuration('12h')).toBe(12 * 3_600_000)
    expect(parseDuration('2w')).toBe(14 * 86_400_000)
    for (const bad of ['', '0d', '30', 'd', '1.5h', '-1d', '30 days', '1y']) expect(parseDuration(bad), bad).toBeUndefined()
  })

  // Regression: a failed last-use write was dropped without a word (`.catch(() => {})`).
  it('logs a failed last-use write once, with the tenant id, and still verifies the token', async () => {
    const lines: Array<{ level: string; facts: Record<string, unknown>; message: string }> = []
    const record = (level: string) => (facts: Record<string, unknown>, message: string) => void lines.push({ level, facts, message })
    const logger: Logger = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug') }
    const tokens = new TokenStore(tenantry.catalog, { logger })
    const { token, record: created } = await tokens.create('globex', { readOnly: true })
    await sql`CREATE TRIGGER refuse_last_use BEFORE UPDATE OF last_used_at ON tokens
      BEGIN SELECT RAISE(ABORT, 'last use refused'); END`.execute(tenantry.catalog.db)
    try {
      expect(await tokens.verify(token)).toMatchObject({ id: created.id })
    } finally {
      await sql`DROP TRIGGER refuse_last_use`.execute(tenantry.catalog.db)
    }
    expect(lines).toEqual([
      {
        level: 'warn',
        facts: { err: expect.objectContaining({ message: 'last use refused' }), tenantId: created.tenantId, tokenId: created.id },
        message: "Recording a token's last use failed; the request goes on",
      },
    ])
  })
})
