import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type SqliteEngine, type Tenantry } from '../index.js'
import { runDoctor } from '../doctor/doctor.js'
import { repairHalfMade } from '../doctor/repair.js'
import { createTestDatabase, dropAppRoles, findPostgres, openFilesUnder, tempDir, type TestDatabase } from '../testing/index.js'

// Issue 13: adopt existing databases (a SQLite file, seed 002's tenant_<slug> schemas), split one
// shared SQLite database (seed 004's user_id) into tenants, external ids.

/** Seed 004's app, as a Tenantry migration set: prospects and emails keyed by user_id. */
const migrations = {
  '0001_prospects': {
    up: async (db: Kysely<any>, { engine }: { engine: string }) => {
      const pg = engine === 'postgres'
      await db.schema
        .createTable('prospects')
        .addColumn('id', 'integer', (c) => (pg ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('website', 'text', (c) => c.notNull())
        .execute()
    },
  },
  '0002_emails': {
    up: async (db: Kysely<any>, { engine }: { engine: string }) => {
      const pg = engine === 'postgres'
      await db.schema
        .createTable('emails')
        .addColumn('id', 'integer', (c) => (pg ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('prospect_id', 'integer', (c) => c.references('prospects.id'))
        .addColumn('subject', 'text')
        .execute()
    },
  },
  '0003_prospect_notes': {
    up: async (db: Kysely<any>) => {
      await db.schema.alterTable('prospects').addColumn('notes', 'text').execute()
    },
  },
}

/** A database made by the app itself, outside Tenantry, at 0002's level (no notes column yet). */
function legacyDatabase(file: string, rows: Array<{ user: string; prospects: number }>, extra = ''): void {
  const db = new Database(file)
  db.exec(`create table prospects (id integer primary key, user_id TEXT not null, website varchar(255) not null);
           create table emails (id integer primary key, user_id text not null, prospect_id integer references prospects(id), subject text);
           create index idx_prospects_user_id on prospects(user_id); ${extra}`)
  let id = 1
  for (const { user, prospects } of rows) {
    for (let i = 0; i < prospects; i++) {
      db.prepare('insert into prospects (id, user_id, website) values (?, ?, ?)').run(id, user, `https://${user}-${i}.example`)
      db.prepare('insert into emails (id, user_id, prospect_id, subject) values (?, ?, ?, ?)').run(id, user, id, `hello ${user} ${i}`)
      id++
    }
  }
  db.close()
}

const savedKey = process.env.TENANTRY_SECRET_KEY

describe('adopt and split on SQLite', () => {
  const home = tempDir()
  let tenantry: Tenantry
  beforeAll(async () => {
    delete process.env.TENANTRY_SECRET_KEY
    tenantry = await createTenantry({ home: home.path, migrations: { tenant: migrations } })
  })
  afterAll(async () => {
    await tenantry?.close()
    home.cleanup()
    if (savedKey !== undefined) process.env.TENANTRY_SECRET_KEY = savedKey
  })

  it('external ids: create with one, find by it (withTenant, router, catalog), unique among live tenants', async () => {
    const created = await tenantry.createTenant({ slug: 'ext_one', externalId: 'user_2abcDEF' })
    expect(created.externalId).toBe('user_2abcDEF')
    expect((await tenantry.catalog.findTenantByExternalId('user_2abcDEF'))?.id).toBe(created.id)
    expect(await tenantry.withTenant({ externalId: 'user_2abcDEF' }, () => tenantry.currentTenant()?.slug)).toBe('ext_one')
    // Cached like a slug: the second call finds it without the catalog.
    const misses = tenantry.router.stats().placementMisses
    await tenantry.withTenant({ externalId: 'user_2abcDEF' }, () => undefined)
    expect(tenantry.router.stats().placementMisses).toBe(misses)
    await expect(tenantry.createTenant({ slug: 'ext_two', externalId: 'user_2abcDEF' })).rejects.toMatchObject({ code: 'EXTERNAL_ID_TAKEN' })
    expect(await tenantry.catalog.findTenantBySlug('ext_two')).toBeUndefined()
    await expect(tenantry.createTenant({ slug: 'ext_bad', externalId: 'a\u0000b' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(tenantry.withTenant({ externalId: 'nobody' }, () => 1)).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })
    // Purged tenants free it.
    await tenantry.deleteTenant('ext_one', { purge: true })
    await expect(tenantry.withTenant({ externalId: 'user_2abcDEF' }, () => 1)).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })
    expect((await tenantry.createTenant({ slug: 'ext_two', externalId: 'user_2abcDEF' })).externalId).toBe('user_2abcDEF')
  })

  it('adopts a SQLite file whose tables match a prefix of the migrations: ledger recorded, the rest applied, its rows served; the file untouched', async () => {
    const file = join(home.path, 'legacy.db')
    legacyDatabase(file, [{ user: 'solo', prospects: 3 }])
    const before = readFileSync(file)
    const result = await tenantry.tenants.adopt('legacy', { sqlite: file }, { actor: 'test', externalId: 'crm_42' })
    expect(result).toMatchObject({ applied: ['0001_prospects', '0002_emails'], recorded: false, tenant: { slug: 'legacy', status: 'ready', externalId: 'crm_42' } })
    expect((await tenantry.catalog.ledger(result.tenant.id)).map((l) => l.migration)).toEqual(['0001_prospects', '0002_emails', '0003_prospect_notes'])
    const rows = await tenantry.withTenant('legacy', () => tenantry.db().selectFrom('prospects').select(['id', 'website', 'notes']).orderBy('id').execute())
    expect(rows).toEqual([0, 1, 2].map((i) => ({ id: i + 1, website: `https://solo-${i}.example`, notes: null })))
    expect(readFileSync(file).equals(before)).toBe(true)
    // The copy lives at the locator derived from the tenant id, not at the input's name.
    expect(result.tenant.placement.locator).toBe(`${result.tenant.id}.db`)
    const actions = (await tenantry.catalog.auditLog(result.tenant.id)).map((e) => e.action)
    expect(actions).toEqual(expect.arrayContaining(['tenant.adopt.started', 'tenant.create.succeeded', 'tenant.adopt.succeeded']))
    // A Tenantry tenant's own file is at what its migration table records.
    const engine = (await tenantry.dataSources.engine(result.tenant.placement.dataSourceId)) as SqliteEngine
    const again = await tenantry.tenants.adopt('legacy_copy', { sqlite: engine.pathOf({ tenantId: result.tenant.id, ...result.tenant.placement }) })
    expect(again).toMatchObject({ recorded: true, applied: ['0001_prospects', '0002_emails', '0003_prospect_notes'] })
  })

  it('refuses a file that does not match (ADOPT_MISMATCH with the differences), bad inputs, a taken slug: nothing changes', async () => {
    const file = join(home.path, 'other.db')
    legacyDatabase(file, [{ user: 'x', prospects: 1 }], 'create table invoices (id integer primary key, total real);')
    const before = readFileSync(file)
    const mtime = statSync(file).mtimeMs
    const refused = await tenantry.tenants.adopt('other', { sqlite: file }).catch((e: unknown) => e)
    expect(refused).toMatchObject({ code: 'ADOPT_MISMATCH', message: expect.stringContaining('table invoices is not made by the migrations') })
    expect(readFileSync(file).equals(before)).toBe(true)
    expect(statSync(file).mtimeMs).toBe(mtime)
    expect(await tenantry.catalog.findTenantBySlug('other')).toBeUndefined()
    await expect(tenantry.tenants.adopt('other', { sqlite: join(home.path, 'missing.db') })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('does not exist') })
    const text = join(home.path, 'notes.txt')
    writeFileSync(text, 'not a database at all, just some text that is long enough to have a header')
    await expect(tenantry.tenants.adopt('other', { sqlite: text })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('not a SQLite database') })
    await expect(tenantry.tenants.adopt('legacy', { sqlite: file })).rejects.toMatchObject({ code: 'SLUG_TAKEN' })
    await expect(tenantry.tenants.adopt('other', { sqlite: file }, { applied: '0009_nope' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(tenantry.tenants.adopt('other', {} as never)).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    expect(await tenantry.catalog.findTenantBySlug('other')).toBeUndefined()
  })

  it('splits a seed-004 database by user_id: a tenant per user with only its rows, external ids set; a rerun is a no-op', async () => {
    const file = join(home.path, 'shared.db')
    legacyDatabase(file, [{ user: 'user_a', prospects: 2 }, { user: 'user_b', prospects: 3 }, { user: 'User-C', prospects: 1 }])
    const seen: string[] = []
    const result = await tenantry.tenants.split({ sqlite: file, by: 'user_id', slugPrefix: 'u_', actor: 'test', onTenant: (r) => seen.push(r.slug) })
    expect(result).toMatchObject({ succeeded: 3, skipped: 0, failed: 0, unassigned: 0 })
    expect(seen).toHaveLength(3)
    const slugs = result.results.map((r) => r.slug)
    expect(slugs).toContain('u_user_a')
    expect(slugs).toContain('u_user_b')
    expect(slugs.find((s) => s !== 'u_user_a' && s !== 'u_user_b')).toMatch(/^u_[0-9a-f]{16}$/) // not slug-safe: hashed
    for (const [user, count] of [['user_a', 2], ['user_b', 3], ['User-C', 1]] as const) {
      const rows = await tenantry.withTenant({ externalId: user }, async () => ({
        prospects: await tenantry.db().selectFrom('prospects').select(['user_id', 'notes']).execute(),
        emails: await tenantry.db().selectFrom('emails').select('user_id').execute(),
      }))
      expect(rows.prospects).toHaveLength(count)
      expect(rows.emails).toHaveLength(count)
      expect(new Set([...rows.prospects, ...rows.emails].map((r) => r.user_id))).toEqual(new Set([user]))
    }
    const again = await tenantry.tenants.split({ sqlite: file, by: 'user_id', slugPrefix: 'u_' })
    expect(again).toMatchObject({ succeeded: 0, skipped: 3, failed: 0 })
    const entries = (await tenantry.catalog.auditLog()).map((e) => e.action)
    expect(entries).toEqual(expect.arrayContaining(['tenant.split.started', 'tenant.split.copied', 'tenant.split.finished']))
  })

  it('all-or-nothing per tenant: a failure mid-copy leaves no half tenant, and a crash leaves one the rerun redoes with no duplicate rows', async () => {
    const file = join(home.path, 'crashy.db')
    legacyDatabase(file, [{ user: 'c_one', prospects: 2 }, { user: 'c_two', prospects: 4 }, { user: 'c_three', prospects: 1 }])
    const failing = await tenantry.tenants.split({
      sqlite: file,
      by: 'user_id',
      afterCopy: (value) => {
        if (value === 'c_two') throw new Error('injected failure after copying c_two')
      },
    })
    expect(failing).toMatchObject({ succeeded: 2, failed: 1 })
    expect(failing.results.find((r) => r.value === 'c_two')).toMatchObject({ outcome: 'failed', error: expect.stringContaining('injected failure') })
    expect(await tenantry.catalog.findTenantBySlug('c_two')).toBeUndefined()
    expect(await tenantry.catalog.findTenantByExternalId('c_two')).toBeUndefined()

    // A crash (the process gone, no clean-up) while c_two's rows went in leaves its record in
    // provisioning with part of its rows: made here as the crash leaves it.
    const half = await tenantry.createTenant({ slug: 'c_two', externalId: 'c_two' })
    await tenantry.withTenant('c_two', () => tenantry.db().insertInto('prospects').values([{ id: 3, user_id: 'c_two', website: 'partial' }, { id: 4, user_id: 'c_two', website: 'partial' }]).execute())
    await tenantry.catalog.db.updateTable('tenants').set({ status: 'provisioning' }).where('id', '=', half.id).execute()
    tenantry.router.invalidate(half.id)
    const rerun = await tenantry.tenants.split({ sqlite: file, by: 'user_id' })
    expect(rerun).toMatchObject({ succeeded: 1, skipped: 2, failed: 0 })
    const rows = await tenantry.withTenant({ externalId: 'c_two' }, () => tenantry.db().selectFrom('prospects').select('id').execute())
    expect(rows).toHaveLength(4)
    expect(new Set(rows.map((r) => r.id)).size).toBe(4)
    expect(rows.map((r) => r.id).sort()).toEqual([3, 4, 5, 6])
    expect((await tenantry.catalog.auditLog()).some((e) => e.action === 'tenant.split.redo')).toBe(true)
  })

  it('refuses a split that cannot be done whole: no such column, tables without it, a bad prefix', async () => {
    const file = join(home.path, 'mixed.db')
    legacyDatabase(file, [{ user: 'm_one', prospects: 1 }])
    await expect(tenantry.tenants.split({ sqlite: file, by: 'tenant' })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('No table') })
    await expect(tenantry.tenants.split({ sqlite: file, by: 'user_id', slugPrefix: '9x' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(tenantry.tenants.split({ sqlite: join(home.path, 'nope.db'), by: 'user_id' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    expect(await tenantry.catalog.findTenantBySlug('m_one')).toBeUndefined()
    // A database of another app is refused before any table is listed; the file is closed all the same.
    const other = join(home.path, 'other-app.db')
    const otherDb = new Database(other)
    otherDb.exec('create table invoices (id integer primary key, user_id text)')
    otherDb.close()
    await expect(tenantry.tenants.split({ sqlite: other, by: 'user_id' })).rejects.toMatchObject({ code: 'ADOPT_MISMATCH' })
    if (process.platform === 'linux') expect(openFilesUnder(other)).toEqual([])
  })
})

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping adopt of Postgres schemas: ${postgres.skip}`)

describe.skipIf('skip' in postgres)('adopt a Postgres schema (seed 002: tenant_<slug>)', () => {
  const home = tempDir()
  const dataSourceId = `adopt_${process.pid}`
  let data: TestDatabase
  let tenantry: Tenantry
  const url = () => data.url
  beforeAll(async () => {
    if (!('url' in postgres)) return
    delete process.env.TENANTRY_SECRET_KEY
    data = await createTestDatabase(postgres.url, 'tenantry_adopt')
    tenantry = await createTenantry({
      home: home.path,
      migrations: { tenant: migrations },
      dataSources: [
        { id: 'local', engine: 'sqlite' },
        { id: dataSourceId, engine: 'postgres', url: data.url, isolations: ['schema'] },
      ],
    })
  })
  afterAll(async () => {
    if (!('url' in postgres)) return
    await tenantry?.close()
    await data?.drop()
    await dropAppRoles(postgres.url, [dataSourceId])
    home.cleanup()
    if (savedKey !== undefined) process.env.TENANTRY_SECRET_KEY = savedKey
  })

  async function legacySchema(schema: string, withNotes = true): Promise<void> {
    const client = new pg.Client({ connectionString: url() })
    await client.connect()
    try {
      await client.query(`create schema ${schema};
        create table ${schema}.prospects (id integer generated by default as identity primary key, user_id text not null, website text not null${withNotes ? ', notes text' : ''});
        create table ${schema}.emails (id integer generated by default as identity primary key, user_id text not null, prospect_id integer references ${schema}.prospects(id), subject text);
        insert into ${schema}.prospects (user_id, website) values ('acme', 'https://acme.example'), ('acme', 'https://acme2.example');
        grant usage on schema ${schema} to public; grant select on all tables in schema ${schema} to public;`)
    } finally {
      await client.end()
    }
  }

  it('moves tenant_acme in as a schema tenant: served, ledger recorded, doctor clean', async () => {
    await legacySchema('tenant_acme')
    process.env.ADOPT_TEST_URL = url()
    const result = await tenantry.tenants.adopt('acme', { postgresUrl: url(), schema: 'tenant_acme' }, { actor: 'test' })
    expect(result).toMatchObject({ applied: ['0001_prospects', '0002_emails', '0003_prospect_notes'], tenant: { status: 'ready', placement: { isolation: 'schema', dataSourceId } } })
    expect(result.tenant.placement.locator).toBe(`t_${result.tenant.id}`)
    const rows = await tenantry.withTenant('acme', () => tenantry.db().selectFrom('prospects').select('website').orderBy('id').execute())
    expect(rows.map((r) => r.website)).toEqual(['https://acme.example', 'https://acme2.example'])
    // New rows get ids past the adopted ones (the identity is the schema's own).
    await tenantry.withTenant('acme', () => tenantry.db().insertInto('prospects').values({ user_id: 'acme', website: 'https://new.example' }).execute())
    const checks = await runDoctor(tenantry)
    const failures = checks.filter((c) => c.status === 'fail')
    expect(failures, JSON.stringify(failures)).toEqual([])
    const client = new pg.Client({ connectionString: url() })
    await client.connect()
    try {
      expect((await client.query(`select 1 from pg_namespace where nspname = 'tenant_acme'`)).rowCount).toBe(0)
    } finally {
      await client.end()
    }
  })

  it('a schema one migration behind gets it; a mismatching schema, an unknown schema, an unknown server, the data source’s own database and a taken slug are refused', async () => {
    await legacySchema('tenant_beta', false)
    const beta = await tenantry.tenants.adopt('beta', { postgresUrl: url(), schema: 'tenant_beta' })
    expect(beta.applied).toEqual(['0001_prospects', '0002_emails'])
    expect(await tenantry.withTenant('beta', () => tenantry.db().selectFrom('prospects').select('notes').execute())).toHaveLength(2)

    const client = new pg.Client({ connectionString: url() })
    await client.connect()
    try {
      await client.query('create schema tenant_odd; create table tenant_odd.things (id integer primary key)')
    } finally {
      await client.end()
    }
    await expect(tenantry.tenants.adopt('odd', { postgresUrl: url(), schema: 'tenant_odd' })).rejects.toMatchObject({ code: 'ADOPT_MISMATCH' })
    await expect(tenantry.tenants.adopt('odd', { postgresUrl: url(), schema: 'tenant_missing' })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('does not exist') })
    const elsewhere = new URL(url())
    elsewhere.pathname = '/some_other_database'
    await expect(tenantry.tenants.adopt('odd', { postgresUrl: elsewhere.toString(), schema: 'tenant_odd' })).rejects.toMatchObject({ code: 'DATA_SOURCE_NOT_FOUND' })
    await expect(tenantry.tenants.adopt('odd', { postgresUrl: url() })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('--schema') })
    await expect(tenantry.tenants.adopt('acme', { postgresUrl: url(), schema: 'tenant_odd' })).rejects.toMatchObject({ code: 'SLUG_TAKEN' })
    await expect(tenantry.tenants.adopt('odd', { postgresUrl: url(), schema: 'public' })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('public schema') })
    expect(await tenantry.catalog.findTenantBySlug('odd')).toBeUndefined()
    const check = new pg.Client({ connectionString: url() })
    await check.connect()
    try {
      expect((await check.query(`select 1 from pg_namespace where nspname = 'tenant_odd'`)).rowCount).toBe(1)
    } finally {
      await check.end()
    }
  })

  it('a crash after the schema moved in: doctor --fix moves it back before rolling the create back, never drops it', async () => {
    await legacySchema('tenant_delta')
    const adopted = await tenantry.tenants.adopt('delta', { postgresUrl: url(), schema: 'tenant_delta' })
    // What a crash between the move and `ready` leaves: the tenant in provisioning, no success recorded.
    await tenantry.catalog.db.deleteFrom('audit_log').where('tenant_id', '=', adopted.tenant.id).where('action', 'in', ['tenant.adopt.succeeded', 'tenant.create.succeeded']).execute()
    await tenantry.catalog.db.updateTable('tenants').set({ status: 'provisioning' }).where('id', '=', adopted.tenant.id).execute()
    tenantry.router.invalidate(adopted.tenant.id)
    const actions = await repairHalfMade(tenantry, { graceMs: 0 })
    expect(actions.map((a) => a.action)).toEqual(expect.arrayContaining(['moved its adopted schema back', 'rolled back its create: storage dropped, slug free']))
    expect(await tenantry.catalog.findTenantBySlug('delta')).toBeUndefined()
    const client = new pg.Client({ connectionString: url() })
    await client.connect()
    try {
      expect((await client.query('select count(*)::int as n from tenant_delta.prospects')).rows[0].n).toBe(2)
      expect((await client.query(`select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'tenant_delta' and c.relname like 'tenantry%'`)).rowCount).toBe(0)
    } finally {
      await client.end()
    }
  })

  it('a failure after the schema moved in moves it back, with its rows', async () => {
    await legacySchema('tenant_gamma')
    const broken = await createTenantry({
      home: home.path,
      migrations: { tenant: { ...migrations, '0004_broken': { up: async (db: Kysely<any>) => void (await sql`update prospects set website = null`.execute(db)) } } },
      dataSources: [
        { id: 'local', engine: 'sqlite' },
        { id: dataSourceId, engine: 'postgres', url: data.url, isolations: ['schema'] },
      ],
    })
    try {
      // 0004 changes no table or column: its level cannot be told from the tables alone.
      await expect(broken.tenants.adopt('gamma', { postgresUrl: url(), schema: 'tenant_gamma' })).rejects.toMatchObject({ code: 'ADOPT_MISMATCH', message: expect.stringContaining('--applied') })
      await expect(broken.tenants.adopt('gamma', { postgresUrl: url(), schema: 'tenant_gamma' }, { applied: '0003_prospect_notes' })).rejects.toMatchObject({ message: expect.stringContaining('nothing of it was kept') })
      expect(await broken.catalog.findTenantBySlug('gamma')).toBeUndefined()
    } finally {
      await broken.close()
    }
    const client = new pg.Client({ connectionString: url() })
    await client.connect()
    try {
      expect((await client.query('select count(*)::int as n from tenant_gamma.prospects')).rows[0].n).toBe(2)
      expect((await client.query(`select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'tenant_gamma' and c.relname like 'tenantry%'`)).rowCount).toBe(0)
    } finally {
      await client.end()
    }
  })
})

describe.skipIf('skip' in postgres)('adopt a whole Postgres database (seed 001: a customer database)', () => {
  const home = tempDir()
  const dataSourceId = `adoptdb_${process.pid}`
  let data: TestDatabase
  let tenantry: Tenantry
  const legacies: TestDatabase[] = []

  beforeAll(async () => {
    if (!('url' in postgres)) return
    delete process.env.TENANTRY_SECRET_KEY
    data = await createTestDatabase(postgres.url, 'tenantry_adoptdb')
    tenantry = await createTenantry({
      home: home.path,
      migrations: { tenant: migrations },
      dataSources: [
        { id: 'local', engine: 'sqlite' },
        { id: dataSourceId, engine: 'postgres', url: data.url, isolations: ['database'] },
      ],
    })
  })
  afterAll(async () => {
    if (!('url' in postgres)) return
    for (const tenant of (await tenantry?.catalog.listTenants()) ?? []) {
      if (tenant.status !== 'deleted') await tenantry.deleteTenant(tenant.slug, { purge: true }).catch(() => undefined)
    }
    await tenantry?.close()
    for (const legacy of legacies) await legacy.drop()
    await data?.drop()
    await dropAppRoles(postgres.url, [dataSourceId])
    home.cleanup()
    if (savedKey !== undefined) process.env.TENANTRY_SECRET_KEY = savedKey
  })

  /** A database the app made itself, with its own user's grants, at 0003's level unless told otherwise. */
  async function legacyDatabase(extra = ''): Promise<TestDatabase> {
    const legacy = await createTestDatabase((postgres as { url: string }).url, 'legacy_app')
    legacies.push(legacy)
    const client = new pg.Client({ connectionString: legacy.url })
    await client.connect()
    try {
      await client.query(`create table prospects (id integer generated by default as identity primary key, user_id text not null, website text not null, notes text);
        create table emails (id integer generated by default as identity primary key, user_id text not null, prospect_id integer references prospects(id), subject text);
        insert into prospects (user_id, website) values ('acme', 'https://acme.example'), ('acme', 'https://acme2.example');
        grant select on all tables in schema public to public; ${extra}`)
    } finally {
      await client.end()
    }
    return legacy
  }

  async function count(url: string, query: string): Promise<number> {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return Number((await client.query(query)).rows[0].n)
    } finally {
      await client.end()
    }
  }

  it('copies the database in as a database tenant: served, ledger recorded, doctor clean, the source unchanged', async () => {
    const legacy = await legacyDatabase()
    const result = await tenantry.tenants.adopt('acme', { postgresUrl: legacy.url }, { actor: 'test' })
    expect(result).toMatchObject({ applied: ['0001_prospects', '0002_emails', '0003_prospect_notes'], recorded: false, tenant: { status: 'ready', placement: { isolation: 'database', dataSourceId } } })
    const rows = await tenantry.withTenant('acme', () => tenantry.db().selectFrom('prospects').select('website').orderBy('id').execute())
    expect(rows.map((r) => r.website)).toEqual(['https://acme.example', 'https://acme2.example'])
    // The identity carries on past the copied rows; the tenant's role may write, as a provisioned tenant's.
    await tenantry.withTenant('acme', () => tenantry.db().insertInto('prospects').values({ user_id: 'acme', website: 'https://new.example' }).execute())
    const failures = (await runDoctor(tenantry)).filter((c) => c.status === 'fail')
    expect(failures, JSON.stringify(failures)).toEqual([])
    expect(await count(legacy.url, 'select count(*) as n from prospects')).toBe(2)
    expect(await count(legacy.url, `select count(*) as n from pg_class where relname like 'tenantry%'`)).toBe(0)
    // PUBLIC's grant from the old app did not come along.
    const copy = new URL(legacy.url)
    copy.pathname = `/${result.tenant.placement.locator}`
    expect(await count(copy.toString(), `select count(*) as n from information_schema.role_table_grants where grantee = 'PUBLIC' and table_schema = 'public'`)).toBe(0)
  })

  it('refuses a database in use, tables outside public, a mismatch and the data source’s own database, keeping nothing', async () => {
    const busy = await legacyDatabase()
    const holder = new pg.Client({ connectionString: busy.url })
    await holder.connect()
    try {
      await expect(tenantry.tenants.adopt('busy', { postgresUrl: busy.url })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('in use') })
    } finally {
      await holder.end()
    }
    expect(await tenantry.catalog.findTenantBySlug('busy')).toBeUndefined()
    // Once its app has let go, the same database is adopted.
    await expect(tenantry.tenants.adopt('busy', { postgresUrl: busy.url })).resolves.toMatchObject({ tenant: { status: 'ready' } })

    const split = await legacyDatabase('create schema billing; create table billing.invoices (id integer primary key)')
    await expect(tenantry.tenants.adopt('split', { postgresUrl: split.url })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('outside public') })
    const odd = await legacyDatabase('create table things (id integer primary key)')
    await expect(tenantry.tenants.adopt('odd', { postgresUrl: odd.url })).rejects.toMatchObject({ code: 'ADOPT_MISMATCH' })
    await expect(tenantry.tenants.adopt('own', { postgresUrl: data.url })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('own database') })
    for (const slug of ['split', 'odd', 'own']) expect(await tenantry.catalog.findTenantBySlug(slug)).toBeUndefined()
  })
})
