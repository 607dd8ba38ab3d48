import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry } from '../index.js'
import { withTenant as runAs } from '../context.js'
import { Redis } from 'ioredis'
import { z } from 'zod'
import { createTestDatabase, dropAppRoles, findPostgres, findRedis, tempDir, type TestDatabase } from '../testing/index.js'
import { EXPORT_FORMAT, EXPORT_VERSION } from './export-format.js'

// Issue 13, first slice: one tenant exported to a portable file and imported onto any engine
// and isolation, losslessly; a failed import keeps nothing; erase leaves no personal data.

/** One migration set for both engines: a parent table and a table holding every value kind. */
const migrations = {
  '0001_kinds': {
    up: async (db: Kysely<any>, { engine }: { engine: string }) => {
      const pg = engine === 'postgres'
      await db.schema
        .createTable('parents')
        .addColumn('id', 'integer', (c) => (pg ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
        .addColumn('name', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('kinds')
        .addColumn('id', 'integer', (c) => (pg ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
        .addColumn('parent_id', 'integer', (c) => c.references('parents.id'))
        .addColumn('label', 'text')
        .addColumn('flag', 'boolean')
        .addColumn('big', 'bigint')
        .addColumn('ratio', pg ? 'double precision' : 'real')
        .addColumn('at', 'timestamptz')
        .addColumn('local_at', 'timestamp')
        .addColumn('day', 'date')
        .addColumn('doc', 'jsonb')
        .addColumn('bytes', pg ? 'bytea' : 'blob')
        .execute()
    },
  },
}

/** Rows as SQLite holds them (booleans 0/1, JSON as text, big integers exact with safeIntegers off only up to 2^53: compared as text). */
const SEED = [
  { id: 1, parent_id: 1, label: 'plain', flag: 1, big: 42n, ratio: 3.25, at: '2024-05-06T07:08:09.123456Z', local_at: '2024-05-06T07:08:09.500000', day: '2024-02-29', doc: '{"a":[1,"x",null],"nested":{"b":true}}', bytes: Buffer.from([0, 1, 2, 255]) },
  { id: 2, parent_id: 2, label: 'édition\nligne «2» 😀', flag: 0, big: 9007199254740993n, ratio: -0.5, at: '1999-12-31T23:59:59.000001Z', local_at: '1999-12-31T23:59:59.000000', day: '1999-12-31', doc: 'null', bytes: Buffer.alloc(0) },
  { id: 7, parent_id: null, label: null, flag: null, big: -9223372036854775808n, ratio: null, at: null, local_at: null, day: null, doc: '"just a string"', bytes: null },
  { id: 8, parent_id: null, label: null, flag: null, big: null, ratio: null, at: null, local_at: null, day: null, doc: null, bytes: null },
]

/** What every engine must give back, in engine-neutral form. */
function normalised(rows: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  return rows.map((r) => ({
    id: Number(r.id),
    parent_id: r.parent_id === null ? null : Number(r.parent_id),
    label: r.label,
    flag: r.flag === null ? null : Boolean(r.flag),
    big: r.big === null ? null : String(r.big),
    ratio: r.ratio === null ? null : Number(r.ratio),
    at: r.at,
    local_at: r.local_at,
    day: r.day,
    doc: r.doc === null ? null : JSON.stringify(typeof r.doc === 'string' ? JSON.parse(r.doc) : r.doc),
    bytes: r.bytes === null ? null : Buffer.from(r.bytes as Uint8Array).toString('hex'),
  }))
}

/** The tenant's `kinds` rows read through the engine, each value as text where drivers differ (big integers, dates). */
async function kindsOf(tenantry: Tenantry, slug: string): Promise<Array<Record<string, unknown>>> {
  const tenant = (await tenantry.catalog.findTenantBySlug(slug))!
  const engine = await tenantry.dataSources.engine(tenant.placement.dataSourceId)
  return tenantry.withTenant(slug, async () => {
    const db = tenantry.db()
    const rows =
      engine.name === 'postgres'
        ? await sql<Record<string, unknown>>`select id, parent_id, label, flag, big::text as big, ratio,
            to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at, to_char(local_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') as local_at,
            day::text as day, doc::text as doc, bytes from kinds order by id`.execute(db)
        : await sql<Record<string, unknown>>`select id, parent_id, label, flag, cast(big as text) as big, ratio, at, local_at, day, doc, bytes from kinds order by id`.execute(db)
    return normalised(rows.rows)
  })
}

/** The export's lines, decompressed and parsed. */
function linesOf(file: string): any[] {
  return gunzipSync(readFileSync(file))
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
}

function writeLines(file: string, lines: unknown[]): void {
  writeFileSync(file, gzipSync(lines.map((l) => JSON.stringify(l)).join('\n') + '\n'))
}

const savedKey = process.env.TENANTRY_SECRET_KEY

/** Exports `from` and imports it as `to`: the row counts, and every row, must come back across more pages than one. */
async function pagedRoundTrip(tenantry: Tenantry, home: string, from: string, to: string, target: { dataSource?: string; isolation?: 'database' | 'schema' | 'row' }) {
  const rows = Array.from({ length: 2_345 }, (_, i) => ({ id: i + 1, name: `parent ${i + 1}` }))
  await tenantry.withTenant(from, async () => {
    for (let i = 0; i < rows.length; i += 400) await tenantry.db().insertInto('parents').values(rows.slice(i, i + 400)).execute()
  })
  const file = join(home, `${from}-paged.gz`)
  const exported = await tenantry.tenants.export(from, { out: file })
  expect(exported.rows.parents).toBe(rows.length)
  const imported = await tenantry.tenants.import(to, { from: file, ...target })
  expect(imported.rows.parents).toBe(rows.length)
  const back = await tenantry.withTenant(to, () => tenantry.db().selectFrom('parents').select(['id', 'name']).orderBy('id').execute())
  expect(back.map((r) => ({ id: Number(r.id), name: r.name }))).toEqual(rows)
}

async function seed(tenantry: Tenantry, slug: string): Promise<void> {
  await tenantry.createTenant({ slug, name: 'Source Co' })
  await tenantry.withTenant(slug, async () => {
    await tenantry.db().insertInto('parents').values([{ id: 1, name: 'one' }, { id: 2, name: 'two' }]).execute()
    await tenantry.db().insertInto('kinds').values(SEED).execute()
    await tenantry.state.set('workflow:1', { step: 3, done: false })
    await tenantry.files.put('docs/readme.txt', 'hello files')
    await tenantry.files.put('big.bin', Buffer.alloc(200_000, 7))
    await tenantry.secrets.set('API_KEY', 'sk_live_do_not_export')
  })
}

describe('export and import on SQLite', () => {
  const home = tempDir()
  let tenantry: Tenantry
  beforeAll(async () => {
    delete process.env.TENANTRY_SECRET_KEY
    tenantry = await createTenantry({ home: home.path, migrations: { tenant: migrations }, services: { state: true } })
    await seed(tenantry, 'src')
  })
  afterAll(async () => {
    await tenantry?.close()
    home.cleanup()
    if (savedKey !== undefined) process.env.TENANTRY_SECRET_KEY = savedKey
  })

  it('writes a versioned, inspectable file: header, rows, files, end; secret names and never their values', async () => {
    const out = join(home.path, 'src.ndjson.gz')
    const result = await tenantry.tenants.export('src', { out, actor: 'test' })
    expect(result.rows).toMatchObject({ parents: 2, kinds: 4, tenantry_state: 1 })
    expect(result.files).toBe(2)
    expect(result.secretNames).toEqual(['API_KEY'])
    const lines = linesOf(out)
    expect(lines[0]).toMatchObject({ format: EXPORT_FORMAT, version: EXPORT_VERSION, tenant: { slug: 'src', name: 'Source Co' }, source: { engine: 'sqlite' }, secretNames: ['API_KEY'] })
    expect(lines[0].migrations).toEqual(['0001_kinds', 'tenantry_state.v1'])
    expect(lines[0].tables.map((t: { name: string }) => t.name).indexOf('parents')).toBeLessThan(lines[0].tables.map((t: { name: string }) => t.name).indexOf('kinds'))
    expect(lines.at(-1)).toEqual({ end: true, rows: result.rows, files: 2, fileBytes: 200_011 })
    const big = lines.find((l) => l.row === 'kinds' && l.values[0] === 2)
    expect(big.values).toContain(false) // booleans as booleans, not SQLite's 0/1
    expect(big.values).toContainEqual({ $int: '9007199254740993' })
    expect(lines.find((l) => l.row === 'kinds' && l.values[0] === 1).values).toContainEqual({ $bytes: Buffer.from([0, 1, 2, 255]).toString('base64') })
    expect(gunzipSync(readFileSync(out)).toString('utf8')).not.toContain('sk_live_do_not_export')
    const actions = (await tenantry.catalog.auditLog(result.tenantId)).map((e) => e.action)
    expect(actions).toEqual(expect.arrayContaining(['tenant.export.started', 'tenant.export.succeeded']))
  })

  it('refuses a file that exists (and leaves it alone), a deleted tenant; exports a suspended one', async () => {
    const out = join(home.path, 'exists.txt')
    writeFileSync(out, 'mine')
    await expect(tenantry.tenants.export('src', { out })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('exists') })
    expect(readFileSync(out, 'utf8')).toBe('mine')
    await tenantry.createTenant({ slug: 'paused' })
    await tenantry.tenants.suspend('paused')
    expect((await tenantry.tenants.export('paused', { out: join(home.path, 'paused.gz') })).rows).toMatchObject({ parents: 0 })
    await tenantry.createTenant({ slug: 'dead' })
    await tenantry.deleteTenant('dead')
    await expect(tenantry.tenants.export('dead', { out: join(home.path, 'dead.gz') })).rejects.toMatchObject({ code: 'INVALID_TRANSITION', message: expect.stringContaining('is deleted') })
    expect(existsSync(join(home.path, 'dead.gz'))).toBe(false)
  })

  it('refuses an unknown version, unknown migrations, a taken slug and a missing file before making anything', async () => {
    const good = join(home.path, 'src.ndjson.gz')
    const lines = linesOf(good)
    const v2 = join(home.path, 'v2.gz')
    writeLines(v2, [{ ...lines[0], version: 2 }, ...lines.slice(1)])
    await expect(tenantry.tenants.import('fromv2', { from: v2 })).rejects.toMatchObject({ code: 'INVALID_EXPORT', message: expect.stringContaining('version 2 export') })
    const ahead = join(home.path, 'ahead.gz')
    writeLines(ahead, [{ ...lines[0], migrations: [...lines[0].migrations, '0099_future'] }, ...lines.slice(1)])
    await expect(tenantry.tenants.import('ahead', { from: ahead })).rejects.toMatchObject({ code: 'INVALID_EXPORT', message: expect.stringContaining('0099_future') })
    await expect(tenantry.tenants.import('src', { from: good })).rejects.toMatchObject({ code: 'SLUG_TAKEN' })
    await expect(tenantry.tenants.import('nofile', { from: join(home.path, 'missing.gz') })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('does not exist') })
    const plain = join(home.path, 'plain.txt')
    writeFileSync(plain, 'not gzip at all')
    await expect(tenantry.tenants.import('plain', { from: plain })).rejects.toMatchObject({ code: 'INVALID_EXPORT' })
    for (const slug of ['fromv2', 'ahead', 'nofile', 'plain']) expect(await tenantry.catalog.findTenantBySlug(slug)).toBeUndefined()
  })

  it('a file corrupted midway fails the import and keeps nothing: no tenant, storage, files; the slug is free', async () => {
    const good = join(home.path, 'src.ndjson.gz')
    const lines = linesOf(good)
    const fileAt = lines.findIndex((l) => 'file' in l)
    const corruptions: Record<string, Buffer> = {
      // a row of a table the header does not name, after the parents were inserted
      badRow: gzipSync([...lines.slice(0, 4), { row: 'nope', values: [] }, ...lines.slice(4)].map((l) => JSON.stringify(l)).join('\n')),
      // cut short inside a file: no end line
      cutShort: gzipSync(lines.slice(0, fileAt + 2).map((l) => JSON.stringify(l)).join('\n')),
      // gzip bytes truncated
      truncated: readFileSync(good).subarray(0, Math.floor(readFileSync(good).length * 0.6)),
    }
    for (const [name, bytes] of Object.entries(corruptions)) {
      const file = join(home.path, `${name}.gz`)
      writeFileSync(file, bytes)
      await expect(tenantry.tenants.import('copy', { from: file }), name).rejects.toMatchObject({ code: 'INVALID_EXPORT' })
      expect(await tenantry.catalog.findTenantBySlug('copy'), name).toBeUndefined()
      const leftovers = (await tenantry.catalog.listTenants({ includePurged: true })).filter((t) => t.slug === 'copy')
      for (const t of leftovers) {
        expect(t.purgedAt, name).not.toBeNull()
        const engine = await tenantry.dataSources.engine(t.placement.dataSourceId)
        expect(await engine.exists({ tenantId: t.id, ...t.placement }), name).toBe(false)
        expect(await tenantry.files.driver.usage(t.id), name).toBe(0)
        expect((await tenantry.files.driver.list(t.id, { prefix: '', limit: 10 })).length, name).toBe(0)
      }
    }
    const copy = await tenantry.tenants.import('copy', { from: good })
    expect(copy.tenant.status).toBe('ready')
    expect(await kindsOf(tenantry, 'copy')).toEqual(await kindsOf(tenantry, 'src'))
  })

  it('a table of more rows than a page goes whole, in order', async () => {
    await tenantry.createTenant({ slug: 'paged' })
    await pagedRoundTrip(tenantry, home.path, 'paged', 'paged_copy', {})
  })

  it('an export of an older migration level is brought to it, filled, then migrated to the latest', async () => {
    const newer = tempDir()
    delete process.env.TENANTRY_SECRET_KEY
    const later = await createTenantry({
      home: newer.path,
      services: { state: true },
      migrations: {
        tenant: {
          ...migrations,
          '0002_colour': { up: async (db: Kysely<any>) => db.schema.alterTable('parents').addColumn('colour', 'text', (c) => c.notNull().defaultTo('blue')).execute() },
        },
      },
    })
    try {
      const imported = await later.tenants.import('older', { from: join(home.path, 'src.ndjson.gz') })
      expect((await later.catalog.ledger(imported.tenant.id)).map((l) => l.migration).sort()).toEqual(['0001_kinds', '0002_colour', 'tenantry_state.v1'])
      const parents = await later.withTenant('older', () => later.db().selectFrom('parents').selectAll().orderBy('id').execute())
      expect(parents).toEqual([{ id: 1, name: 'one', colour: 'blue' }, { id: 2, name: 'two', colour: 'blue' }])
      expect(await kindsOf(later, 'older')).toEqual(await kindsOf(tenantry, 'src'))
    } finally {
      await later.close()
      newer.cleanup()
    }
  })
})

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping export and import across engines: ${postgres.skip}`)

describe.skipIf('skip' in postgres)('export and import across engines: SQLite file → Postgres schema → Postgres row → Postgres database → SQLite', () => {
  const home = tempDir()
  const dataSourceId = `lifecycle_${process.pid}`
  let data: TestDatabase
  let tenantry: Tenantry
  beforeAll(async () => {
    if (!('url' in postgres)) return
    delete process.env.TENANTRY_SECRET_KEY
    data = await createTestDatabase(postgres.url, 'tenantry_lifecycle')
    tenantry = await createTenantry({
      home: home.path,
      migrations: { tenant: migrations },
      dataSources: [
        { id: 'local', engine: 'sqlite' },
        { id: dataSourceId, engine: 'postgres', url: data.url, isolations: ['schema', 'row', 'database'] },
      ],
      services: { state: true },
    })
    await seed(tenantry, 'origin')
  })
  afterAll(async () => {
    if (!('url' in postgres)) return
    // A database-isolated tenant has a database of its own on the server: purged here, or it stays.
    await tenantry?.deleteTenant('on_database', { purge: true }).catch(() => undefined)
    await tenantry?.close()
    await data?.drop()
    await dropAppRoles(postgres.url, [dataSourceId])
    home.cleanup()
    if (savedKey !== undefined) process.env.TENANTRY_SECRET_KEY = savedKey
  })

  it('every value kind, the state, the files and the row counts come back equal at each hop', async () => {
    const expected = normalised(SEED.map((r) => ({ ...r })))
    expect(await kindsOf(tenantry, 'origin')).toEqual(expected)
    // A neighbour in the row-isolated tables: an export of another row tenant must not carry its rows.
    await tenantry.createTenant({ slug: 'neighbour', dataSource: dataSourceId, isolation: 'row' })
    await tenantry.withTenant('neighbour', async () => {
      await tenantry.db().insertInto('parents').values({ id: 1, name: 'neighbour' }).execute()
      await tenantry.db().insertInto('kinds').values({ id: 99, parent_id: 1, label: 'not yours', doc: JSON.stringify({ secret: true }) }).execute()
    })
    const hops = [
      { from: 'origin', to: 'on_schema', dataSource: dataSourceId, isolation: 'schema' as const },
      { from: 'on_schema', to: 'on_row', dataSource: dataSourceId, isolation: 'row' as const },
      { from: 'on_row', to: 'on_database', dataSource: dataSourceId, isolation: 'database' as const },
      { from: 'on_database', to: 'back', dataSource: 'local', isolation: 'database' as const },
    ]
    for (const hop of hops) {
      const file = join(home.path, `${hop.from}.gz`)
      const exported = await tenantry.tenants.export(hop.from, { out: file })
      const imported = await tenantry.tenants.import(hop.to, { from: file, dataSource: hop.dataSource, isolation: hop.isolation })
      expect(imported.tenant.placement).toMatchObject({ dataSourceId: hop.dataSource, isolation: hop.isolation })
      expect(imported.rows, hop.to).toEqual(exported.rows)
      expect(imported.rows).toMatchObject({ parents: 2, kinds: 4, tenantry_state: 1 })
      // Names only: an imported tenant has no secrets until they are set again.
      expect(imported.secretNames).toEqual(hop.from === 'origin' ? ['API_KEY'] : [])
      expect(await kindsOf(tenantry, hop.to), hop.to).toEqual(expected)
      await tenantry.withTenant(hop.to, async () => {
        expect(await tenantry.state.get('workflow:1')).toMatchObject({ value: { step: 3, done: false } })
        expect((await tenantry.files.read('docs/readme.txt'))?.toString()).toBe('hello files')
        expect(await tenantry.files.read('big.bin')).toEqual(Buffer.alloc(200_000, 7))
        // Ids go on after the imported ones (Postgres sequences were brought level).
        const added = await tenantry.db().insertInto('parents').values({ name: `new in ${hop.to}` }).returning('id').executeTakeFirstOrThrow()
        expect(Number(added.id)).toBe(3)
        await tenantry.db().deleteFrom('parents').where('id', '=', added.id).execute()
      })
    }
    // Every tenant of the row-isolated tables still holds its own rows only.
    const onRow = await tenantry.withTenant('on_row', () => sql<{ n: string }>`select count(*) as n from tenant_rows.kinds`.execute(tenantry.db()))
    expect(Number(onRow.rows[0]!.n)).toBe(4)
  })

  it('a Postgres table of more rows than a page goes whole, in order (paged by ctid in one snapshot)', async () => {
    await tenantry.createTenant({ slug: 'paged_pg', dataSource: dataSourceId, isolation: 'schema' })
    await pagedRoundTrip(tenantry, home.path, 'paged_pg', 'paged_pg_back', { dataSource: 'local', isolation: 'database' })
  })
})

describe('erase one tenant', () => {
  const home = tempDir()
  let tenantry: Tenantry
  const hookCalls: Array<{ id: string; slug: string }> = []
  beforeAll(async () => {
    delete process.env.TENANTRY_SECRET_KEY
    tenantry = await createTenantry({ home: home.path, migrations: { tenant: migrations }, services: { state: true } })
    tenantry.tenants.onErase(async (tenant) => {
      hookCalls.push(tenant)
      return { memberships: 2 }
    })
    for (const slug of ['gone', 'kept']) {
      await seed(tenantry, slug)
      await tenantry.catalog.db.updateTable('tenants').set({ name: `${slug} — Alice Example` }).where('slug', '=', slug).execute()
      await tenantry.withTenant(slug, () => tenantry.cache.set('profile', { email: `alice+${slug}@example.com` }))
      await tenantry.tokens.create(slug, { name: 'ci', readOnly: false, createdBy: `user:alice+${slug}@example.com` })
      await tenantry.quotas.set(slug, { storageBytes: 10_000_000 }, { actor: `user:alice+${slug}@example.com` })
      const tenant = (await tenantry.catalog.findTenantBySlug(slug))!
      await tenantry.catalog.audit({ tenantId: tenant.id, action: 'member.invited', actor: `user:alice+${slug}@example.com`, details: { email: `bob+${slug}@example.com`, name: 'Bob Example' } })
    }
  })
  afterAll(async () => {
    await tenantry?.close()
    home.cleanup()
    if (savedKey !== undefined) process.env.TENANTRY_SECRET_KEY = savedKey
  })

  it('removes data, files, cache, tokens, state, settings, secrets (data key too) and audit details; other tenants untouched', async () => {
    const gone = (await tenantry.catalog.findTenantBySlug('gone'))!
    const kept = (await tenantry.catalog.findTenantBySlug('kept'))!
    const keptBefore = await kindsOf(tenantry, 'kept')
    const keptAudit = await tenantry.catalog.auditLog(kept.id)
    await expect(tenantry.tenants.erase('nobody')).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })

    const result = await tenantry.tenants.erase('gone', { actor: 'platform-admin' })
    expect(result.tenantId).toBe(gone.id)
    expect(hookCalls).toEqual([{ id: gone.id, slug: 'gone' }])
    expect(result.removed).toMatchObject({ memberships: 2, tokens: 1, services: { secrets: { secrets: 1, dataKeyDestroyed: true }, files: { files: 2 } } })

    // storage, files, cache
    const engine = await tenantry.dataSources.engine(gone.placement.dataSourceId)
    expect(await engine.exists({ tenantId: gone.id, ...gone.placement })).toBe(false)
    expect(await tenantry.files.driver.usage(gone.id)).toBe(0)
    expect(await runAs({ id: gone.id, slug: 'gone' }, () => tenantry.cache.get('profile'))).toBeUndefined()
    // catalog: tokens, settings, secrets, data key, ledger
    const db = tenantry.catalog.db
    for (const table of ['tokens', 'tenant_settings', 'tenant_secrets', 'tenant_keys', 'tenant_migrations', 'tenant_usage', 'claim_chunks'] as const) {
      expect(await db.selectFrom(table).selectAll().where('tenant_id', '=', gone.id).execute(), table).toEqual([])
    }
    // the audit log: one entry, no personal data; the tenant record keeps its id alone
    const audit = await tenantry.catalog.auditLog(gone.id)
    expect(audit.map((e) => e.action)).toEqual(['tenant.erased'])
    expect(audit[0]!.actor).toBe('platform-admin')
    const record = (await tenantry.catalog.findTenantById(gone.id))!
    expect(record).toMatchObject({ slug: gone.id, name: gone.id, status: 'deleted' })
    expect(record.purgedAt).not.toBeNull()
    const everything = JSON.stringify([await db.selectFrom('audit_log').selectAll().execute(), await db.selectFrom('tenants').selectAll().execute()])
    expect(everything).not.toContain('alice+gone')
    expect(everything).not.toContain('bob+gone')
    expect(everything).not.toContain('gone — Alice')
    expect(await tenantry.catalog.findTenantBySlug('gone')).toBeUndefined()
    await expect(tenantry.tenants.erase('gone')).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })

    // the other tenant: all there
    expect(await kindsOf(tenantry, 'kept')).toEqual(keptBefore)
    expect(await tenantry.files.driver.usage(kept.id)).toBe(200_011)
    expect(await tenantry.withTenant('kept', () => tenantry.cache.get('profile'))).toEqual({ email: 'alice+kept@example.com' })
    expect(await tenantry.withTenant('kept', () => tenantry.secrets.get('API_KEY'))).toBe('sk_live_do_not_export')
    expect(await tenantry.tokens.list('kept')).toHaveLength(1)
    expect(await tenantry.catalog.auditLog(kept.id)).toEqual(keptAudit)
    expect(JSON.stringify(keptAudit)).toContain('bob+kept')
  })

  it('a tenant purged earlier is erased by its old slug (its audit details go too)', async () => {
    await tenantry.createTenant({ slug: 'purged' })
    const tenant = (await tenantry.catalog.findTenantBySlug('purged'))!
    await tenantry.catalog.audit({ tenantId: tenant.id, action: 'member.invited', details: { email: 'carol@example.com' } })
    await tenantry.deleteTenant('purged', { purge: true })
    await tenantry.tenants.erase('purged')
    expect((await tenantry.catalog.auditLog(tenant.id)).map((e) => e.action)).toEqual(['tenant.erased'])
    expect((await tenantry.catalog.findTenantById(tenant.id))!.slug).toBe(tenant.id)
  })
})

const redis = await findRedis()
if ('skip' in redis) console.warn(`skipping erase with Redis: ${redis.skip}`)

describe.skipIf('skip' in redis)('erase one tenant with Redis: its cache entries and jobs leave no key behind', () => {
  const home = tempDir()
  const prefix = `tenantry-erase-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  let tenantry: Tenantry
  let client: Redis
  beforeAll(async () => {
    if (!('url' in redis)) return
    delete process.env.TENANTRY_SECRET_KEY
    client = new Redis(redis.url)
    tenantry = await createTenantry({
      home: home.path,
      services: { cache: { driver: 'redis', url: redis.url, prefix: `${prefix}.` }, jobs: { url: redis.url, prefix } },
    })
    const mail = tenantry.jobs.define('mail', { schema: z.object({ to: z.string() }), handler: async () => undefined })
    for (const slug of ['gone', 'kept']) {
      await tenantry.createTenant({ slug })
      await tenantry.withTenant(slug, async () => {
        await tenantry.cache.set('profile', { email: `alice+${slug}@example.com` })
        await mail.enqueue({ to: `alice+${slug}@example.com` }, { delayMs: 3_600_000 })
      })
    }
  })
  afterAll(async () => {
    if (!('url' in redis)) return
    await tenantry?.close()
    const left = await client.keys(`${prefix}*`)
    if (left.length) await client.del(...left)
    client.disconnect()
    home.cleanup()
    if (savedKey !== undefined) process.env.TENANTRY_SECRET_KEY = savedKey
  })

  it('no Redis key names the erased tenant; the other keeps its entry and job', async () => {
    const gone = (await tenantry.catalog.findTenantBySlug('gone'))!
    const kept = (await tenantry.catalog.findTenantBySlug('kept'))!
    const keysOf = async (id: string) => (await client.keys(`${prefix}*`)).filter((k) => k.includes(id))
    expect((await keysOf(gone.id)).length).toBeGreaterThan(0)
    const result = await tenantry.tenants.erase('gone')
    expect(result.removed.services).toMatchObject({ cache: { keys: expect.any(Number) }, jobs: { jobs: 1 } })
    expect(await keysOf(gone.id)).toEqual([])
    const everything = await Promise.all((await client.keys(`${prefix}*`)).map(async (k) => `${k} ${JSON.stringify(await client.dump(k))}`))
    expect(everything.join('\n')).not.toContain('alice+gone')
    expect(await tenantry.withTenant('kept', () => tenantry.cache.get('profile'))).toEqual({ email: 'alice+kept@example.com' })
    expect((await tenantry.withTenant('kept', () => tenantry.jobs.counts())).delayed).toBe(1)
    expect((await keysOf(kept.id)).length).toBeGreaterThan(0)
  })
})
