import { Kysely } from 'kysely'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { findPostgres } from '../../testing/services.js'
import { ScopedPostgresDialect } from './scoped-postgres-dialect.js'

const postgres = await findPostgres()

describe.skipIf('skip' in postgres)('ScopedPostgresDialect', () => {
  const pool = new pg.Pool({ connectionString: 'url' in postgres ? postgres.url : '', max: 1 })
  afterAll(() => pool.end())

  // Regression: when the search_path statement after BEGIN failed (a cancel or timeout landing
  // on it), Kysely did not roll back, because to Kysely the transaction had never begun, and
  // the connection went back to the pool inside an aborted transaction.
  it('leaves no open transaction on the connection when scoping the transaction fails', async () => {
    let failNext = true
    pool.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown
      ;(client as unknown as { query: (...args: unknown[]) => unknown }).query = (text: unknown, ...rest: unknown[]) => {
        if (failNext && typeof text === 'string' && text.includes("set_config('search_path'")) {
          failNext = false
          // A real server-side error, so Postgres itself marks the transaction aborted.
          return query(`${text} from no_such_table_for_this_test`, ...rest)
        }
        return query(text, ...rest)
      }
    })
    const db = new Kysely<any>({ dialect: new ScopedPostgresDialect({ pool, schema: 't_whatever', ownsPool: false }) })
    await expect(db.transaction().execute(async () => 1)).rejects.toThrow(/no_such_table_for_this_test/)

    const client = await pool.connect()
    try {
      expect((client as unknown as { getTransactionStatus(): string | null }).getTransactionStatus()).toBe('I')
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }])
    } finally {
      client.release()
    }
    // And the next transaction on the same (only) connection works.
    expect(await db.transaction().execute(async (trx) => (await trx.selectNoFrom((eb) => eb.lit(2).as('two')).executeTakeFirst())?.two)).toBe(2)
    await db.destroy()
  })
})
