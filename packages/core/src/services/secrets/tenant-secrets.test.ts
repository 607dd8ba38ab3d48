import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, rotateSecretKey, SecretBox, type Tenantry } from '../../index.js'
import { createTestDatabase, findPostgres, tempDir, type TestDatabase } from '../../testing/index.js'
import { tenantKeyPurpose, tenantSecretPurpose } from './tenant-secrets.js'

// Issue 12: tenant secrets with envelope encryption: a data key per tenant sealed by the
// master key, values sealed by the data key and bound to the tenant and the name.

const STRIPE = 'sk_live_51HxQpZ2eZvKYlo2C0aBcDeFgHiJkLmNoP'
const RESEND = 're_9Zq8Xw7Vu6Ts5Rq4Po3Nm2Lk1'

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping tenantry.secrets on a Postgres catalog: ${postgres.skip}`)

const catalogs = [
  { name: 'a SQLite catalog', postgres: false },
  { name: 'a Postgres catalog', postgres: true, skip: 'skip' in postgres },
]

for (const catalogKind of catalogs) describe.skipIf(catalogKind.skip === true)(`tenantry.secrets on ${catalogKind.name}`, () => {
  const home = tempDir()
  let catalogDb: TestDatabase | undefined
  // The key file of this home, not a developer's TENANTRY_SECRET_KEY.
  const savedKey = process.env.TENANTRY_SECRET_KEY
  let tenantry: Tenantry
  let acme: string
  let beta: string
  const as = <T>(slug: string, fn: () => Promise<T>) => tenantry.withTenant(slug, fn)
  const open = () => createTenantry({ home: home.path, ...(catalogDb ? { catalogUrl: catalogDb.url } : {}) })

  beforeAll(async () => {
    delete process.env.TENANTRY_SECRET_KEY
    if (catalogKind.postgres && 'url' in postgres) catalogDb = await createTestDatabase(postgres.url, 'tenantry_secrets_catalog')
    tenantry = await open()
    acme = (await tenantry.createTenant({ slug: 'acme' })).id
    beta = (await tenantry.createTenant({ slug: 'beta' })).id
  })
  afterAll(async () => {
    await tenantry?.close()
    await catalogDb?.drop()
    home.cleanup()
    if (savedKey !== undefined) process.env.TENANTRY_SECRET_KEY = savedKey
  })

  it('outside withTenant every call is NO_TENANT', async () => {
    for (const call of [() => tenantry.secrets.set('A', 'x'), () => tenantry.secrets.get('A'), () => tenantry.secrets.list(), () => tenantry.secrets.delete('A')]) {
      await expect(call()).rejects.toMatchObject({ code: 'NO_TENANT' })
    }
    expect(await tenantry.catalog.db.selectFrom('tenant_keys').selectAll().execute()).toEqual([])
  })

  it('set, get, list (names and dates, never values), replace, delete', async () => {
    const created = await as('acme', () => tenantry.secrets.set('STRIPE_SECRET_KEY', STRIPE, { actor: 'user:alice' }))
    expect(created).toMatchObject({ name: 'STRIPE_SECRET_KEY', createdBy: 'user:alice', updatedBy: 'user:alice' })
    await as('acme', () => tenantry.secrets.set('resend.api-key', 'first'))
    await as('acme', () => tenantry.secrets.set('resend.api-key', RESEND, { actor: 'user:bob' }))
    expect(await as('acme', () => tenantry.secrets.get('STRIPE_SECRET_KEY'))).toBe(STRIPE)
    expect(await as('acme', () => tenantry.secrets.get('resend.api-key'))).toBe(RESEND)
    expect(await as('acme', () => tenantry.secrets.get('MISSING'))).toBeUndefined()
    const listed = await as('acme', () => tenantry.secrets.list())
    expect(listed.map((s) => s.name)).toEqual(['STRIPE_SECRET_KEY', 'resend.api-key'])
    expect(listed[1]).toMatchObject({ createdBy: 'system', updatedBy: 'user:bob' })
    expect(JSON.stringify(listed)).not.toContain(STRIPE)
    // Another tenant has its own (empty) set of secrets.
    expect(await as('beta', () => tenantry.secrets.list())).toEqual([])
    expect(await as('beta', () => tenantry.secrets.get('STRIPE_SECRET_KEY'))).toBeUndefined()
    await as('acme', () => tenantry.secrets.set('TEMP', 'x'))
    expect(await as('acme', () => tenantry.secrets.delete('TEMP'))).toBe(true)
    expect(await as('acme', () => tenantry.secrets.delete('TEMP'))).toBe(false)
    // The audit log names the secrets, never their values.
    const audit = await tenantry.catalog.auditLog(acme)
    expect(audit.filter((e) => e.action.startsWith('secret.')).map((e) => [e.action, (e.details as { name: string }).name])).toEqual([
      ['secret.created', 'STRIPE_SECRET_KEY'],
      ['secret.created', 'resend.api-key'],
      ['secret.updated', 'resend.api-key'],
      ['secret.created', 'TEMP'],
      ['secret.deleted', 'TEMP'],
    ])
    expect(JSON.stringify(audit)).not.toContain(STRIPE)
  })

  it('nothing in the catalog holds a value in clear', async () => {
    const dump = JSON.stringify(await tenantry.catalog.db.selectFrom('tenant_secrets').selectAll().execute()) + JSON.stringify(await tenantry.catalog.db.selectFrom('tenant_keys').selectAll().execute())
    expect(dump).not.toContain(STRIPE)
    expect(dump).not.toContain(RESEND)
    if (catalogKind.postgres) return
    const files = readdirSync(home.path).filter((f) => f.startsWith('catalog'))
    const bytes = files.map((f) => readFileSync(join(home.path, f)).toString('latin1')).join('')
    expect(bytes).not.toContain(STRIPE)
    expect(bytes).not.toContain(RESEND)
    const rows = await tenantry.catalog.db.selectFrom('tenant_secrets').select(['tenant_id', 'name', 'sealed']).execute()
    for (const row of rows) expect(row.sealed).toMatch(/^v1\./)
  })

  it('a ciphertext moved to another tenant or another name fails to open', async () => {
    await as('beta', () => tenantry.secrets.set('STRIPE_SECRET_KEY', 'beta-own-key'))
    const stolen = await tenantry.catalog.db.selectFrom('tenant_secrets').select('sealed').where('tenant_id', '=', acme).where('name', '=', 'STRIPE_SECRET_KEY').executeTakeFirstOrThrow()
    // Onto beta's row of the same name.
    await tenantry.catalog.db.updateTable('tenant_secrets').set({ sealed: stolen.sealed }).where('tenant_id', '=', beta).where('name', '=', 'STRIPE_SECRET_KEY').execute()
    await expect(as('beta', () => tenantry.secrets.get('STRIPE_SECRET_KEY'))).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
    // Onto another of acme's own names.
    await tenantry.catalog.db.updateTable('tenant_secrets').set({ sealed: stolen.sealed }).where('tenant_id', '=', acme).where('name', '=', 'resend.api-key').execute()
    await expect(as('acme', () => tenantry.secrets.get('resend.api-key'))).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
    // Acme's data key moved to beta does not open as beta's either.
    const acmeKey = await tenantry.catalog.db.selectFrom('tenant_keys').select('sealed').where('tenant_id', '=', acme).executeTakeFirstOrThrow()
    const master = SecretBox.fromEnvironment(join(home.path, 'secret.key'), {}, { create: false })
    expect(() => master.open(acmeKey.sealed, tenantKeyPurpose(beta))).toThrow()
    // Put things right for the next tests.
    await as('beta', () => tenantry.secrets.set('STRIPE_SECRET_KEY', 'beta-own-key'))
    await as('acme', () => tenantry.secrets.set('resend.api-key', RESEND))
  })

  it('refuses bad names and values with INVALID_OPTION and stores nothing', async () => {
    const before = await as('acme', () => tenantry.secrets.list())
    for (const [name, value] of [
      ['', 'x'],
      ['1ABC', 'x'],
      ['has space', 'x'],
      ['a/b', 'x'],
      ['x'.repeat(129), 'x'],
      ['OK', ''],
      ['OK', 'x'.repeat(64 * 1024 + 1)],
      ['OK', 42],
    ] as const) {
      await expect(as('acme', () => tenantry.secrets.set(name, value as string))).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    }
    await expect(as('acme', () => tenantry.secrets.get('../x'))).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    expect(await as('acme', () => tenantry.secrets.list())).toEqual(before)
  })

  it('rotating the master key re-wraps the data keys, leaves the values untouched, and they still open', async () => {
    const values = async () => (await tenantry.catalog.db.selectFrom('tenant_secrets').select(['tenant_id', 'name', 'sealed']).orderBy('tenant_id').orderBy('name').execute())
    const keys = async () => (await tenantry.catalog.db.selectFrom('tenant_keys').select(['tenant_id', 'sealed']).orderBy('tenant_id').execute())
    const valuesBefore = await values()
    const keysBefore = await keys()
    const result = await rotateSecretKey(tenantry.catalog, home.path, {})
    expect(result.resealed).toBeGreaterThanOrEqual(2)
    expect(await values()).toEqual(valuesBefore)
    const keysAfter = await keys()
    expect(keysAfter.map((k) => k.tenant_id)).toEqual(keysBefore.map((k) => k.tenant_id))
    for (const [i, k] of keysAfter.entries()) expect(k.sealed).not.toBe(keysBefore[i]!.sealed)
    // A process started with the new key reads every value.
    await tenantry.close()
    tenantry = await open()
    expect(await as('acme', () => tenantry.secrets.get('STRIPE_SECRET_KEY'))).toBe(STRIPE)
    expect(await as('acme', () => tenantry.secrets.get('resend.api-key'))).toBe(RESEND)
    expect(await as('beta', () => tenantry.secrets.get('STRIPE_SECRET_KEY'))).toBe('beta-own-key')
  })

  it('purging a tenant destroys its data key: a saved copy of its ciphertexts no longer opens', async () => {
    const copy = await tenantry.catalog.db.selectFrom('tenant_secrets').select(['name', 'sealed']).where('tenant_id', '=', acme).execute()
    expect(copy.length).toBe(2)
    const master = SecretBox.fromEnvironment(join(home.path, 'secret.key'), {}, { create: false })
    // Before the purge, the copy opens with acme's data key.
    const sealedKey = (await tenantry.catalog.db.selectFrom('tenant_keys').select('sealed').where('tenant_id', '=', acme).executeTakeFirstOrThrow()).sealed
    const dataKey = new SecretBox(Buffer.from(master.open(sealedKey, tenantKeyPurpose(acme)), 'base64'))
    expect(dataKey.open(copy[0]!.sealed, tenantSecretPurpose(acme, copy[0]!.name))).toBe(STRIPE)

    await tenantry.deleteTenant('acme', { purge: true })
    expect(await tenantry.catalog.db.selectFrom('tenant_keys').selectAll().where('tenant_id', '=', acme).execute()).toEqual([])
    expect(await tenantry.catalog.db.selectFrom('tenant_secrets').selectAll().where('tenant_id', '=', acme).execute()).toEqual([])
    // Every key the catalog still holds (beta's) fails on the copy, and so does the master key itself.
    for (const { tenant_id, sealed } of await tenantry.catalog.db.selectFrom('tenant_keys').select(['tenant_id', 'sealed']).execute()) {
      const other = new SecretBox(Buffer.from(master.open(sealed, tenantKeyPurpose(tenant_id)), 'base64'))
      for (const c of copy) expect(() => other.open(c.sealed, tenantSecretPurpose(acme, c.name))).toThrow()
    }
    for (const c of copy) expect(() => master.open(c.sealed, tenantSecretPurpose(acme, c.name))).toThrow()
    const purged = (await tenantry.catalog.auditLog(acme)).find((e) => e.action === 'tenant.services.purged')
    expect(purged?.details).toMatchObject({ secrets: { secrets: 2, dataKeyDestroyed: true } })
    // A new tenant with the slug has no secrets, and beta's are untouched.
    await tenantry.createTenant({ slug: 'acme' })
    expect(await as('acme', () => tenantry.secrets.list())).toEqual([])
    expect(await as('beta', () => tenantry.secrets.get('STRIPE_SECRET_KEY'))).toBe('beta-own-key')
  })
})
