import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry } from '../../tenantry.js'
import { createManagedAdmin, dropAppRoles, findPostgres, tempDir, type ManagedAdmin } from '../../testing/services.js'
import { rewriteRowForeignKeys } from './row-foreign-keys.js'

/** `jobs` and `notes` are keyed by tenant already; anything else is not. */
const keyed = async (names: readonly string[]) => new Set(names.filter((n) => n === 'jobs' || n === 'notes'))
const flat = (text: string) => text.replace(/\s+/g, ' ').replace(/\( /g, '(').replace(/ \)/g, ')').trim()

describe('rewriting foreign keys to tables row isolation keyed by tenant', () => {
  it("makes a column's key to a keyed table composite, and gives the new table its tenant_id", async () => {
    const text = 'CREATE TABLE job_links (id serial PRIMARY KEY, job_id integer NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, url text NOT NULL)'
    expect(flat(await rewriteRowForeignKeys(text, keyed))).toBe(
      'CREATE TABLE job_links (tenant_id text NOT NULL DEFAULT tenant_rows.tenantry_tenant_id(), id serial PRIMARY KEY, job_id int NOT NULL, url text NOT NULL, ' +
        'FOREIGN KEY(tenant_id, job_id) REFERENCES jobs (tenant_id, id) ON DELETE CASCADE)',
    )
  })

  it('rewrites ALTER TABLE … ADD COLUMN … REFERENCES and ADD FOREIGN KEY, a key to the primary key without columns, and a schema-qualified name', async () => {
    const text = 'ALTER TABLE notes ADD COLUMN job_id int REFERENCES jobs, ADD CONSTRAINT notes_pair FOREIGN KEY (a, b) REFERENCES tenant_rows.jobs (x, y)'
    expect(flat(await rewriteRowForeignKeys(text, keyed))).toBe(
      'ALTER TABLE notes ADD COLUMN job_id int, ADD FOREIGN KEY(tenant_id, job_id) REFERENCES jobs, ' +
        'ADD CONSTRAINT notes_pair FOREIGN KEY(tenant_id, a, b) REFERENCES tenant_rows.jobs (tenant_id, x, y)',
    )
  })

  it('clears only the app’s columns on ON DELETE SET NULL, and keeps a column list the app wrote', async () => {
    expect(flat(await rewriteRowForeignKeys('CREATE TABLE l (id int, job_id int REFERENCES jobs (id) ON DELETE SET NULL)', keyed))).toContain(
      'FOREIGN KEY(tenant_id, job_id) REFERENCES jobs (tenant_id, id) ON DELETE SET NULL (job_id)',
    )
    expect(flat(await rewriteRowForeignKeys('CREATE TABLE l (a int, b int, CONSTRAINT "L ab" FOREIGN KEY (a, b) REFERENCES jobs (x, y) ON DELETE SET DEFAULT (b))', keyed))).toContain(
      'CONSTRAINT "L ab" FOREIGN KEY(tenant_id, a, b) REFERENCES jobs (tenant_id, x, y) ON DELETE SET DEFAULT (b)',
    )
  })

  it('adds tenant_id first to a table the same migration made, when it gets a key to a keyed table', async () => {
    expect(flat(await rewriteRowForeignKeys('ALTER TABLE fresh ADD COLUMN job_id int REFERENCES jobs (id)', keyed))).toBe(
      'ALTER TABLE fresh ADD COLUMN IF NOT EXISTS tenant_id text NOT NULL DEFAULT tenant_rows.tenantry_tenant_id(), ADD COLUMN job_id int, ' +
        'ADD FOREIGN KEY(tenant_id, job_id) REFERENCES jobs (tenant_id, id)',
    )
  })

  it('sends everything else exactly as written: other statements, keys to unkeyed or other-schema tables, keys already led by tenant_id, text that does not parse', async () => {
    const untouched = [
      "-- a comment that says references\nCREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (a_id int REFERENCES a (id)); SELECT 'references';",
      'CREATE TABLE c (id int PRIMARY KEY, user_id int REFERENCES public.users (id))',
      'CREATE TABLE d (tenant_id text, job_id int, FOREIGN KEY (tenant_id, job_id) REFERENCES jobs (tenant_id, id))',
      'CREATE TABLE broken (job_id int REFERENCES jobs (id)',
      'UPDATE jobs SET company = $1 WHERE id = $2',
    ]
    for (const text of untouched) expect(await rewriteRowForeignKeys(text, keyed)).toBe(text)
  })

  it('rewrites only the statement with the key, leaving the text around it as written', async () => {
    const text = "INSERT INTO jobs (company) VALUES ('a;b');\nCREATE TABLE links (job_id int REFERENCES jobs (id));\n-- done\nSELECT 1;"
    const out = await rewriteRowForeignKeys(text, keyed)
    expect(out.startsWith("INSERT INTO jobs (company) VALUES ('a;b');\n")).toBe(true)
    expect(out.endsWith(';\n-- done\nSELECT 1;')).toBe(true)
    expect(flat(out)).toContain('FOREIGN KEY(tenant_id, job_id) REFERENCES jobs (tenant_id, id)')
  })
})

const postgres = await findPostgres()

describe.skipIf('skip' in postgres)(`a later migration with foreign keys to existing tables, on row tenants${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
  const dir = tempDir('tenantry-row-fks-')
  const migrations = join(dir.path, 'migrations')
  const dataSource = `pg_rowfk_${process.pid}`
  let admin: ManagedAdmin
  let tenantry: Tenantry

  const open = () =>
    createTenantry({
      home: dir.path,
      migrations: { tenant: migrations },
      dataSources: [{ id: dataSource, engine: 'postgres', url: admin.url }],
      defaults: { isolation: 'row', dataSource },
    })
  const inTenant = <T>(slug: string, fn: () => Promise<T>) => tenantry.withTenant(slug, fn)
  const db = () => tenantry.db()

  beforeAll(async () => {
    if ('skip' in postgres) return
    admin = await createManagedAdmin(postgres.url, 'tenantry_rowfk')
    mkdirSync(migrations, { recursive: true })
    writeFileSync(join(migrations, '0001_jobs.sql'), 'CREATE TABLE jobs (id integer PRIMARY KEY, company text NOT NULL);\nCREATE TABLE notes (id integer PRIMARY KEY, body text);\n' +
        // A key made with its table: tenantizeRowSchema makes it composite after the migration.
        'CREATE TABLE memos (id integer PRIMARY KEY, job_id integer REFERENCES jobs (id) ON DELETE SET NULL);\n')
    tenantry = await open()
    for (const slug of ['row_a', 'row_b']) await tenantry.createTenant({ slug })
    await tenantry.createTenant({ slug: 'schema_c', isolation: 'schema' })
    // Both row tenants have a job 1: the same id, two tenants' rows.
    for (const slug of ['row_a', 'row_b', 'schema_c']) {
      await inTenant(slug, () => db().insertInto('jobs').values([{ id: 1, company: `${slug} one` }, ...(slug === 'row_b' ? [{ id: 2, company: 'row_b two' }] : [])]).execute())
    }
    // Written after the tables exist and are keyed by tenant: a .sql migration and a query-builder one.
    writeFileSync(
      join(migrations, '0002_links.sql'),
      'CREATE TABLE job_links (id integer PRIMARY KEY, job_id integer NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, url text NOT NULL);\n' +
        'ALTER TABLE notes ADD COLUMN job_id integer REFERENCES jobs (id) ON DELETE SET NULL;\n',
    )
    writeFileSync(
      join(migrations, '0003_tags.ts'),
      `import type { Kysely } from 'kysely'
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('job_tags')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('job_id', 'integer', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
    .addColumn('tag', 'text', (c) => c.notNull())
    .execute()
}
`,
    )
    await tenantry.close()
    tenantry = await open()
  })

  afterAll(async () => {
    if ('skip' in postgres) return
    await tenantry?.close()
    await admin?.drop()
    await dropAppRoles(postgres.url, [dataSource])
    dir.cleanup()
  })

  it('migrates row and schema tenants alike (regression: "there is no unique constraint matching given keys for referenced table")', async () => {
    const report = await tenantry.migrate()
    expect(report.results.filter((r) => r.status !== 'success')).toEqual([])
    expect(report.results.map((r) => r.slug).sort()).toEqual(['row_a', 'row_b', 'schema_c'])
  })

  it("each row tenant's keys point at its own rows: another tenant's id is refused, a delete cascades within the tenant", async () => {
    await inTenant('row_a', async () => {
      await db().insertInto('job_links').values({ id: 1, job_id: 1, url: 'https://a.example' }).execute()
      await db().insertInto('job_tags').values({ id: 1, job_id: 1, tag: 'a' }).execute()
      // Job 2 is row_b's alone.
      await expect(db().insertInto('job_links').values({ id: 2, job_id: 2, url: 'https://x.example' }).execute()).rejects.toMatchObject({ code: '23503' })
      await expect(db().insertInto('job_tags').values({ id: 2, job_id: 2, tag: 'x' }).execute()).rejects.toMatchObject({ code: '23503' })
    })
    await inTenant('row_b', () => db().insertInto('job_links').values({ id: 1, job_id: 1, url: 'https://b.example' }).execute())
    await inTenant('row_a', () => db().deleteFrom('jobs').where('id', '=', 1).execute())
    expect(await inTenant('row_a', () => db().selectFrom('job_links').selectAll().execute())).toEqual([])
    expect(await inTenant('row_a', () => db().selectFrom('job_tags').selectAll().execute())).toEqual([])
    expect(await inTenant('row_b', () => db().selectFrom('job_links').select(['id', 'job_id', 'url']).execute())).toEqual([{ id: 1, job_id: 1, url: 'https://b.example' }])
  })

  it("ON DELETE SET NULL clears the app's column and keeps the row its tenant's, for a key made later and one made with its table", async () => {
    await inTenant('row_b', async () => {
      await db().insertInto('notes').values({ id: 1, body: 'about job 2', job_id: 2 }).execute()
      // Regression: the composite key cleared tenant_id too, and its NOT NULL refused the delete.
      await db().insertInto('memos').values({ id: 1, job_id: 2 }).execute()
      await db().deleteFrom('jobs').where('id', '=', 2).execute()
      expect(await db().selectFrom('notes').select(['id', 'job_id']).execute()).toEqual([{ id: 1, job_id: null }])
      expect(await db().selectFrom('memos').select(['id', 'job_id']).execute()).toEqual([{ id: 1, job_id: null }])
    })
    const owner = (await tenantry.catalog.findTenantBySlug('row_b'))!.id
    for (const table of ['notes', 'memos']) {
      const owners = await inTenant('row_b', () => sql<{ owner: string }>`select tenant_id as owner from ${sql.table(table)}`.execute(db()))
      expect(owners.rows).toEqual([{ owner }])
    }
  })

  it('the schema tenant got the keys as written', async () => {
    await inTenant('schema_c', async () => {
      await db().insertInto('job_links').values({ id: 1, job_id: 1, url: 'https://c.example' }).execute()
      await expect(db().insertInto('job_links').values({ id: 2, job_id: 2, url: 'https://c.example' }).execute()).rejects.toMatchObject({ code: '23503' })
    })
  })
})
