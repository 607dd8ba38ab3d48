import { join } from 'node:path'
import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SqliteEngine } from './engines/sqlite/sqlite-engine.js'
import { NoTenantError, isTenantryError } from './errors.js'
import { createTenantry, type Tenantry } from './tenantry.js'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir, type TestDatabase } from './testing/services.js'

// Issue 8, items 1 and 2: `tenantry.bounded` runs ordinary Kysely queries off the event loop
// (SQLite: the executor's processes) and under a statement deadline (Postgres: transaction-local
// `statement_timeout` and `lock_timeout`).

const migrations = {
  '0001_notes': {
    up: async (db: Kysely<any>) => {
      await db.schema
        .createTable('notes')
        .addColumn('id', 'bigint', (c) => c.primaryKey())
        .addColumn('title', 'text', (c) => c.notNull())
        .execute()
    },
  },
}

/** What `promise` rejected with (it must reject). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

describe('tenantry.bounded on SQLite', () => {
  const dir = tempDir()
  let tenantry: Tenantry
  beforeAll(async () => {
    tenantry = await createTenantry({
      home: join(dir.path, 'home'),
      migrations: { tenant: migrations },
      // The data source's own deadline for bounded queries.
      dataSources: [{ id: 'local', engine: 'sqlite', bounded: { statementTimeoutMs: 300 } }],
    })
    await tenantry.createTenant({ slug: 'acme' })
    // Starts the executor processes and waits for all of them: the deadlines below are the
    // statements', not a cold start's on a busy machine.
    await tenantry.withTenant('acme', () => tenantry.bounded((db) => db.selectFrom('notes').selectAll().execute(), { statementTimeoutMs: 30_000 }))
    const engine = (await tenantry.dataSources.engine('local')) as SqliteEngine
    while (engine.executorStats?.starting !== 0) await new Promise((resolve) => setTimeout(resolve, 50))
  })
  afterAll(async () => {
    await tenantry?.close()
    dir.cleanup()
  })

  const inAcme = <T>(fn: () => Promise<T>) => tenantry.withTenant('acme', fn)

  it('throws NoTenantError outside withTenant', () => {
    expect(() => tenantry.bounded(async (db) => db.selectFrom('notes').selectAll().execute())).toThrow(NoTenantError)
  })

  it('closes every session it opens: a call that ran a query, one that ran none, and one that threw first', async () => {
    const engine = (await tenantry.dataSources.engine('local')) as SqliteEngine
    const open = () => engine.executorStats!.sessions
    const before = open()
    for (let i = 0; i < 5; i++) {
      await inAcme(() => tenantry.bounded((db) => db.selectFrom('notes').selectAll().execute()))
      expect(await inAcme(() => tenantry.bounded(async () => 'nothing asked'))).toBe('nothing asked')
      await expect(inAcme(() => tenantry.bounded(async () => Promise.reject(new Error('before any query'))))).rejects.toThrow('before any query')
    }
    expect(open()).toBe(before)
  })

  it('runs Kysely queries in the executor: rows as objects, big integers exact, transactions, constraint codes', async () => {
    const big = 2n ** 60n
    const rows = await inAcme(() =>
      tenantry.bounded((db) =>
        db
          .insertInto('notes')
          .values([
            { id: 1, title: 'one' },
            { id: big, title: 'big' },
          ])
          .returning(['id', 'title'])
          .execute(),
      ),
    )
    expect(rows).toEqual([
      { id: 1, title: 'one' },
      { id: big.toString(), title: 'big' },
    ])
    // A transaction that throws leaves nothing; one that returns commits.
    await expect(
      inAcme(() =>
        tenantry.bounded((db) =>
          db.transaction().execute(async (trx) => {
            await trx.insertInto('notes').values({ id: 2, title: 'rolled back' }).execute()
            throw new Error('undo')
          }),
        ),
      ),
    ).rejects.toThrow('undo')
    await inAcme(() => tenantry.bounded((db) => db.transaction().execute((trx) => trx.insertInto('notes').values({ id: 3, title: 'three' }).execute())))
    const duplicate = await rejection(inAcme(() => tenantry.bounded((db) => db.insertInto('notes').values({ id: 1, title: 'again' }).execute())))
    expect((duplicate as { code?: string }).code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY')
    // Read-only: the connection refuses writes.
    const refused = await rejection(inAcme(() => tenantry.bounded((db) => db.deleteFrom('notes').execute(), { readOnly: true })))
    expect((refused as { code?: string }).code).toBe('READ_ONLY')
    const deleted = await inAcme(() => tenantry.bounded((db) => db.deleteFrom('notes').where('id', '=', 3).executeTakeFirst()))
    expect(deleted.numDeletedRows).toBe(1n)
    // The in-process handle sees the same data.
    const seen = await inAcme(() => tenantry.db().selectFrom('notes').select('title').orderBy('id').execute())
    expect(seen.map((r) => r.title)).toEqual(['one', 'big'])
  })

  it('stops a statement at the deadline (the data source’s, or the call’s) without holding the event loop', async () => {
    const endless = (db: Kysely<any>) =>
      sql`with recursive n(x) as (select 1 union all select x + 1 from n) select count(*) from n`.execute(db)
    for (const [options, deadline] of [[{}, 300], [{ statementTimeoutMs: 100 }, 100]] as const) {
      let ticks = 0
      const timer = setInterval(() => ticks++, 20)
      const started = performance.now()
      const error = await rejection(inAcme(() => tenantry.bounded(endless, { readOnly: true, ...options })))
      const elapsed = performance.now() - started
      clearInterval(timer)
      expect(isTenantryError(error, 'STATEMENT_TIMEOUT'), String(error)).toBe(true)
      expect((error as Error).message).toContain(`${deadline} ms`)
      expect(elapsed).toBeLessThan(deadline + 1_000)
      // The loop went on meanwhile.
      expect(ticks).toBeGreaterThan(0)
    }
    // The tenant's file is intact and serves on.
    const count = await inAcme(() => tenantry.bounded((db) => db.selectFrom('notes').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()))
    expect(count).toEqual({ n: 2 })
  })
})

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping tenantry.bounded on Postgres: ${postgres.skip}`)

describe.skipIf('skip' in postgres)('tenantry.bounded on Postgres (schema isolation)', () => {
  const dataSourceId = `bounded_${process.pid}`
  const dir = tempDir()
  let data: TestDatabase
  let tenantry: Tenantry
  let schema: string
  beforeAll(async () => {
    if (!('url' in postgres)) return
    data = await createTestDatabase(postgres.url, 'tenantry_bounded')
    tenantry = await createTenantry({
      home: join(dir.path, 'home'),
      migrations: { tenant: migrations },
      // One pooled connection: the leak check below reads the very connection the bounded calls used.
      dataSources: [
        { id: 'local', engine: 'sqlite' },
        { id: dataSourceId, engine: 'postgres', url: data.url, isolations: ['schema'], poolSize: 1 },
      ],
    })
    const tenant = await tenantry.createTenant({ slug: 'pgacme', isolation: 'schema', dataSource: dataSourceId })
    schema = tenant.placement.locator
  })
  afterAll(async () => {
    await tenantry?.deleteTenant('pgacme', { purge: true }).catch(() => {})
    await tenantry?.close()
    if ('url' in postgres) await dropAppRoles(postgres.url, [dataSourceId])
    await data?.drop()
    dir.cleanup()
  })

  const inAcme = <T>(fn: () => Promise<T>) => tenantry.withTenant('pgacme', fn)
  /** The settings a borrower of the pooled connection sees, outside any bounded call. */
  const settings = () =>
    inAcme(async () => {
      const { rows } = await sql<{ statement: string; lock: string; idle: string; readOnly: string }>`select current_setting('statement_timeout') as statement,
        current_setting('lock_timeout') as lock, current_setting('idle_in_transaction_session_timeout') as idle,
        current_setting('transaction_read_only') as "readOnly"`.execute(tenantry.db())
      return rows[0]
    })

  it('runs queries in a transaction with its deadlines set, for that transaction only', async () => {
    const before = await settings()
    const inside = await inAcme(() =>
      tenantry.bounded(
        async (db) => {
          await db.insertInto('notes').values({ id: 1, title: 'one' }).execute()
          const { rows } = await sql<{ s: string; l: string }>`select current_setting('statement_timeout') as s, current_setting('lock_timeout') as l`.execute(db)
          return rows[0]
        },
        { statementTimeoutMs: 1500 },
      ),
    )
    expect(inside).toEqual({ s: '1500ms', l: '750ms' })
    expect(await settings()).toEqual(before)
    const rows = await inAcme(() => tenantry.bounded((db) => db.selectFrom('notes').select(['id', 'title']).execute(), { readOnly: true }))
    expect(rows).toEqual([{ id: '1', title: 'one' }])
    const refused = await rejection(inAcme(() => tenantry.bounded((db) => db.deleteFrom('notes').execute(), { readOnly: true })))
    expect((refused as { code?: string }).code).toBe('25006') // read_only_sql_transaction
    expect(await settings()).toEqual(before)
  })

  it('pg_sleep(5) under a 200 ms deadline rejects with STATEMENT_TIMEOUT, and nothing leaks to the pooled connection', async () => {
    const before = await settings()
    expect(before?.statement).toBe('0')
    const started = performance.now()
    const error = await rejection(inAcme(() => tenantry.bounded((db) => sql`select pg_sleep(5)`.execute(db), { statementTimeoutMs: 200 })))
    expect(isTenantryError(error, 'STATEMENT_TIMEOUT'), String(error)).toBe(true)
    expect(performance.now() - started).toBeLessThan(200 + 1_000)
    expect(await settings()).toEqual(before)
  })

  it('a lock held by another connection gives DATABASE_BUSY (lock_timeout), and nothing leaks', async () => {
    const before = await settings()
    const holder = new pg.Client({ connectionString: data.url })
    await holder.connect()
    try {
      await holder.query(`begin; lock table "${schema}".notes in access exclusive mode`)
      const started = performance.now()
      const error = await rejection(inAcme(() => tenantry.bounded((db) => db.insertInto('notes').values({ id: 2, title: 'two' }).execute())))
      expect(isTenantryError(error, 'DATABASE_BUSY'), String(error)).toBe(true)
      // lock_timeout is half the 2 s default deadline: a second.
      expect(performance.now() - started).toBeLessThan(1_000 + 1_000)
      await holder.query('rollback')
    } finally {
      await holder.end()
    }
    expect(await settings()).toEqual(before)
    await inAcme(() => tenantry.bounded((db) => db.insertInto('notes').values({ id: 2, title: 'two' }).execute()))
    expect(await inAcme(() => tenantry.db().selectFrom('notes').select('title').orderBy('id').execute())).toEqual([{ title: 'one' }, { title: 'two' }])
  })
})

describe('bounded settings', () => {
  it('a data source refuses a misspelt or invalid bounded setting', async () => {
    const dir = tempDir()
    try {
      for (const bounded of [{ statementTimeout: 1000 }, { statementTimeoutMs: 0 }, { statementTimeoutMs: 1.5 }]) {
        const error = await rejection(createTenantry({ home: join(dir.path, 'home'), dataSources: [{ id: 'local', engine: 'sqlite', bounded } as never] }))
        expect(isTenantryError(error, 'INVALID_CONFIG'), `${JSON.stringify(bounded)}: ${String(error)}`).toBe(true)
      }
    } finally {
      dir.cleanup()
    }
  })
})
