/**
 * SQL-over-HTTP as libSQL's own clients and the ORMs on top of them use it: every parameter
 * form, `executeMultiple` (Hrana `sequence`), `describe`, error codes as `@libsql/client`
 * surfaces them, read transactions for read-only tokens (drizzle, Kysely), and Hrana 3.
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient, LibsqlError, type Client } from '@libsql/client'
import { LibsqlDialect } from '@libsql/kysely-libsql'
import { eq } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/libsql'
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import type { FastifyInstance } from 'fastify'
import { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry, type TenantRecord } from 'tenantry'
import { createApp } from '@tenantry/server'
import { tempDir } from 'tenantry/testing'

const MIGRATIONS = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))
const TRANSACTION_DEADLINE_MS = 1500

const dir = tempDir('tenantry-sql-clients-')
const home = join(dir.path, 'home')
let tenantry: Tenantry
let app: FastifyInstance
let url: string
let tenant: TenantRecord
const tokens = {} as Record<'rw' | 'ro', string>
const clients: Client[] = []

function client(authToken: string): Client {
  const c = createClient({ url, authToken })
  clients.push(c)
  return c
}

/** The tenant's file and WAL: unchanged bytes mean nothing was written. */
function fileHash(): string {
  const path = join(home, 'tenants', tenant.placement.locator)
  const h = createHash('sha256')
  for (const f of [path, `${path}-wal`]) h.update(existsSync(f) ? readFileSync(f) : Buffer.from('absent'))
  return h.digest('hex')
}

/** A raw Hrana request, for what no client sends (v3, describe's exact shape, the extended code). */
async function post(path: string, token: string, body: unknown): Promise<{ status: number; text: string; json: any }> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await response.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: response.status, text, json }
}

const jobs = sqliteTable('jobs', {
  id: integer('id').primaryKey(),
  company: text('company').notNull(),
  title: text('title').notNull(),
  startDate: text('start_date').notNull(),
})

interface KyselyDb {
  jobs: { id: number; company: string; title: string; start_date: string }
}

beforeAll(async () => {
  tenantry = await createTenantry({
    home,
    migrations: { tenant: MIGRATIONS },
    dataSources: [{ id: 'local', engine: 'sqlite', rawSql: { transactionTimeoutMs: TRANSACTION_DEADLINE_MS } }],
  })
  tenant = await tenantry.tenants.create({ slug: 'acme' })
  await tenantry.withTenant('acme', () => tenantry.db().insertInto('jobs').values({ id: 1, company: 'Acme', title: 'Engineer', start_date: '2020-01-01' }).execute())
  tokens.rw = (await tenantry.tokens.create('acme', { readOnly: false, name: 'rw' })).token
  tokens.ro = (await tenantry.tokens.create('acme', { readOnly: true, name: 'ro' })).token
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

describe('parameters, as SQLite binds them', () => {
  it('binds ?, ?NNN, :name, @name and $name, mixed, by position and by name', async () => {
    const db = client(tokens.ro)
    // By index: columns named alike (`?1, ?1`) share one key of a row object.
    const one = async (sql: string, args: unknown) => {
      const result = await db.execute({ sql, args } as never)
      return result.columns.map((_, i) => result.rows[0]![i])
    }
    expect(await one('SELECT ?1', ['a'])).toEqual(['a'])
    expect(await one('SELECT ?1, ?2', ['a', 'b'])).toEqual(['a', 'b'])
    expect(await one('SELECT ?2, ?1', ['a', 'b'])).toEqual(['b', 'a'])
    expect(await one('SELECT ?1, ?1, ?', ['a', 'b'])).toEqual(['a', 'a', 'b'])
    expect(await one('SELECT ?, ?', ['a', 'b'])).toEqual(['a', 'b'])
    expect(await one('SELECT ?1, :a', ['x', 'y'])).toEqual(['x', 'y'])
    expect(await one('SELECT :a, @b, $c', { a: 1, b: 2, c: 3 })).toEqual([1, 2, 3])
    expect(await one('SELECT :a, @b, $c, :a', { ':a': 1, '@b': 2, $c: 3 })).toEqual([1, 2, 3, 1])
    expect(await one('SELECT ?1, :a', { 1: 'x', a: 'y' })).toEqual(['x', 'y'])
    expect(await one("SELECT '?1' AS q, ?1 AS v", ['v'])).toEqual(['?1', 'v'])
    const found = await db.execute({ sql: 'SELECT company FROM jobs WHERE id = ?1 AND title = :t', args: [1, 'Engineer'] })
    expect(found.rows[0]!.company).toBe('Acme')
  })

  it('answers a clear error for values that do not fit', async () => {
    const db = client(tokens.ro)
    await expect(db.execute({ sql: 'SELECT ?1', args: ['a', 'b'] })).rejects.toThrow(/1 parameter but 2/)
    await expect(db.execute({ sql: 'SELECT ?1, ?2', args: ['a'] })).rejects.toThrow(/No value was given for parameter \?2/)
    await expect(db.execute({ sql: 'SELECT :a', args: { b: 1 } })).rejects.toThrow(/no parameter named "b"/)
  })
})

describe('executeMultiple (Hrana sequence)', () => {
  it('runs reads and writes in order for a read-write token', async () => {
    const db = client(tokens.rw)
    await db.executeMultiple(`
      INSERT INTO jobs (id, company, title, start_date) VALUES (100, 'Seq; Co', 'a', '2021-01-01');
      -- a comment; with a semicolon
      UPDATE jobs SET title = 'b' WHERE id = 100;
      SELECT * FROM jobs;
      INSERT INTO highlights (job_id, content) VALUES (100, '/* not a comment; */');
    `)
    const row = (await db.execute('SELECT j.company, j.title, h.content FROM jobs j JOIN highlights h ON h.job_id = j.id WHERE j.id = 100')).rows[0]!
    expect(row).toMatchObject({ company: 'Seq; Co', title: 'b', content: '/* not a comment; */' })
  })

  it("regression: an HTTP error answer reaches the client with the server's code and message, not just its status", async () => {
    // libSQL's clients read an error body only when its content type is exactly application/json;
    // with `; charset=utf-8` they threw "HTTP status 401" and dropped the code and the reason.
    const error = await client('tnt_not_a_real_token').execute('SELECT 1').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LibsqlError)
    expect((error as LibsqlError).message).not.toMatch(/HTTP status \d+/)
    expect((error as LibsqlError).message).toMatch(/token/i)
  })

  it('refuses a write for a read-only token, and nothing of the sequence is applied', async () => {
    const db = client(tokens.ro)
    const before = fileHash()
    const error = await db.executeMultiple("SELECT 1; UPDATE jobs SET title = 'x'; SELECT 2").catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LibsqlError)
    expect((error as LibsqlError).code).toBe('READ_ONLY')
    expect(fileHash()).toBe(before)
  })

  it('refuses DDL inside a sequence, and runs nothing of it (every statement is checked first)', async () => {
    const db = client(tokens.rw)
    const schema = async () => JSON.stringify((await db.execute('SELECT name, sql FROM sqlite_master ORDER BY name')).rows)
    const before = await schema()
    for (const script of [
      "UPDATE jobs SET title = 'ddl-1' WHERE id = 1; CREATE TABLE evil (x); UPDATE jobs SET title = 'ddl-2' WHERE id = 1",
      "UPDATE jobs SET title = 'ddl-1' WHERE id = 1; CREATE TRIGGER t AFTER INSERT ON jobs BEGIN DELETE FROM jobs; END; SELECT 1",
      "UPDATE jobs SET title = 'ddl-1' WHERE id = 1; PRAGMA writable_schema = ON",
      "UPDATE jobs SET title = 'ddl-1' WHERE id = 1; ATTACH 'x.db' AS x",
    ]) {
      const error = await db.executeMultiple(script).catch((e: unknown) => e)
      expect((error as LibsqlError).code, script).toBe('SQL_FORBIDDEN')
      expect((error as Error).message, script).toMatch(/migrations/)
    }
    expect(await schema()).toBe(before)
    expect((await db.execute('SELECT title FROM jobs WHERE id = 1')).rows[0]!.title).toBe('Engineer')
  })

  it('stops at the first SQL error; what ran before it stays, as with sqlite3_exec', async () => {
    const db = client(tokens.rw)
    const error = await db
      .executeMultiple("INSERT INTO jobs (id, company, title, start_date) VALUES (200, 'x', 'y', 'z'); INSERT INTO jobs (id, company, title, start_date) VALUES (200, 'dup', 'y', 'z'); INSERT INTO jobs (id, company, title, start_date) VALUES (201, 'never', 'y', 'z')")
      .catch((e: unknown) => e)
    expect((error as LibsqlError).code).toBe('SQLITE_CONSTRAINT')
    expect((await db.execute('SELECT company FROM jobs WHERE id IN (200, 201) ORDER BY id')).rows.map((r) => r.company)).toEqual(['x'])
  })
})

describe('describe', () => {
  it('reports columns, parameters and whether the statement writes, running nothing', async () => {
    const before = fileHash()
    const { status, json } = await post('/v2/pipeline', tokens.ro, {
      requests: [
        { type: 'describe', sql: 'SELECT id, company AS c FROM jobs WHERE id = ?1 AND title = :t' },
        { type: 'describe', sql: "DELETE FROM jobs WHERE id = ?" },
        { type: 'describe', sql: 'DROP TABLE jobs' },
        { type: 'close' },
      ],
    })
    expect(status).toBe(200)
    expect(json.results[0]).toEqual({
      type: 'ok',
      response: {
        type: 'describe',
        result: {
          params: [{ name: '?1' }, { name: ':t' }],
          cols: [
            { name: 'id', decltype: 'INTEGER' },
            { name: 'c', decltype: 'TEXT' },
          ],
          is_explain: false,
          is_readonly: true,
        },
      },
    })
    expect(json.results[1].response.result).toEqual({ params: [{ name: null }], cols: [], is_explain: false, is_readonly: false })
    expect(json.results[2]).toMatchObject({ type: 'error', error: { code: 'SQL_FORBIDDEN' } })
    expect(fileHash()).toBe(before)
  })
})

describe('error codes', () => {
  it('sends SQLite base codes as `code`, as libSQL does, and the extended code beside it', async () => {
    const db = client(tokens.rw)
    const error = await db.execute("INSERT INTO jobs (id, company, title, start_date) VALUES (1, 'dup', 't', 'd')").catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LibsqlError)
    expect((error as LibsqlError).code).toBe('SQLITE_CONSTRAINT')
    expect((error as Error).message).toMatch(/UNIQUE constraint failed: jobs.id/)
    const raw = await post('/v2/pipeline', tokens.rw, {
      requests: [{ type: 'execute', stmt: { sql: "INSERT INTO jobs (id, company, title, start_date) VALUES (1, 'dup', 't', 'd')" } }, { type: 'close' }],
    })
    expect(raw.json.results[0].error).toEqual({ code: 'SQLITE_CONSTRAINT', extended_code: 'SQLITE_CONSTRAINT_PRIMARYKEY', message: expect.stringMatching(/UNIQUE/) })
    const ddl = await db.execute('CREATE TABLE x (y)').catch((e: unknown) => e)
    expect((ddl as LibsqlError).code).toBe('SQL_FORBIDDEN')
    expect((ddl as Error).message).toMatch(/Schema changes go through migrations/)
  })
})

describe('read transactions for read-only tokens', () => {
  it("drizzle's transaction() reads with a read-only token; a write inside it fails clearly", async () => {
    const db = drizzle(client(tokens.ro))
    const read = await db.transaction(async (tx) => {
      const first = await tx.select().from(jobs).where(eq(jobs.id, 1))
      const count = await tx.select({ id: jobs.id }).from(jobs)
      return { first, count: count.length }
    })
    expect(read.first[0]!.company).toBe('Acme')
    expect(read.count).toBeGreaterThan(0)
    const before = fileHash()
    const error = await db
      .transaction(async (tx) => {
        await tx.select().from(jobs)
        await tx.update(jobs).set({ title: 'nope' }).where(eq(jobs.id, 1))
      })
      .catch((e: unknown) => e)
    // drizzle wraps the driver's error ("Failed query: …") with it as the cause.
    expect((error as Error).message).toMatch(/Failed query: update/)
    expect((error as Error & { cause: LibsqlError }).cause).toBeInstanceOf(LibsqlError)
    expect((error as Error & { cause: LibsqlError }).cause.code).toBe('READ_ONLY')
    expect((error as Error & { cause: LibsqlError }).cause.message).toMatch(/This token is read-only/)
    expect(fileHash()).toBe(before)
    // Nested transactions are savepoints.
    const nested = await db.transaction(async (tx) => tx.transaction(async (inner) => inner.select().from(jobs).where(eq(jobs.id, 1))))
    expect(nested[0]!.title).toBe('Engineer')
  })

  it("@libsql/kysely-libsql's transactions read with a read-only token", async () => {
    const db = new Kysely<KyselyDb>({ dialect: new LibsqlDialect({ url, authToken: tokens.ro }) })
    try {
      const company = await db.transaction().execute(async (trx) => (await trx.selectFrom('jobs').select('company').where('id', '=', 1).executeTakeFirstOrThrow()).company)
      expect(company).toBe('Acme')
      await expect(db.transaction().execute((trx) => trx.deleteFrom('jobs').execute())).rejects.toThrow(/read-only/i)
    } finally {
      await db.destroy()
    }
  })

  it('every BEGIN form works for a read-only token: libSQL transaction modes and raw statements', async () => {
    const db = client(tokens.ro)
    for (const mode of ['write', 'read', 'deferred'] as const) {
      const tx = await db.transaction(mode)
      expect((await tx.execute('SELECT count(*) AS n FROM jobs')).rows[0]!.n).toBeGreaterThan(0)
      await tx.commit()
    }
    expect((await db.batch(['SELECT 1 AS one'], 'write'))[0]!.rows[0]!.one).toBe(1)
    expect((await db.batch(['SELECT 1 AS one'], 'read'))[0]!.rows[0]!.one).toBe(1)
    await db.executeMultiple('BEGIN; SAVEPOINT s; SELECT 1; ROLLBACK TO s; RELEASE s; END; BEGIN TRANSACTION; ROLLBACK; BEGIN DEFERRED; COMMIT; BEGIN EXCLUSIVE; COMMIT')
    // A write-intent BEGIN opens a transaction that still cannot write.
    const { json } = await post('/v2/pipeline', tokens.ro, {
      requests: [
        { type: 'execute', stmt: { sql: 'BEGIN IMMEDIATE' } },
        { type: 'get_autocommit' },
        { type: 'execute', stmt: { sql: "UPDATE jobs SET title = 'x'" } },
        { type: 'execute', stmt: { sql: 'COMMIT' } },
        { type: 'get_autocommit' },
        { type: 'close' },
      ],
    })
    expect(json.results.map((r: { type: string }) => r.type)).toEqual(['ok', 'ok', 'error', 'ok', 'ok', 'ok'])
    expect(json.results[1].response.is_autocommit).toBe(false)
    expect(json.results[2].error.code).toBe('READ_ONLY')
    expect(json.results[4].response.is_autocommit).toBe(true)
  })

  it("a read-write token's transaction('read') cannot write, as on libSQL's server", async () => {
    const db = client(tokens.rw)
    const tx = await db.transaction('read')
    expect((await tx.execute('SELECT title FROM jobs WHERE id = 1')).rows[0]!.title).toBe('Engineer')
    const error = await tx.execute("UPDATE jobs SET title = 'in a read transaction' WHERE id = 1").catch((e: unknown) => e)
    expect((error as LibsqlError).code).toBe('READ_ONLY')
    await tx.rollback()
    // The connection writes again afterwards.
    expect((await db.execute("UPDATE jobs SET location = 'after' WHERE id = 1")).rowsAffected).toBe(1)
    expect((await db.execute('SELECT title, location FROM jobs WHERE id = 1')).rows[0]).toMatchObject({ title: 'Engineer', location: 'after' })
    await db.execute('UPDATE jobs SET location = NULL WHERE id = 1')
  })

  it('a read-only transaction is still bounded by the transaction deadline', async () => {
    const db = client(tokens.ro)
    const tx = await db.transaction('write')
    await tx.execute('SELECT 1')
    await new Promise((r) => setTimeout(r, TRANSACTION_DEADLINE_MS + 700))
    await expect(tx.execute('SELECT 1')).rejects.toThrow(/408|deadline|TRANSACTION_TIMEOUT/i)
    tx.close()
    // And the tenant is served as before.
    expect((await db.execute('SELECT 1 AS one')).rows[0]!.one).toBe(1)
  })
})

describe('Hrana 3 over HTTP', () => {
  it('answers the v3 probe and runs a v3 pipeline with every request kind', async () => {
    expect((await fetch(`${url}/v3`)).status).toBe(200)
    const { status, json } = await post('/v3/pipeline', tokens.rw, {
      requests: [
        { type: 'store_sql', sql_id: 1, sql: 'SELECT company FROM jobs WHERE id = ?1' },
        { type: 'execute', stmt: { sql_id: 1, args: [{ type: 'integer', value: '1' }] } },
        { type: 'get_autocommit' },
        { type: 'sequence', sql: 'BEGIN; UPDATE jobs SET location = \'v3\' WHERE id = 1;' },
        { type: 'get_autocommit' },
        {
          type: 'batch',
          batch: {
            steps: [
              { stmt: { sql: 'SELECT location FROM jobs WHERE id = 1' } },
              { condition: { type: 'not', cond: { type: 'is_autocommit' } }, stmt: { sql: 'ROLLBACK' } },
            ],
          },
        },
        { type: 'describe', sql: 'SELECT 1 AS one' },
        { type: 'close_sql', sql_id: 1 },
        { type: 'close' },
      ],
    })
    expect(status).toBe(200)
    expect(json.baton).toBeNull()
    const types = json.results.map((r: { type: string; response?: { type: string } }) => r.response?.type ?? r.type)
    expect(types).toEqual(['store_sql', 'execute', 'get_autocommit', 'sequence', 'get_autocommit', 'batch', 'describe', 'close_sql', 'close'])
    expect(json.results[1].response.result.rows).toEqual([[{ type: 'text', value: 'Acme' }]])
    expect(json.results[2].response.is_autocommit).toBe(true)
    expect(json.results[4].response.is_autocommit).toBe(false)
    expect(json.results[5].response.result.step_results[0].rows).toEqual([[{ type: 'text', value: 'v3' }]])
    expect(json.results[5].response.result.step_results[1]).not.toBeNull()
    // Rolled back.
    expect((await client(tokens.ro).execute('SELECT location FROM jobs WHERE id = 1')).rows[0]!.location).toBeNull()
  })

  it('streams a batch through /v3/cursor as newline-separated entries', async () => {
    const { status, text } = await post('/v3/cursor', tokens.ro, {
      batch: {
        steps: [
          { stmt: { sql: 'SELECT id FROM jobs WHERE id <= ?1 ORDER BY id', args: [{ type: 'integer', value: '1' }] } },
          { stmt: { sql: "UPDATE jobs SET title = 'x'" } },
          { condition: { type: 'ok', step: 1 }, stmt: { sql: 'SELECT 2' } },
        ],
      },
    })
    expect(status).toBe(200)
    const [head, ...entries] = text.trimEnd().split('\n').map((line) => JSON.parse(line))
    expect(head).toEqual({ baton: expect.any(String), base_url: null })
    expect(entries).toEqual([
      { type: 'step_begin', step: 0, cols: [{ name: 'id', decltype: 'INTEGER' }] },
      { type: 'row', row: [{ type: 'integer', value: '1' }] },
      { type: 'step_end', affected_row_count: 0, last_insert_rowid: null },
      { type: 'step_error', step: 1, error: expect.objectContaining({ code: 'READ_ONLY' }) },
    ])
    // The baton continues the stream on the pipeline.
    const closed = await post('/v3/pipeline', tokens.ro, { baton: head.baton, requests: [{ type: 'close' }] })
    expect(closed.json.baton).toBeNull()
  })
})
