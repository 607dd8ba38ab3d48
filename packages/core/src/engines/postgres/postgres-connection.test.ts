import { describe, expect, it } from 'vitest'
import { SILENT_LOGGER } from '../../logger.js'
import { findPostgres } from '../../testing/services.js'
import { PostgresConnection } from './postgres-connection.js'

const postgres = await findPostgres()

// A live move drops the old database WITH (FORCE): a pooled connection checked out at that moment
// (a transaction waiting on the app between two queries) was ended with no 'error' listener on
// it, which Node turns into an uncaught exception that ends the whole process.
describe.skipIf('skip' in postgres)(`Postgres connections the server ends${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
  it('logs a checked-out connection the server ended, instead of ending the process, and the pool serves again', async () => {
    if ('skip' in postgres) return
    const warnings: string[] = []
    const connection = new PostgresConnection({
      url: postgres.url,
      appRole: { name: 'unused', password: 'unused' },
      poolSize: 2,
      logger: { ...SILENT_LOGGER, warn: (_facts, message) => warnings.push(message) },
    })
    try {
      const held = await connection.admin.connect()
      const { pid } = (await held.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!
      await connection.withClient(undefined, (other) => other.query('select pg_terminate_backend($1)', [pid]))
      await expect.poll(() => warnings).toContain('A Postgres connection in use was ended by the server')
      await expect(held.query('select 1')).rejects.toThrow()
      held.release(true)
      expect((await connection.admin.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }])
    } finally {
      await connection.close()
    }
  })
})
