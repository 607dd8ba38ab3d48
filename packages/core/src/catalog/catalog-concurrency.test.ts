import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, expect, it } from 'vitest'
import { tempDir } from '../testing/services.js'
import { Catalog } from './catalog.js'

const dir = tempDir()
afterAll(() => dir.cleanup())

it('a SQLite catalog transaction holds the write lock from its first statement', async () => {
  // Regression: two processes migrating one fresh SQLite catalog at once failed with SQLITE_BUSY ("database is locked").
  const url = join(dir.path, 'catalog.db')
  const catalog = Catalog.open({ url })
  const other = new Database(url, { timeout: 0 })
  try {
    await catalog.migrate()
    await catalog.db.transaction().execute(async () => {
      // No statement has run in the transaction yet: a deferred BEGIN would leave the file writable here.
      expect(() => other.exec("insert into audit_log (at, action, actor) values ('now', 'probe', 'test')")).toThrow(/database is locked/)
    })
    other.exec("insert into audit_log (at, action, actor) values ('now', 'probe', 'test')")
  } finally {
    other.close()
    await catalog.close()
  }
})
