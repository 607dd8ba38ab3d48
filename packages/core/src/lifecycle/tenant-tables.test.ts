import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Kysely } from 'kysely'
import { SqliteEngine } from '../engines/sqlite/sqlite-engine.js'
import { tempDir } from '../testing/services.js'
import { listTenantTables, PAGE_ROWS, readPage } from './tenant-tables.js'

describe('paging a SQLite tenant’s tables', () => {
  let dir: ReturnType<typeof tempDir>
  let engine: SqliteEngine

  beforeEach(() => {
    dir = tempDir('tenantry-tenant-tables-')
    engine = new SqliteEngine({ directory: dir.path })
  })

  afterEach(async () => {
    await engine.close()
    dir.cleanup()
  })

  // Regression: better-sqlite3 answers synchronously, so a loop of awaited page reads never
  // reached the event loop (each await resolved as a microtask). A move of a 200,000-row SQLite
  // tenant held every other request of the process for 2.7 s while it copied and checksummed.
  it('lets the event loop run between pages', async () => {
    const placement = { tenantId: 'tpagingtestaaaaaaaaa', isolation: 'database' as const, locator: engine.locatorFor('tpagingtestaaaaaaaaa', 'database') }
    await engine.create(placement)
    const handle = engine.open(placement, 'admin')
    try {
      const db = handle.db as Kysely<any>
      await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'text').execute()
      const rows = PAGE_ROWS * 5
      for (let at = 0; at < rows; at += 500) {
        await db.insertInto('notes').values(Array.from({ length: 500 }, (_, i) => ({ id: at + i + 1, body: `note ${at + i}` }))).execute()
      }
      const [table] = await listTenantTables(handle, db)

      // A ticker on the event loop's check phase: it advances only when the loop gets a turn.
      let ticks = 0
      let paging = true
      const tick = () => {
        ticks++
        if (paging) setImmediate(tick)
      }
      setImmediate(tick)
      let read = 0
      let pages = 0
      let after: string | number | undefined
      do {
        const page = await readPage(handle, db, table!, after)
        read += page.rows.length
        pages++
        after = page.next
      } while (after !== undefined)
      paging = false

      expect(read).toBe(rows)
      expect(ticks).toBeGreaterThanOrEqual(pages - 1)
    } finally {
      await handle.close()
    }
  })
})
