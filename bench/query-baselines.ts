import Database from 'better-sqlite3'
import { Kysely, SqliteDialect } from 'kysely'
import type { CvBuilderDatabase } from '../examples/cv-builder/schema.js'
import type { ThroughputVariant } from './harness.js'

export const POINT_READ_SQL = 'select * from jobs where id = ?'

/** The same point read, with no Tenantry in the way: plain Kysely and a raw prepared statement. */
export function openBaselines(file: string, ids: readonly number[]) {
  const database = new Database(file, { fileMustExist: true })
  const kysely = new Kysely<CvBuilderDatabase>({ dialect: new SqliteDialect({ database: new Database(file, { fileMustExist: true }) }) })
  const statement = database.prepare(POINT_READ_SQL)
  let n = 0
  const nextId = () => ids[n++ % ids.length]!

  const raw: ThroughputVariant = {
    name: 'raw better-sqlite3 statement',
    run(ops) {
      for (let i = 0; i < ops; i++) if (!statement.get(nextId())) throw new Error('row missing')
    },
  }
  const plain: ThroughputVariant = {
    name: 'plain Kysely',
    async run(ops) {
      for (let i = 0; i < ops; i++) {
        const row = await kysely.selectFrom('jobs').selectAll().where('id', '=', nextId()).executeTakeFirst()
        if (!row) throw new Error('row missing')
      }
    },
  }
  return {
    raw,
    plain,
    async close() {
      await kysely.destroy()
      database.close()
    },
  }
}
