import Database from 'better-sqlite3'
import { Kysely, sql } from 'kysely'
import { afterEach, describe, expect, it } from 'vitest'
import { StatementCache, TransactionalSqliteDialect } from './sqlite-dialect.js'

describe('TransactionalSqliteDialect statement cache', () => {
  const open: Array<Kysely<any>> = []
  afterEach(async () => {
    await Promise.all(open.splice(0).map((db) => db.destroy()))
  })

  /** A Kysely on an in-memory database that counts how often a statement is prepared. */
  function counted(statements?: StatementCache) {
    const database = new Database(':memory:')
    const prepares: string[] = []
    const prepare = database.prepare.bind(database)
    database.prepare = ((source: string) => {
      prepares.push(source)
      return prepare(source)
    }) as typeof database.prepare
    const db = new Kysely<any>({ dialect: new TransactionalSqliteDialect({ database, ...(statements ? { statements } : {}) }) })
    open.push(db)
    return { db, prepares }
  }

  it('prepares the same SQL text once, whatever the parameters', async () => {
    const { db, prepares } = counted()
    await sql`create table t (id integer primary key, v text)`.execute(db)
    for (let i = 1; i <= 5; i++) await db.insertInto('t').values({ id: i, v: `v${i}` }).execute()
    for (let i = 1; i <= 5; i++) expect(await db.selectFrom('t').select('v').where('id', '=', i).executeTakeFirst()).toEqual({ v: `v${i}` })
    expect(prepares.filter((s) => s.startsWith('insert'))).toHaveLength(1)
    expect(prepares.filter((s) => s.startsWith('select'))).toHaveLength(1)
  })

  it('keeps at most `max` statements, dropping the least recently used', async () => {
    const statements = new StatementCache(undefined, 2)
    const { db, prepares } = counted(statements)
    const q = (n: number) => sql.raw(`select ${n} as n`).execute(db)
    await q(1)
    await q(2)
    await q(1) // 1 is now the most recent
    await q(3) // drops 2
    expect(statements.size).toBe(2)
    await q(1)
    await q(2)
    expect(prepares).toEqual(['select 1 as n', 'select 2 as n', 'select 3 as n', 'select 2 as n'])
  })

  it('commits and rolls back transactions, savepoints included, on the cached connection', async () => {
    const { db } = counted()
    await sql`create table t (id integer primary key)`.execute(db)
    const trx = await db.startTransaction().execute()
    await trx.insertInto('t').values({ id: 1 }).execute()
    const a = await trx.savepoint('a').execute()
    await a.insertInto('t').values({ id: 2 }).execute()
    const b = await a.rollbackToSavepoint('a').execute()
    const c = await b.savepoint('c').execute()
    await c.releaseSavepoint('c').execute()
    await trx.commit().execute()
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('t').values({ id: 3 }).execute()
        throw new Error('no')
      }),
    ).rejects.toThrow('no')
    expect(await db.selectFrom('t').select('id').execute()).toEqual([{ id: 1 }])
  })
})
