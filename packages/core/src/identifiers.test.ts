import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isTenantryError } from './errors.js'
import {
  assertTenantId,
  assertValidIdentifier,
  assertValidSlug,
  newTenantId,
  quoteIdentifier,
  quoteLiteral,
  quoteReportedName,
  slugProblem,
  TENANT_ID_PATTERN,
} from './identifiers.js'
import { tempDir } from './testing/services.js'
import { createTenantry, type Tenantry } from './tenantry.js'

/** Slugs that must be refused, each with what the refusal must say. */
const HOSTILE_SLUGS: Array<[label: string, slug: string, why: RegExp]> = [
  ['path traversal', '../x', /lowercase a-z/],
  ['absolute path', '/etc/passwd', /lowercase a-z/],
  ['SQL injection', 'a;drop table', /lowercase a-z/],
  ['quote', "acme'--", /lowercase a-z/],
  ['uppercase', 'Tenant', /lowercase a-z/],
  ['Cyrillic look-alike', '\u0430cme', /lowercase a-z/],
  ['fullwidth letters', '\uff41\uff43\uff4d\uff45', /lowercase a-z/],
  ['zero-width joiner inside', 'ac\u200dme', /lowercase a-z/],
  ['64 characters', `a${'b'.repeat(63)}`, /64 characters long; at most 63/],
  ['empty', '', /empty/],
  ['one character', 'a', /2-63 characters/],
  ['leading digit', '1acme', /starting with a letter/],
  ['leading underscore', '_acme', /starting with a letter/],
  ['reserved: admin', 'admin', /"admin" is a reserved name/],
  ['reserved: public', 'public', /"public" is a reserved name/],
  ['reserved: select', 'select', /"select" is a reserved name/],
  ['reserved prefix pg_', 'pg_x', /starting with "pg_" are reserved/],
  ['reserved prefix sqlite_', 'sqlite_x', /starting with "sqlite_" are reserved/],
  ['leading space', ' acme', /lowercase a-z/],
  ['inner space', 'ac me', /lowercase a-z/],
  ['trailing newline', 'acme\n', /lowercase a-z/],
  ['tab', 'ac\tme', /lowercase a-z/],
  ['null byte', 'acme\u0000', /lowercase a-z/],
  ['dash', 'acme-corp', /lowercase a-z/],
]

describe('slugProblem / assertValidSlug', () => {
  it.each(HOSTILE_SLUGS)('refuses %s', (_label, slug, why) => {
    expect(slugProblem(slug)).toMatch(why)
    let error: unknown
    try {
      assertValidSlug(slug)
    } catch (e) {
      error = e
    }
    expect(isTenantryError(error, 'INVALID_SLUG')).toBe(true)
    const { message, details } = error as { message: string; details: unknown }
    expect(message).toMatch(why)
    expect(details).toEqual({ slug })
    // The slug is quoted and escaped, so control characters never reach a log line raw.
    expect(message).toContain(JSON.stringify(slug))
    expect(message).not.toMatch(/[\u0000-\u001f]/)
  })

  it.each([
    ['two characters', 'ab'],
    ['63 characters', `a${'b'.repeat(62)}`],
    ['digits and underscores', 'acme_2024'],
    ['a reserved word as a prefix only', 'admins'],
    ['a reserved prefix without its underscore', 'pgadmin'],
  ])('accepts %s', (_label, slug) => {
    expect(slugProblem(slug)).toBeUndefined()
    expect(() => assertValidSlug(slug)).not.toThrow()
  })

  it.each([null, undefined, 42, {}, ['acme']])('refuses the non-string %j', (value) => {
    expect(slugProblem(value)).toBe('slug is empty')
    expect(() => assertValidSlug(value)).toThrow(expect.objectContaining({ code: 'INVALID_SLUG' }))
  })
})

describe('tenant ids and identifiers', () => {
  it('makes ids that are safe as file names and distinct', () => {
    const ids = Array.from({ length: 2000 }, newTenantId)
    for (const id of ids) expect(id).toMatch(TENANT_ID_PATTERN)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it.each(['../x', 'tAAAAAAAAAAAAAAAAAAA', 't0000000000000000000', `${newTenantId()}x`, 'x' + newTenantId().slice(1), ''])('refuses the tenant id %j', (id) => {
    expect(() => assertTenantId(id)).toThrow(expect.objectContaining({ code: 'INVALID_IDENTIFIER' }))
  })

  it.each(['Local', '../x', 'a-b', '', 'a'.repeat(64)])('refuses the data source id %j', (id) => {
    expect(() => assertValidIdentifier('data source id', id)).toThrow(expect.objectContaining({ code: 'INVALID_IDENTIFIER' }))
  })
})

describe('hostile slugs through createTenant', () => {
  const root = tempDir('tenantry-identifiers-')
  let tenantry: Tenantry

  beforeAll(async () => {
    tenantry = await createTenantry({
      home: root.path,
      migrations: { tenant: { '0001_jobs': { up: (db) => db.schema.createTable('jobs').addColumn('id', 'integer').execute() } } },
      dataSources: [{ id: 'local', engine: 'sqlite' }],
    })
  })

  afterAll(async () => {
    await tenantry.close()
    root.cleanup()
  })

  it.each(HOSTILE_SLUGS)('refuses %s with INVALID_SLUG and creates nothing', async (_label, slug, why) => {
    const error = await tenantry.createTenant({ slug }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'INVALID_SLUG', message: expect.stringMatching(why) })
    expect(await tenantry.catalog.countTenants()).toBe(0)
    expect(await tenantry.catalog.db.selectFrom('locks').selectAll().execute()).toEqual([])
    const tenants = join(root.path, 'tenants')
    expect(existsSync(tenants) ? readdirSync(tenants) : []).toEqual([])
    expect(readdirSync(root.path).sort()).toEqual(['catalog.db', 'catalog.db-shm', 'catalog.db-wal'])
    await expect(tenantry.deleteTenant(slug, { purge: true })).rejects.toMatchObject({ code: 'INVALID_SLUG' })
  })

  it('still creates a tenant from a valid 63-character slug', async () => {
    const slug = `a${'b'.repeat(62)}`
    const created = await tenantry.createTenant({ slug })
    expect(created).toMatchObject({ slug, status: 'ready' })
    expect(await tenantry.withTenant(slug, () => tenantry.db().selectFrom('jobs').selectAll().execute())).toEqual([])
  })
})

describe('SQL quoting', () => {
  it('quotes only names Tenantry builds, and refuses anything else', () => {
    expect(quoteIdentifier('t_tabcdefghijklmnopqrs')).toBe('"t_tabcdefghijklmnopqrs"')
    for (const hostile of ['a"; drop table x; --', 'A', '1a', 'a'.repeat(64), '', 'a b', 'a-b', '\u0430']) {
      expect(() => quoteIdentifier(hostile), hostile).toThrowError(expect.objectContaining({ code: 'INVALID_IDENTIFIER' }))
    }
  })

  it('doubles the quotes of names and literals it is given as text', () => {
    expect(quoteReportedName('my "odd" table')).toBe('"my ""odd"" table"')
    expect(quoteLiteral("it's")).toBe("'it''s'")
  })
})
