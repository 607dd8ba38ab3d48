import { appendFileSync, existsSync } from 'node:fs'
import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type BackupProgress, type Tenantry } from '../index.js'
import { runDoctor } from '../doctor/doctor.js'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir, type TestDatabase } from '../testing/index.js'

// Issue 13: one tenant backed up and restored (in place, or as a new tenant) without touching
// any other tenant; "backup → write more → restore returns exactly the backed-up state".

const migrations = {
  '0001_notes': {
    up: async (db: Kysely<any>, { engine }: { engine: string }) => {
      const pg = engine === 'postgres'
      await db.schema
        .createTable('folders')
        .addColumn('id', 'integer', (c) => (pg ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
        .addColumn('name', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('notes')
        .addColumn('id', 'integer', (c) => (pg ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
        .addColumn('folder_id', 'integer', (c) => c.references('folders.id'))
        .addColumn('body', 'text')
        .addColumn('pinned', 'boolean')
        .execute()
    },
  },
}

/** Every row of the tenant's tables, in key order, values as text: what "exactly the same state" is compared on. */
async function dump(tenantry: Tenantry, slug: string): Promise<Record<string, unknown[]>> {
  return tenantry.withTenant(slug, async () => {
    const db = tenantry.db()
    const folders = await sql<Record<string, unknown>>`select cast(id as text) as id, name from folders order by folders.id`.execute(db)
    const notes = await sql<Record<string, unknown>>`select cast(id as text) as id, cast(folder_id as text) as folder_id, body, cast(pinned as text) as pinned from notes order by notes.id`.execute(db)
    return { folders: folders.rows, notes: notes.rows }
  })
}

async function fill(tenantry: Tenantry, slug: string, tag: string): Promise<void> {
  await tenantry.withTenant(slug, async () => {
    const db = tenantry.db()
    await db.insertInto('folders').values([{ id: 1, name: `${tag} inbox` }, { id: 2, name: `${tag} archive` }]).execute()
    await db.insertInto('notes').values(Array.from({ length: 40 }, (_, i) => ({ id: i + 1, folder_id: (i % 2) + 1, body: `${tag} note ${i + 1} «é» 😀`, pinned: i % 3 === 0 ? 1 : 0 }))).execute()
  })
}

/** Inserts, updates and deletes: everything a restore must undo. */
async function writeMore(tenantry: Tenantry, slug: string): Promise<void> {
  await tenantry.withTenant(slug, async () => {
    const db = tenantry.db()
    await db.insertInto('folders').values({ id: 3, name: 'later' }).execute()
    await db.insertInto('notes').values({ id: 100, folder_id: 3, body: 'written after the backup', pinned: 1 }).execute()
    await db.updateTable('notes').set({ body: 'changed' }).where('id', '<', 10).execute()
    await db.deleteFrom('notes').where('id', '>', 30).where('id', '<', 100).execute()
  })
}

/** The whole story for one tenant on one placement; `neighbour` shares the data source and is written meanwhile. */
async function backupStory(tenantry: Tenantry, slug: string, neighbour: string, placement: { dataSource?: string; isolation?: 'schema' | 'database' | 'row' }) {
  await tenantry.createTenant({ slug, ...placement })
  await tenantry.createTenant({ slug: neighbour, ...placement })
  await fill(tenantry, slug, slug)
  await fill(tenantry, neighbour, neighbour)
  const before = await dump(tenantry, slug)

  const backup = await tenantry.tenants.backup(slug, { actor: 'test' })
  expect(backup).toMatchObject({ tenantId: expect.any(String), migrations: ['0001_notes'], bytes: expect.any(Number) })
  expect(existsSync(backup.location)).toBe(true)
  expect((await tenantry.tenants.backups(slug)).map((b) => b.id)).toEqual([backup.id])

  await writeMore(tenantry, slug)
  await writeMore(tenantry, neighbour)
  const neighbourAfter = await dump(tenantry, neighbour)
  expect(await dump(tenantry, slug)).not.toEqual(before)

  // A failure part-way leaves the current data serving.
  const current = await dump(tenantry, slug)
  await expect(tenantry.tenants.restore(slug, { backup: backup.id, failBeforeCommit: true })).rejects.toThrow(/Injected failure/)
  expect(await dump(tenantry, slug)).toEqual(current)

  const restored = await tenantry.tenants.restore(slug, { backup: backup.id, actor: 'test' })
  expect(restored.tenant.slug).toBe(slug)
  expect(restored.tenant.status).toBe('ready')
  expect(await dump(tenantry, slug)).toEqual(before)
  expect(await dump(tenantry, neighbour)).toEqual(neighbourAfter)
  // The tenant keeps working: writes after the restore go through.
  await tenantry.withTenant(slug, () => tenantry.db().insertInto('notes').values({ id: 500, folder_id: 1, body: 'after restore', pinned: 0 }).execute())

  // As a new tenant: the backed-up state under a new id, the original untouched.
  const originalNow = await dump(tenantry, slug)
  const copy = await tenantry.tenants.restore(slug, { backup: backup.id, as: `${slug}_copy`, actor: 'test' })
  expect(copy.tenant.id).not.toBe(backup.tenantId)
  expect(copy.tenant.placement.isolation).toBe(backup.isolation)
  expect(await dump(tenantry, `${slug}_copy`)).toEqual(before)
  expect(await dump(tenantry, slug)).toEqual(originalNow)
  expect((await tenantry.catalog.ledger(copy.tenant.id)).map((l) => l.migration)).toEqual(['0001_notes'])
  await tenantry.withTenant(`${slug}_copy`, () => tenantry.db().insertInto('notes').values({ id: 501, folder_id: 2, body: 'copy writes', pinned: 0 }).execute())

  // Bad inputs: clear errors, nothing changes.
  await expect(tenantry.tenants.restore(slug, { backup: 'b000000000aaaaaaaaaaaaaaaa' })).rejects.toMatchObject({ code: 'BACKUP_NOT_FOUND' })
  await expect(tenantry.tenants.restore(slug, { backup: 'not a backup id' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
  const theirs = await tenantry.tenants.backup(neighbour)
  await expect(tenantry.tenants.restore(slug, { backup: theirs.id })).rejects.toMatchObject({ code: 'BACKUP_NOT_FOUND' })
  await expect(tenantry.tenants.restore(slug, { backup: backup.id, as: neighbour })).rejects.toMatchObject({ code: 'SLUG_TAKEN' })
  await expect(tenantry.tenants.restore(slug, { backup: backup.id, as: 'Not A Slug!' })).rejects.toMatchObject({ code: 'INVALID_SLUG' })
  await expect(tenantry.tenants.restore('nobody_here', { backup: backup.id })).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })
  await expect(tenantry.tenants.backup('Bad Slug')).rejects.toMatchObject({ code: 'INVALID_SLUG' })
  expect(await dump(tenantry, slug)).toEqual(originalNow)
  expect(await dump(tenantry, neighbour)).toEqual(neighbourAfter)

  // A damaged file is refused before anything is replaced.
  appendFileSync(theirs.location, 'tampered')
  await expect(tenantry.tenants.restore(neighbour, { backup: theirs.id })).rejects.toMatchObject({ code: 'INVALID_BACKUP' })
  expect(await dump(tenantry, neighbour)).toEqual(neighbourAfter)

  const actions = (await tenantry.catalog.auditLog(backup.tenantId)).map((e) => e.action)
  expect(actions).toEqual(expect.arrayContaining(['tenant.backup.started', 'tenant.backup.succeeded', 'tenant.restore.started', 'tenant.restore.failed', 'tenant.restore.succeeded']))
  expect((await tenantry.catalog.auditLog(copy.tenant.id)).map((e) => e.action)).toContain('tenant.restored')
  return { backup, copy }
}

describe('backup and restore on SQLite (one file per tenant)', () => {
  const home = tempDir()
  let tenantry: Tenantry
  beforeAll(async () => {
    tenantry = await createTenantry({ home: home.path, migrations: { tenant: migrations } })
  })
  afterAll(async () => {
    await tenantry?.close()
    home.cleanup()
  })

  it('backup → write more → restore returns exactly the backed-up state; the neighbour is untouched; --as; bad inputs', async () => {
    const { backup } = await backupStory(tenantry, 'acme', 'globex', {})
    expect(backup.method).toBe('sqlite-backup-api')
  })

  it('a backup taken at an older migration level is migrated up after the restore, ledger and all', async () => {
    await tenantry.createTenant({ slug: 'older' })
    await fill(tenantry, 'older', 'older')
    const backup = await tenantry.tenants.backup('older')
    await tenantry.close()
    tenantry = await createTenantry({
      home: home.path,
      migrations: { tenant: { ...migrations, '0002_tags': { up: async (db: Kysely<any>) => void (await db.schema.createTable('tags').addColumn('name', 'text').execute()) } } },
    })
    await tenantry.migrate()
    await tenantry.withTenant('older', () => tenantry.db().insertInto('tags').values({ name: 'x' }).execute())
    const restored = await tenantry.tenants.restore('older', { backup: backup.id })
    expect(restored.migrated).toEqual(['0002_tags'])
    expect((await tenantry.catalog.ledger(backup.tenantId)).map((l) => l.migration).sort()).toEqual(['0001_notes', '0002_tags'])
    expect(await tenantry.withTenant('older', () => tenantry.db().selectFrom('tags').selectAll().execute())).toEqual([])
  })

  it('a backup taken while a writer inserts is one consistent snapshot (every row up to one point, none after)', async () => {
    await tenantry.createTenant({ slug: 'busy' })
    await tenantry.withTenant('busy', () => tenantry.db().insertInto('folders').values({ id: 1, name: 'f' }).execute())
    let running = true
    let next = 1
    const writer = (async () => {
      while (running) {
        await tenantry.withTenant('busy', () => tenantry.db().insertInto('notes').values({ id: next, folder_id: 1, body: 'x'.repeat(500), pinned: 0 }).execute())
        next++
        await new Promise((r) => setImmediate(r))
      }
    })()
    await expect.poll(() => next, { timeout: 10_000 }).toBeGreaterThan(200)
    const backup = await tenantry.tenants.backup('busy')
    running = false
    await writer
    await tenantry.tenants.restore('busy', { backup: backup.id, as: 'busy_copy' })
    const ids = (await dump(tenantry, 'busy_copy')).notes!.map((n) => Number((n as { id: string }).id)).sort((a, b) => a - b)
    expect(ids.length).toBeGreaterThan(200)
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => i + 1))
  })

  it('purging the tenant removes its backups', async () => {
    await tenantry.createTenant({ slug: 'gone' })
    const backup = await tenantry.tenants.backup('gone')
    await tenantry.deleteTenant('gone', { purge: true })
    expect(existsSync(backup.location)).toBe(false)
    expect(await tenantry.catalog.db.selectFrom('tenant_backups').select('id').where('id', '=', backup.id).execute()).toEqual([])
  })

  it('onProgress (issue 16): the pages copied, then the checksum read; a restore reads the checksum first, then copies', async () => {
    await tenantry.createTenant({ slug: 'told' })
    await fill(tenantry, 'told', 'told')
    const heard: BackupProgress[] = []
    const backup = await tenantry.tenants.backup('told', { onProgress: (p) => heard.push(p) })
    const copy = heard.filter((p) => p.step === 'copy')
    expect(copy.length).toBeGreaterThan(0)
    expect(copy.at(-1)).toEqual({ step: 'copy', done: copy.at(-1)!.total, total: expect.any(Number), unit: 'pages' })
    expect(copy.at(-1)!.total).toBeGreaterThan(1)
    expect(heard.at(-1)).toEqual({ step: 'checksum', done: backup.bytes, total: backup.bytes, unit: 'bytes' })
    expect(steps(heard)).toEqual(['copy', 'checksum'])

    heard.length = 0
    await tenantry.tenants.restore('told', { backup: backup.id, onProgress: (p) => heard.push(p) })
    expect(steps(heard)).toEqual(['checksum', 'copy', 'migrate'])
    expect(heard.filter((p) => p.step === 'copy').at(-1)).toMatchObject({ done: copy.at(-1)!.total, unit: 'pages' })
  })
})

/** The steps heard, each once, in order. */
function steps(heard: BackupProgress[]): string[] {
  return heard.map((p) => p.step).filter((step, i, all) => step !== all[i - 1])
}

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping backups on Postgres: ${postgres.skip}`)

describe.skipIf('skip' in postgres)('backup and restore on Postgres: schema, database and row tenants', () => {
  const home = tempDir()
  const dataSourceId = `backups_${process.pid}`
  let data: TestDatabase
  let tenantry: Tenantry
  beforeAll(async () => {
    if (!('url' in postgres)) return
    data = await createTestDatabase(postgres.url, 'tenantry_backups')
    tenantry = await createTenantry({
      home: home.path,
      migrations: { tenant: migrations },
      dataSources: [{ id: dataSourceId, engine: 'postgres', url: data.url, isolations: ['schema', 'row', 'database'] }],
      defaults: { dataSource: dataSourceId },
    })
  })
  afterAll(async () => {
    if (!('url' in postgres)) return
    for (const slug of ['db_a', 'db_b', 'db_a_copy']) await tenantry?.deleteTenant(slug, { purge: true }).catch(() => undefined)
    await tenantry?.close()
    await data?.drop()
    await dropAppRoles(postgres.url, [dataSourceId])
    home.cleanup()
  })

  const failures = async () => (await runDoctor(tenantry)).filter((c) => c.status === 'fail')

  it('schema tenants (pg_dump of the schema): exact state back, neighbour untouched, --as, doctor clean', async () => {
    const { backup } = await backupStory(tenantry, 'schema_a', 'schema_b', { dataSource: dataSourceId, isolation: 'schema' })
    expect(backup.method).toBe('pg_dump')
    expect(await failures()).toEqual([])
  })

  it('database tenants (pg_dump of the database): exact state back, neighbour untouched, --as, doctor clean', async () => {
    const { backup } = await backupStory(tenantry, 'db_a', 'db_b', { dataSource: dataSourceId, isolation: 'database' })
    expect(backup.method).toBe('pg_dump')
    expect(await failures()).toEqual([])
  })

  it('row tenants (the export codec): exact state back, neighbour in the same tables untouched, --as, doctor clean', async () => {
    const { backup } = await backupStory(tenantry, 'row_a', 'row_b', { dataSource: dataSourceId, isolation: 'row' })
    expect(backup.method).toBe('rows')
    expect(await failures()).toEqual([])
  })

  it('onProgress (issue 16): pg_dump table by table, rows for row tenants, then the checksum', async () => {
    const heard: BackupProgress[] = []
    await tenantry.createTenant({ slug: 'told_schema', dataSource: dataSourceId, isolation: 'schema' })
    await fill(tenantry, 'told_schema', 'told')
    const schema = await tenantry.tenants.backup('told_schema', { onProgress: (p) => heard.push(p) })
    expect(steps(heard)).toEqual(['dump', 'checksum'])
    const tables = heard.filter((p) => p.step === 'dump' && p.table !== undefined)
    expect(tables.map((p) => p.table).sort()).toEqual(expect.arrayContaining(['folders', 'notes']))
    expect(tables.at(-1)).toMatchObject({ done: tables.length, unit: 'tables' })
    heard.length = 0
    await tenantry.tenants.restore('told_schema', { backup: schema.id, onProgress: (p) => heard.push(p) })
    expect(steps(heard)).toEqual(['checksum', 'restore', 'migrate'])

    heard.length = 0
    await tenantry.createTenant({ slug: 'told_row', dataSource: dataSourceId, isolation: 'row' })
    await fill(tenantry, 'told_row', 'told')
    const rows = await tenantry.tenants.backup('told_row', { onProgress: (p) => heard.push(p) })
    expect(steps(heard)).toEqual(['rows', 'checksum'])
    expect(heard.filter((p) => p.step === 'rows').at(-1)).toMatchObject({ done: 42, unit: 'rows' })
    heard.length = 0
    await tenantry.tenants.restore('told_row', { backup: rows.id, onProgress: (p) => heard.push(p) })
    expect(steps(heard)).toEqual(['checksum', 'rows'])
    expect(heard.at(-1)).toMatchObject({ done: 42, unit: 'rows' })
    for (const slug of ['told_schema', 'told_row']) await tenantry.deleteTenant(slug, { purge: true })
  })
})
