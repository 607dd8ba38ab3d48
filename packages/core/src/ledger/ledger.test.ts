import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { createTenantry, type Tenantry } from '../index.js'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir, type TestDatabase } from '../testing/index.js'
import { findLedgerEntry, LEDGER_CLAIM_RETENTION_MS, LEDGER_STEP_NAME, LEDGER_TABLE, pruneLedger, recordLedgerEntry } from './ledger.js'

// Issue 10: the write ledger is a tenant-local table made by a derived migration step, where
// an entry commits in the same transaction as its write; a key is unique per tenant.

const migrations = {
  '0001_notes': {
    up: async (db: Kysely<any>) => {
      await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('title', 'text').execute()
    },
  },
}
const server = { collections: { notes: { columns: { id: { type: 'integer' }, title: { type: 'text' } } } } }

/** The behaviour every isolation must show, given a tenantry with tenants `acme` and `beta`. */
function ledgerBehaviour(get: () => Tenantry) {
  const inTenant = <T>(slug: string, fn: (db: Kysely<any>) => Promise<T>) => get().withTenant(slug, () => fn(get().db() as unknown as Kysely<any>))
  const transaction = <T>(slug: string, fn: (trx: Kysely<any>) => Promise<T>) => inTenant(slug, (db) => db.transaction().execute(fn))

  it('the step is in the migration set, after the app migrations, and in every tenant ledger', async ({ expect }) => {
    const tenantry = get()
    expect(tenantry.migrations.names).toContain(LEDGER_STEP_NAME)
    expect(tenantry.migrations.names.indexOf(LEDGER_STEP_NAME)).toBeGreaterThan(tenantry.migrations.names.indexOf('0001_notes'))
    const acme = (await tenantry.catalog.findTenantBySlug('acme'))!
    expect((await tenantry.catalog.ledger(acme.id)).map((l) => l.migration)).toContain(LEDGER_STEP_NAME)
  })

  it('records an entry with its write, finds it, and refuses the same key again', async ({ expect }) => {
    await transaction('acme', async (trx) => {
      await trx.insertInto('notes').values({ id: 1, title: 'one' }).execute()
      await recordLedgerEntry(trx, { key: 'k-1', requestHash: 'h1', status: 201, response: { id: 1, title: 'one' } })
    })
    const entry = await inTenant('acme', (db) => findLedgerEntry(db, 'k-1'))
    expect(entry).toMatchObject({ key: 'k-1', requestHash: 'h1', status: 201, response: { id: 1, title: 'one' } })
    expect(Date.parse(entry!.createdAt)).toBeGreaterThan(Date.now() - 60_000)
    // Same key again: IDEMPOTENCY_KEY_IN_USE, and the write of that transaction is rolled back.
    await expect(
      transaction('acme', async (trx) => {
        await trx.insertInto('notes').values({ id: 2, title: 'two' }).execute()
        await recordLedgerEntry(trx, { key: 'k-1', requestHash: 'h2', status: 201, response: {} })
      }),
    ).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_IN_USE' })
    expect(await inTenant('acme', (db) => db.selectFrom('notes').select('id').orderBy('id').execute())).toEqual([{ id: 1 }])
    expect(await inTenant('acme', (db) => findLedgerEntry(db, 'k-1'))).toMatchObject({ requestHash: 'h1' })
  })

  it('a key is per tenant: another tenant neither sees it nor is refused it', async ({ expect }) => {
    expect(await inTenant('beta', (db) => findLedgerEntry(db, 'k-1'))).toBeUndefined()
    await transaction('beta', (trx) => recordLedgerEntry(trx, { key: 'k-1', requestHash: 'other', status: 200, response: null }))
    expect(await inTenant('beta', (db) => findLedgerEntry(db, 'k-1'))).toMatchObject({ requestHash: 'other', response: null })
    expect(await inTenant('acme', (db) => findLedgerEntry(db, 'k-1'))).toMatchObject({ requestHash: 'h1' })
  })

  it('a write that fails leaves no entry; an entry that fails rolls its write back', async ({ expect }) => {
    // The write fails (duplicate primary key) after its entry was recorded: neither stays.
    await expect(
      transaction('acme', async (trx) => {
        await recordLedgerEntry(trx, { key: 'k-fail', requestHash: 'h', status: 201, response: {} })
        await trx.insertInto('notes').values({ id: 1, title: 'dup' }).execute()
      }),
    ).rejects.toThrow()
    expect(await inTenant('acme', (db) => findLedgerEntry(db, 'k-fail'))).toBeUndefined()
    // The entry fails (its response cannot be serialised) after the write: the write is rolled back.
    const circular: Record<string, unknown> = {}
    circular.self = circular
    await expect(
      transaction('acme', async (trx) => {
        await trx.insertInto('notes').values({ id: 3, title: 'three' }).execute()
        await recordLedgerEntry(trx, { key: 'k-fail', requestHash: 'h', status: 201, response: circular })
      }),
    ).rejects.toThrow()
    expect(await inTenant('acme', (db) => db.selectFrom('notes').select('id').where('id', '=', 3).execute())).toEqual([])
  })

  it('prunes entries older than the given age, and only those, in its own tenant', async ({ expect }) => {
    const old = new Date(Date.now() - 25 * 60 * 60 * 1000).toISOString()
    await transaction('acme', async (trx) => {
      await recordLedgerEntry(trx, { key: 'k-old', requestHash: 'h', status: 204, response: undefined })
      await trx.updateTable(LEDGER_TABLE).set({ created_at: old }).where('key', '=', 'k-old').execute()
    })
    await transaction('beta', async (trx) => {
      await recordLedgerEntry(trx, { key: 'k-old', requestHash: 'h', status: 204, response: undefined })
      await trx.updateTable(LEDGER_TABLE).set({ created_at: old }).where('key', '=', 'k-old').execute()
    })
    expect(await inTenant('acme', (db) => findLedgerEntry(db, 'k-old'))).toMatchObject({ status: 204, response: undefined })
    expect(await inTenant('acme', (db) => pruneLedger(db, 24 * 60 * 60 * 1000))).toBe(1)
    expect(await inTenant('acme', (db) => findLedgerEntry(db, 'k-old'))).toBeUndefined()
    expect(await inTenant('acme', (db) => findLedgerEntry(db, 'k-1'))).toBeDefined()
    expect(await inTenant('beta', (db) => findLedgerEntry(db, 'k-old'))).toBeDefined()
    expect(await inTenant('acme', (db) => pruneLedger(db, 24 * 60 * 60 * 1000))).toBe(0)
  })

  it('keeps a claim’s entry for months: a browser may resume a committed claim long after', async ({ expect }) => {
    const day = 24 * 60 * 60 * 1000
    const at = (ms: number) => new Date(Date.now() - ms).toISOString()
    await transaction('acme', async (trx) => {
      for (const [key, age] of [['claim:recent', 30 * day], ['claim:ancient', LEDGER_CLAIM_RETENTION_MS + day], ['write-30d', 30 * day]] as const) {
        await recordLedgerEntry(trx, { key, requestHash: 'h', status: 200, response: { ok: true } })
        await trx.updateTable(LEDGER_TABLE).set({ created_at: at(age) }).where('key', '=', key).execute()
      }
    })
    expect(await inTenant('acme', (db) => pruneLedger(db, day))).toBe(2)
    expect(await inTenant('acme', (db) => findLedgerEntry(db, 'claim:recent'))).toBeDefined()
    expect(await inTenant('acme', (db) => findLedgerEntry(db, 'claim:ancient'))).toBeUndefined()
    expect(await inTenant('acme', (db) => findLedgerEntry(db, 'write-30d'))).toBeUndefined()
  })
}

describe('write ledger on SQLite', () => {
  const home = tempDir()
  let tenantry: Tenantry
  beforeAll(async () => {
    tenantry = await createTenantry({ home: home.path, migrations: { tenant: migrations }, server })
    await tenantry.createTenant({ slug: 'acme' })
    await tenantry.createTenant({ slug: 'beta' })
  })
  afterAll(async () => {
    await tenantry?.close()
    home.cleanup()
  })
  ledgerBehaviour(() => tenantry)

  it('is not made where no collection is declared', async ({ expect }) => {
    const other = tempDir()
    const plain = await createTenantry({ home: other.path, migrations: { tenant: migrations } })
    try {
      expect(plain.migrations.names).toEqual(['0001_notes'])
    } finally {
      await plain.close()
      other.cleanup()
    }
  })

  it('an existing tenant gets the table at the next migrate once collections are declared', async ({ expect }) => {
    const other = tempDir()
    try {
      const before = await createTenantry({ home: other.path, migrations: { tenant: migrations } })
      await before.createTenant({ slug: 'old' })
      await before.close()
      const after = await createTenantry({ home: other.path, migrations: { tenant: migrations }, server })
      try {
        const report = await after.migrate()
        expect(report.results).toEqual([expect.objectContaining({ slug: 'old', status: 'success', applied: [LEDGER_STEP_NAME] })])
        const tables = await after.withTenant('old', () => sql<{ name: string }>`select name from sqlite_master where name = ${LEDGER_TABLE}`.execute(after.db()))
        expect(tables.rows).toEqual([{ name: LEDGER_TABLE }])
      } finally {
        await after.close()
      }
    } finally {
      other.cleanup()
    }
  })
})

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping the write ledger on Postgres: ${postgres.skip}`)

for (const isolation of ['schema', 'row', 'database'] as const) {
  describe.skipIf('skip' in postgres)(`write ledger on Postgres, ${isolation} isolation`, () => {
    const home = tempDir()
    const dataSourceId = `ledger_${isolation}_${process.pid}`
    let data: TestDatabase
    let tenantry: Tenantry
    beforeAll(async () => {
      if (!('url' in postgres)) return
      data = await createTestDatabase(postgres.url, `tenantry_ledger_${isolation}`)
      tenantry = await createTenantry({
        home: home.path,
        migrations: { tenant: migrations },
        dataSources: [{ id: dataSourceId, engine: 'postgres', url: data.url, isolations: [isolation] }],
        defaults: { dataSource: dataSourceId, isolation },
        server,
      })
      await tenantry.createTenant({ slug: 'acme' })
      await tenantry.createTenant({ slug: 'beta' })
    })
    afterAll(async () => {
      if (!('url' in postgres)) return
      for (const slug of ['acme', 'beta']) await tenantry?.deleteTenant(slug, { purge: true }).catch(() => {})
      await tenantry?.close()
      await data?.drop()
      await dropAppRoles(postgres.url, [dataSourceId])
      home.cleanup()
    })
    ledgerBehaviour(() => tenantry)

    if (isolation === 'row') {
      it('the shared table is confined like an app table: tenant_id leads its key, RLS forced', async ({ expect }) => {
        const rows = await tenantry.withTenant('acme', () =>
          sql<{ forced: boolean; key: string }>`
            select c.relforcerowsecurity as forced, pg_get_constraintdef(con.oid) as key
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            join pg_constraint con on con.conrelid = c.oid and con.contype = 'p'
            where n.nspname = 'tenant_rows' and c.relname = ${LEDGER_TABLE}`.execute(tenantry.db()),
        )
        expect(rows.rows).toEqual([{ forced: true, key: 'PRIMARY KEY (tenant_id, key)' }])
        // Raw SQL through acme's handle sees acme's entries alone (RLS, not only the query layer).
        const keys = await tenantry.withTenant('beta', () => sql<{ n: string }>`select count(*) as n from tenant_rows.tenantry_writes`.execute(tenantry.db()))
        expect(Number(keys.rows[0]!.n)).toBe(2)
      })
    }
  })
}
