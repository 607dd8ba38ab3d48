import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient, type Client } from '@libsql/client'
import Database from 'better-sqlite3'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry, type TenantRecord } from 'tenantry'
import { createApp } from '@tenantry/server'
import { tempDir } from 'tenantry/testing'

const MIGRATIONS = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))
const ALPHA_SECRET = 'ALPHA-ONLY-7f3a'
const BETA_SECRET = 'BETA-ONLY-91c2'

const dir = tempDir('tenantry-sql-http-')
const home = join(dir.path, 'home')
const tenantsDir = join(home, 'tenants')
const catalogPath = join(home, 'catalog.db')
let tenantry: Tenantry
let app: FastifyInstance
let url: string
let alpha: TenantRecord
let beta: TenantRecord
const tokens = {} as Record<'alphaRw' | 'alphaRo' | 'betaRo' | 'expired' | 'revoked', string>
/** Every response body any client received, to prove nothing of beta ever left through alpha's tokens. */
const alphaResponses: string[] = []
const clients: Client[] = []

/** A libSQL client exactly as an integration (n8n, a script) would make one, recording what it receives. */
function client(authToken: string, record = true): Client {
  const c = createClient({
    url,
    authToken,
    fetch: async (request: Request) => {
      const response = await fetch(request)
      if (record) alphaResponses.push(await response.clone().text())
      return response
    },
  })
  clients.push(c)
  return c
}

const pathOf = (t: TenantRecord) => join(tenantsDir, t.placement.locator)
/** The database file and its WAL (the -shm is shared-memory scratch that readers touch too). */
function fileHash(path: string): string {
  const h = createHash('sha256')
  for (const f of [path, `${path}-wal`]) h.update(existsSync(f) ? readFileSync(f) : Buffer.from('absent'))
  return h.digest('hex')
}
const listFiles = (d: string) => (existsSync(d) ? readdirSync(d).sort() : [])
/** The catalog's content, except the `last_used_at` that verifying a token may update. */
function catalogDump(): string {
  const db = new Database(catalogPath, { readonly: true })
  try {
    const tables = db.prepare("SELECT name, sql FROM sqlite_master ORDER BY name").all() as Array<{ name: string; sql: string | null }>
    const rows = tables
      .filter((t) => t.sql?.startsWith('CREATE TABLE'))
      .map((t) => {
        const data = db.prepare(`SELECT * FROM "${t.name}" ORDER BY rowid`).all() as Array<Record<string, unknown>>
        return [t.name, data.map(({ last_used_at: _ignored, ...rest }) => rest)]
      })
    return JSON.stringify({ tables, rows })
  } finally {
    db.close()
  }
}
function schemaOf(t: TenantRecord): string {
  const db = new Database(pathOf(t), { readonly: true })
  try {
    return JSON.stringify(db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name').all())
  } finally {
    db.close()
  }
}

beforeAll(async () => {
  tenantry = await createTenantry({ home, migrations: { tenant: MIGRATIONS } })
  alpha = await tenantry.tenants.create({ slug: 'alpha' })
  beta = await tenantry.tenants.create({ slug: 'beta' })
  // Row ids collide on purpose: id 1 is a job in both tenants.
  for (const [t, secret] of [[alpha, ALPHA_SECRET], [beta, BETA_SECRET]] as const) {
    await tenantry.withTenant(t.slug, async () => {
      await tenantry.db().insertInto('jobs').values({ id: 1, company: secret, title: 'Engineer', start_date: '2020-01-01' }).execute()
      await tenantry.db().insertInto('highlights').values({ id: 1, job_id: 1, content: `${secret} highlight` }).execute()
    })
  }
  tokens.alphaRw = (await tenantry.tokens.create('alpha', { readOnly: false, name: 'rw' })).token
  tokens.alphaRo = (await tenantry.tokens.create('alpha', { readOnly: true, name: 'n8n' })).token
  tokens.betaRo = (await tenantry.tokens.create('beta', { readOnly: true })).token
  tokens.expired = (await tenantry.tokens.create('alpha', { readOnly: true, expiresIn: 1 })).token
  const revoked = await tenantry.tokens.create('alpha', { readOnly: false })
  await tenantry.tokens.revoke(revoked.record.id)
  tokens.revoked = revoked.token

  app = await createApp({ tenantry, logger: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (!address || typeof address === 'string') throw new Error('no address')
  url = `http://127.0.0.1:${address.port}`
})

afterAll(async () => {
  for (const c of clients) c.close()
  await app?.close()
  await tenantry?.close()
  dir.cleanup()
})

describe('SQL-over-HTTP with @libsql/client', () => {
  it('a read-write token executes, batches, runs transactions and round-trips values', async () => {
    const db = client(tokens.alphaRw)
    const first = await db.execute('SELECT id, company FROM jobs WHERE id = 1')
    expect(first.columns).toEqual(['id', 'company'])
    expect(first.rows[0]).toMatchObject({ id: 1, company: ALPHA_SECRET })

    const inserted = await db.execute({
      sql: 'INSERT INTO jobs (company, title, start_date, description) VALUES (?, :title, ?, ?) RETURNING id, description',
      args: ['Initech', '2021-02-03', 'multi\nline ✓'],
    }).catch(async () =>
      // Mixed positional and named args are a client-side choice; fall back to named only.
      db.execute({
        sql: 'INSERT INTO jobs (company, title, start_date, description) VALUES (:c, :t, :s, :d) RETURNING id, description',
        args: { c: 'Initech', t: 'Dev', s: '2021-02-03', d: 'multi\nline ✓' },
      }),
    )
    expect(inserted.rowsAffected).toBe(1)
    const newId = Number(inserted.rows[0]!.id)
    expect(newId).toBeGreaterThan(1)
    expect(inserted.rows[0]!.description).toBe('multi\nline ✓')

    const plain = await db.execute({ sql: 'INSERT INTO highlights (job_id, content, metric) VALUES (?, ?, ?)', args: [newId, 'blob', null] })
    expect(plain.rowsAffected).toBe(1)
    expect(plain.lastInsertRowid).toBeDefined()

    const exact = createClient({ url, authToken: tokens.alphaRw, intMode: 'bigint' })
    clients.push(exact)
    const big = await exact.execute({ sql: 'SELECT ? AS big, ? AS f, ? AS b, NULL AS n', args: [9007199254740993n, 1.5, new Uint8Array([1, 2, 3])] })
    const row = big.rows[0]!
    expect(row.big).toBe(9007199254740993n)
    expect(row.f).toBe(1.5)
    expect(row.n).toBeNull()
    expect(new Uint8Array(row.b as ArrayBuffer)).toEqual(new Uint8Array([1, 2, 3]))

    const batch = await db.batch(
      [
        { sql: 'UPDATE jobs SET title = ? WHERE id = ?', args: ['Staff', newId] },
        { sql: 'SELECT title FROM jobs WHERE id = ?', args: [newId] },
      ],
      'write',
    )
    expect(batch[0]!.rowsAffected).toBe(1)
    expect(batch[1]!.rows[0]!.title).toBe('Staff')

    // A failing batch is one transaction: nothing of it stays.
    await expect(
      db.batch(['UPDATE jobs SET title = \'half\' WHERE id = 1', 'INSERT INTO highlights (job_id, content) VALUES (999999, NULL)'], 'write'),
    ).rejects.toThrow()
    expect((await db.execute('SELECT title FROM jobs WHERE id = 1')).rows[0]!.title).toBe('Engineer')

    // Interactive transactions continue the stream with a baton.
    const tx = await db.transaction('write')
    await tx.execute({ sql: 'UPDATE jobs SET location = ? WHERE id = ?', args: ['Berlin', newId] })
    expect((await tx.execute({ sql: 'SELECT location FROM jobs WHERE id = ?', args: [newId] })).rows[0]!.location).toBe('Berlin')
    await tx.commit()
    expect((await db.execute({ sql: 'SELECT location FROM jobs WHERE id = ?', args: [newId] })).rows[0]!.location).toBe('Berlin')

    const rolledBack = await db.transaction('write')
    await rolledBack.execute('DELETE FROM highlights')
    await rolledBack.rollback()
    expect(Number((await db.execute('SELECT count(*) AS n FROM highlights')).rows[0]!.n)).toBeGreaterThan(0)

    // Savepoints inside a batch.
    const sp = await db.batch(['SAVEPOINT s', "UPDATE jobs SET location = 'x' WHERE id = 1", 'ROLLBACK TO s', 'RELEASE s', 'SELECT location FROM jobs WHERE id = 1'], 'write')
    expect(sp[4]!.rows[0]!.location).toBeNull()
  })

  it('a read-only token reads, and every write fails with a clear error', async () => {
    const db = client(tokens.alphaRo)
    expect((await db.execute('SELECT company FROM jobs WHERE id = 1')).rows[0]!.company).toBe(ALPHA_SECRET)
    expect((await db.batch(['SELECT 1 AS one', 'SELECT count(*) AS n FROM jobs'], 'read'))[0]!.rows[0]!.one).toBe(1)
    for (const sql of ["INSERT INTO jobs (company, title, start_date) VALUES ('x','y','z')", 'DELETE FROM jobs', "UPDATE jobs SET title = 'x'"]) {
      await expect(db.execute(sql), sql).rejects.toThrow(/read-only/i)
    }
    await expect(db.batch(["UPDATE jobs SET title = 'x'"], 'write')).rejects.toThrow()
  })

  it('a token of one tenant only ever sees that tenant', async () => {
    const a = await client(tokens.alphaRo).execute('SELECT company FROM jobs WHERE id = 1')
    const b = await client(tokens.betaRo, false).execute('SELECT company FROM jobs WHERE id = 1')
    expect(a.rows[0]!.company).toBe(ALPHA_SECRET)
    expect(b.rows[0]!.company).toBe(BETA_SECRET)
  })

  it('expired, revoked, malformed and missing tokens get 401', async () => {
    await new Promise((r) => setTimeout(r, 5))
    for (const token of [tokens.expired, tokens.revoked, 'tnt_nope', `${tokens.alphaRo.slice(0, -2)}xx`]) {
      await expect(client(token).execute('SELECT 1'), token).rejects.toThrow(/token|401/i)
      const response = await fetch(`${url}/v2/pipeline`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }] }),
      })
      expect(response.status).toBe(401)
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED')
    }
    const anonymous = await fetch(`${url}/v2/pipeline`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"requests":[]}' })
    expect(anonymous.status).toBe(401)
  })

  it('a baton continues only its own stream, for its own token', async () => {
    const post = (token: string, body: unknown) =>
      fetch(`${url}/v2/pipeline`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const opened = (await (await post(tokens.alphaRw, { requests: [{ type: 'execute', stmt: { sql: 'BEGIN' } }] })).json()) as { baton: string }
    expect(opened.baton).toEqual(expect.any(String))
    const stolen = await post(tokens.betaRo, { baton: opened.baton, requests: [{ type: 'execute', stmt: { sql: 'SELECT company FROM jobs' } }] })
    expect(stolen.status).toBe(400)
    expect(await stolen.text()).not.toContain(ALPHA_SECRET)
    const closed = await post(tokens.alphaRw, { baton: opened.baton, requests: [{ type: 'execute', stmt: { sql: 'ROLLBACK' } }, { type: 'close' }] })
    expect(((await closed.json()) as { baton: unknown }).baton).toBeNull()
    const reused = await post(tokens.alphaRw, { baton: opened.baton, requests: [{ type: 'close' }] })
    expect(reused.status).toBe(400)
  })
})

describe('escape attempts', () => {
  const betaPath = () => pathOf(beta)
  const stolen = () => join(tenantsDir, 'stolen.db')
  /** Refused for every token: they reach other files, change the schema, the file or the connection. */
  const forbidden = (): string[] => [
    `ATTACH '${betaPath()}' AS b`,
    `ATTACH DATABASE '${catalogPath}' AS c`,
    `ATTACH 'file:${betaPath()}?mode=ro' AS b`,
    `attach database '${betaPath()}' as b`,
    `/* harmless */ ATTACH '${betaPath()}' AS b`,
    `-- a comment\nATTACH '${betaPath()}' AS b`,
    'DETACH DATABASE main',
    `VACUUM INTO '${stolen()}'`,
    'VACUUM',
    'PRAGMA writable_schema = ON',
    'PRAGMA journal_mode = DELETE',
    'PRAGMA query_only = 0',
    'PRAGMA foreign_keys = OFF',
    'PRAGMA user_version = 99',
    'PRAGMA main.wal_checkpoint(TRUNCATE)',
    '; PRAGMA writable_schema = 1',
    "/* SELECT */ PRAGMA writable_schema = 1",
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT fts3_tokenizer('simple')",
    'CREATE TRIGGER evil AFTER INSERT ON jobs BEGIN DELETE FROM highlights; END',
    'CREATE TEMP TABLE scratch(x)',
    'CREATE TEMP TRIGGER evil AFTER INSERT ON main.jobs BEGIN DELETE FROM main.highlights; END',
    'CREATE VIEW v AS SELECT * FROM jobs',
    'CREATE TABLE pwned(x)',
    'CREATE VIRTUAL TABLE f USING fts5(x)',
    'CREATE INDEX i ON jobs(title)',
    'DROP TABLE highlights',
    'DROP INDEX highlights_job_position',
    'ALTER TABLE jobs ADD COLUMN pwned TEXT',
    'ALTER TABLE jobs RENAME TO gone',
    'SELECT 1; DROP TABLE highlights',
    `SELECT 1; ATTACH '${betaPath()}' AS b`,
    'WITH x AS (SELECT 1) SELECT * FROM x; DELETE FROM jobs',
    "UPDATE sqlite_master SET sql = 'CREATE TABLE jobs(x)' WHERE name = 'jobs'",
    'DELETE FROM sqlite_master',
    "INSERT INTO sqlite_master VALUES ('table', 'x', 'x', 0, 'CREATE TABLE x(a)')",
    'ANALYZE',
    'REINDEX',
    'EXPLAIN SELECT 1',
    'SELECT * FROM temp.sqlite_master',
    'SELECT * FROM b.jobs',
    `SELECT sqlite_attach('${betaPath()}', 'b', NULL)`,
    'BEGIN; DELETE FROM jobs; COMMIT',
    // Table-valued PRAGMA functions and raw-page tables (issue #9): pragma_optimize wrote
    // sqlite_stat1/stat4 (then writable), pragma_database_list showed the server's file path.
    'SELECT * FROM pragma_optimize(65538)',
    'SELECT * FROM pragma_database_list',
    'SELECT file FROM "pragma_database_list"',
    "SELECT * FROM 'pragma_database_list'",
    'SELECT * FROM [PRAGMA_DATABASE_LIST]',
    "SELECT * FROM pragma_table_info('jobs')",
    'SELECT name FROM jobs, pragma_index_list(jobs.title)',
    'SELECT * FROM sqlite_dbpage',
    'SELECT * FROM dbstat',
  ]
  /** Writes: allowed for a read-write token, refused for a read-only one. */
  const writes = [
    "INSERT INTO jobs (company, title, start_date) VALUES ('x', 'y', 'z') RETURNING id",
    'DELETE FROM highlights',
    'DELETE /* quietly */ FROM jobs WHERE id = 1',
    'WITH d AS (SELECT id FROM jobs) DELETE FROM jobs WHERE id IN (SELECT id FROM d)',
    "UPDATE jobs SET company = 'pwned'",
    "REPLACE INTO jobs (id, company, title, start_date) VALUES (1, 'x', 'y', 'z')",
    "INSERT OR REPLACE INTO highlights (id, job_id, content) VALUES (1, 1, 'x')",
  ]

  it(`refuses 40+ escape statements for a read-write token, and every other tenant and the catalog stay unchanged`, async () => {
    const corpus = forbidden()
    expect(corpus.length).toBeGreaterThanOrEqual(30)
    const before = { beta: fileHash(betaPath()), alphaSchema: schemaOf(alpha), catalog: catalogDump(), files: listFiles(tenantsDir), home: listFiles(home) }
    const db = client(tokens.alphaRw)
    for (const sql of corpus) {
      const error = await db.execute(sql).then(() => undefined, (e: { code?: string }) => e)
      expect(error, sql).toBeDefined()
      // Refused by the guard, or by SQLite because the thing named does not exist here (b.jobs, sqlite_attach()).
      expect(['SQL_FORBIDDEN', 'SQLITE_ERROR'], `${sql}: ${String(error)}`).toContain(error?.code)
      await expect(db.batch([sql], 'write'), sql).rejects.toThrow()
    }
    // Savepoints around a forbidden statement do not help.
    await expect(db.batch(['SAVEPOINT s', `ATTACH '${betaPath()}' AS b`, 'RELEASE s', 'SELECT * FROM b.jobs'], 'write')).rejects.toThrow()
    expect(fileHash(betaPath())).toBe(before.beta)
    expect(schemaOf(alpha)).toBe(before.alphaSchema)
    expect(catalogDump()).toBe(before.catalog)
    expect(listFiles(tenantsDir)).toEqual(before.files)
    expect(listFiles(home)).toEqual(before.home)
    expect(existsSync(stolen())).toBe(false)
  })

  it('refuses every escape and every write for a read-only token: both tenant files stay byte-for-byte the same', async () => {
    const corpus = [...forbidden(), ...writes]
    const before = { alpha: fileHash(pathOf(alpha)), beta: fileHash(betaPath()), catalog: catalogDump(), files: listFiles(tenantsDir) }
    const db = client(tokens.alphaRo)
    for (const sql of corpus) {
      await expect(db.execute(sql), sql).rejects.toThrow()
      await expect(db.batch([sql], 'read'), sql).rejects.toThrow()
    }
    await expect(db.batch(['SAVEPOINT s', 'DELETE FROM jobs', 'RELEASE s'], 'deferred')).rejects.toThrow()
    const tx = await db.transaction('read')
    await expect(tx.execute('DELETE FROM jobs')).rejects.toThrow(/read-only/i)
    await tx.rollback()
    expect(fileHash(pathOf(alpha))).toBe(before.alpha)
    expect(fileHash(betaPath())).toBe(before.beta)
    expect(catalogDump()).toBe(before.catalog)
    expect(listFiles(tenantsDir)).toEqual(before.files)
    expect((await db.execute('SELECT company FROM jobs WHERE id = 1')).rows[0]!.company).toBe(ALPHA_SECRET)
  })

  it('the same writes work for the read-write token (the rules refuse escapes, not data changes)', async () => {
    const db = client(tokens.alphaRw)
    for (const sql of writes) await expect(db.execute(sql), sql).resolves.toBeDefined()
  })

  it('never returned anything of the other tenant through alpha tokens', () => {
    expect(alphaResponses.length).toBeGreaterThan(100)
    const all = alphaResponses.join('\n')
    expect(all).not.toContain(BETA_SECRET)
    expect(all).not.toContain(beta.id)
    expect(all).toContain(ALPHA_SECRET)
  })
})
