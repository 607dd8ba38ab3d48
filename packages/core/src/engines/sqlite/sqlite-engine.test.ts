import Database from 'better-sqlite3'
import { it, vi } from 'vitest'
import { migrateHandle } from '../../migrations/migration-set.js'
import { runEngineConformance } from '../../testing/engine-conformance.js'
import { FIXTURE_MIGRATIONS } from '../../testing/fixture-migrations.js'
import { tempDir } from '../../testing/services.js'
import { SqliteEngine } from './sqlite-engine.js'

const dir = tempDir('tenantry-sqlite-engine-')

runEngineConformance({
  engine: new SqliteEngine({ directory: dir.path }),
  isolation: 'database',
  teardown: async () => dir.cleanup(),
  additionalTests({ createTenant, withHandle, migrationsAhead }) {
    it("migrates a database that is behind without listing its tables (Kysely's Migrator lists them twice per call)", async ({ expect }) => {
      const placement = await createTenant()
      const ahead = migrationsAhead()
      const prepare = vi.spyOn(Database.prototype, 'prepare')
      try {
        const outcome = await withHandle(placement, 'admin', (_db, handle) => migrateHandle(handle, ahead))
        expect(outcome).toMatchObject({ applied: ['0003_note_pins'], executed: [...FIXTURE_MIGRATIONS, '0003_note_pins'].map((name) => ({ name })) })
        const statements = prepare.mock.calls.map(([source]) => source)
        expect(statements.filter((s) => /sqlite_master|pragma_table_info/i.test(s))).toEqual([])
        // The lock row's update takes the write lock before the read of what is applied.
        expect(statements.findIndex((s) => s.startsWith('update "tenantry_migration_lock"'))).toBeLessThan(
          statements.findIndex((s) => s.startsWith('select "name", "timestamp" from "tenantry_migration"')),
        )
      } finally {
        prepare.mockRestore()
      }
      await withHandle(placement, 'app', async (db) => expect(await db.selectFrom('note_pins' as never).selectAll().execute()).toEqual([]))
    })
  },
})
