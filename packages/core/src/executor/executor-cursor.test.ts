/**
 * Cursors of the executor (`SqliteRawSession.cursor`): a result of any size read a batch at a
 * time, with the executor process's memory bounded, its deadline and the tenant's share
 * holding, and `close` (a client that went away) freeing the process at once.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { SqliteExecutor, type RawCursor, type RawStatementFailure, type SqliteExecutorOptions } from 'tenantry'
import { tempDir } from 'tenantry/testing'

const dir = tempDir('tenantry-cursor-')
afterAll(() => dir.cleanup())

const MIB = 1024 * 1024
/** Rows of the big table, and the text of each: about 100 MB of values, ten times the executor's result cap. */
const BIG_ROWS = 200_000
const TEXT_BYTES = 500

let fileCount = 0
/** A tenant database as the SQLite engine makes them (WAL), with `notes` and, if asked, `big`. */
function tenantFile(big = false): string {
  const path = join(dir.path, `t${++fileCount}.db`)
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL); INSERT INTO notes VALUES (1, 'kept')")
  if (big) {
    db.exec('CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT NOT NULL)')
    db.exec(
      `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${BIG_ROWS})
       INSERT INTO big SELECT x, substr(printf('%d-', x) || hex(randomblob(${TEXT_BYTES})), 1, ${TEXT_BYTES}) FROM c`,
    )
  }
  db.close()
  return path
}

/** Resident memory of a process, from the kernel. */
function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB$/m)
  if (!line) throw new Error(`no VmRSS for ${pid}`)
  return Number(line[1]) * 1024
}

function opened(cursor: RawCursor | RawStatementFailure): RawCursor {
  if (!cursor.ok) throw new Error(`expected a cursor, got ${cursor.code}: ${cursor.message}`)
  return cursor
}

describe.skipIf(process.platform !== 'linux')('executor cursors', () => {
  let executor: SqliteExecutor
  const start = (options: SqliteExecutorOptions = {}) => (executor = new SqliteExecutor({ poolSize: 2, ...options }))
  afterEach(async () => {
    await executor?.close()
  })

  it('reads every row of a result ten times the caps, with the executor process growing by less than 64 MB (buffered: about 280 MB)', async () => {
    start({ statementTimeoutMs: 60_000 })
    const path = tenantFile(true)
    const session = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    // Buffered, the same result is refused: it passes the row and the byte caps.
    await expect(session.execute({ sql: 'SELECT id, body FROM big ORDER BY id' })).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' })
    expect(await session.execute({ sql: 'SELECT 1' })).toMatchObject({ ok: true }) // warm: both processes started, pages cached
    const baseline = Math.max(...executor.pids.map(rssBytes))

    const cursor = opened(await session.cursor({ sql: 'SELECT id, body FROM big WHERE id > ? ORDER BY id', args: [0n] }))
    expect(cursor.columns.map((c) => c.name)).toEqual(['id', 'body'])
    let rows = 0
    let outOfOrder = 0
    let bytes = 0
    let peak = baseline
    let batches = 0
    for (;;) {
      const batch = await cursor.next()
      if (!batch.ok) throw new Error(batch.message)
      for (const [id, body] of batch.rows) {
        if (id !== BigInt(rows + 1)) outOfOrder++
        bytes += (body as string).length
        rows++
      }
      if (++batches % 20 === 0) {
        peak = Math.max(peak, ...executor.pids.map(rssBytes))
      }
      if (batch.done) break
    }
    expect(rows).toBe(BIG_ROWS)
    expect(outOfOrder).toBe(0)
    expect(bytes).toBe(BIG_ROWS * TEXT_BYTES)
    expect(peak - baseline).toBeLessThan(64 * MIB)
    // Done: the process and the share are free, and the session goes on.
    await expect.poll(() => executor.stats.idle, { timeout: 10_000 }).toBe(2)
    expect(await session.execute({ sql: 'SELECT count(*) FROM big' })).toMatchObject({ ok: true, rows: [[BigInt(BIG_ROWS)]] })
    await session.close()
  })

  it('a cursor nobody reads holds its process until the deadline, then ends with STATEMENT_TIMEOUT and lets the tenant run again', async () => {
    start({ statementTimeoutMs: 2000, maxStatementsPerTenant: 1, queueTimeoutMs: 100 })
    const path = tenantFile()
    const session = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    const cursor = opened(await session.cursor({ sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c' }))
    // Its share is held: the tenant's next statement waits, then is refused.
    const other = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    await expect(other.execute({ sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'CONCURRENCY_LIMITED' })
    await expect.poll(() => cursor.signal.aborted, { timeout: 10_000 }).toBe(true)
    expect(cursor.signal.reason).toMatchObject({ code: 'STATEMENT_TIMEOUT' })
    await expect(cursor.next()).rejects.toMatchObject({ code: 'STATEMENT_TIMEOUT' })
    await expect(session.execute({ sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'STATEMENT_TIMEOUT' })
    await expect.poll(() => executor.stats.idle, { timeout: 10_000 }).toBe(2)
    expect(await other.execute({ sql: 'SELECT title FROM notes' })).toMatchObject({ ok: true, rows: [['kept']] })
  })

  it('close part-way frees the process and the share at once; the session goes on', async () => {
    start({ statementTimeoutMs: 30_000, maxStatementsPerTenant: 1, queueTimeoutMs: 100 })
    const path = tenantFile()
    const session = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    const cursor = opened(await session.cursor({ sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c' }))
    const first = await cursor.next()
    expect(first).toMatchObject({ ok: true, done: false })
    await expect(session.execute({ sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await cursor.close()
    await expect.poll(() => executor.stats.idle, { timeout: 10_000 }).toBe(2)
    expect(cursor.signal.aborted).toBe(false)
    expect(await session.execute({ sql: 'SELECT title FROM notes' })).toMatchObject({ ok: true, rows: [['kept']] })
    const other = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    expect(await other.execute({ sql: 'SELECT 1' })).toMatchObject({ ok: true })
  })

  it('closing the session mid-cursor inside a transaction rolls it back and frees the process', async () => {
    start({ statementTimeoutMs: 30_000, maxStatementsPerTenant: 1, queueTimeoutMs: 100 })
    const path = tenantFile()
    const session = executor.openSession({ tenantId: 'ta', path, readOnly: false })
    await session.execute({ sql: 'BEGIN' })
    await session.execute({ sql: "INSERT INTO notes VALUES (2, 'uncommitted')" })
    const cursor = opened(await session.cursor({ sql: 'SELECT title FROM notes ORDER BY id' }))
    expect(await cursor.next()).toEqual({ ok: true, rows: [['kept'], ['uncommitted']], done: true })
    // Inside the transaction, a cursor that ended keeps the process pinned: the transaction goes on.
    const more = opened(await session.cursor({ sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c' }))
    expect(await more.next()).toMatchObject({ ok: true, done: false })
    await session.close()
    expect(more.signal.reason).toMatchObject({ code: 'CLOSED' })
    await expect.poll(() => executor.stats.idle, { timeout: 10_000 }).toBe(2)
    const after = executor.openSession({ tenantId: 'ta', path, readOnly: false })
    expect(await after.execute({ sql: 'SELECT title FROM notes ORDER BY id' })).toMatchObject({ ok: true, rows: [['kept']] })
    expect(await after.execute({ sql: "INSERT INTO notes VALUES (3, 'writable')" })).toMatchObject({ ok: true, rowsAffected: 1 })
  })

  it('applies the statement guard and read-only rules; a statement that writes runs whole, within the caps', async () => {
    start({ statementTimeoutMs: 30_000, maxRows: 2 })
    const path = tenantFile()
    const reader = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    expect(await reader.cursor({ sql: 'DROP TABLE notes' })).toMatchObject({ ok: false, code: 'SQL_FORBIDDEN' })
    expect(await reader.cursor({ sql: "ATTACH 'x.db' AS x" })).toMatchObject({ ok: false, code: 'SQL_FORBIDDEN' })
    expect(await reader.cursor({ sql: "INSERT INTO notes VALUES (5, 'no') RETURNING id" })).toMatchObject({ ok: false, code: 'READ_ONLY' })

    const writer = executor.openSession({ tenantId: 'ta', path, readOnly: false })
    const inserted = opened(await writer.cursor({ sql: "INSERT INTO notes VALUES (2, 'a'), (3, 'b') RETURNING id" }))
    expect(await inserted.next()).toEqual({ ok: true, rows: [[2n], [3n]], done: true })
    expect(inserted.rowsAffected).toBe(2)
    // Past the row cap, a write is refused and undone, as with `execute`.
    await expect(writer.cursor({ sql: "INSERT INTO notes VALUES (4, 'c'), (5, 'd'), (6, 'e') RETURNING id" })).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' })
    // A read is not held to it.
    const all = opened(await writer.cursor({ sql: 'SELECT id FROM notes ORDER BY id' }))
    expect(await all.next()).toEqual({ ok: true, rows: [[1n], [2n], [3n]], done: true })
  })

  it('ends a step with the SQL error met part-way, and a value past the value cap with RESULT_TOO_LARGE', async () => {
    start({ statementTimeoutMs: 30_000, maxValueBytes: 1000 })
    const path = tenantFile()
    const session = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    const overflow = opened(
      await session.cursor({ sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) SELECT CASE WHEN x = 2000 THEN abs(-9223372036854775807 - 1) ELSE x END FROM c' }),
    )
    let read = 0
    let outcome: Awaited<ReturnType<RawCursor['next']>>
    for (;;) {
      outcome = await overflow.next()
      if (!outcome.ok || outcome.done) break
      read += outcome.rows.length
    }
    expect(outcome).toMatchObject({ ok: false, code: 'SQLITE_ERROR', message: expect.stringContaining('integer overflow') })
    expect(read).toBeGreaterThan(0)
    expect(read).toBeLessThan(2000)
    expect(await session.execute({ sql: 'SELECT 1' })).toMatchObject({ ok: true })

    const big = opened(await session.cursor({ sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) SELECT CASE WHEN x = 2000 THEN zeroblob(5000) ELSE x END FROM c' }))
    await expect(
      (async () => {
        for (;;) {
          const batch = await big.next()
          if (!batch.ok || batch.done) return batch
        }
      })(),
    ).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' })
    await expect.poll(() => executor.stats.idle, { timeout: 10_000 }).toBe(2)
  })
})
