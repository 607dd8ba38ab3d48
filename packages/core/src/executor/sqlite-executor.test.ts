import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { getPriority } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { parseDataSourceConfig, SqliteExecutor, type Logger, type SqliteExecutorOptions } from 'tenantry'
import { sqlNames } from './statement-guard.js'
import { executorProcesses, isProcessAlive, tempDir } from 'tenantry/testing'

const NEVER_ENDS = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c'

const dir = tempDir('tenantry-executor-')
afterAll(() => dir.cleanup())

let fileCount = 0
/** A tenant database as the SQLite engine makes them: WAL mode, one table with a row. */
function tenantFile(): string {
  const path = join(dir.path, `t${++fileCount}.db`)
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL); INSERT INTO notes VALUES (1, 'kept')")
  db.close()
  return path
}

function read(path: string, sql: string): unknown[] {
  const db = new Database(path, { readonly: true })
  try {
    return db.prepare(sql).all()
  } finally {
    db.close()
  }
}

describe('SqliteExecutor', () => {
  let executor: SqliteExecutor
  const start = (options: SqliteExecutorOptions = {}) => (executor = new SqliteExecutor({ poolSize: 2, statementTimeoutMs: 500, ...options }))
  beforeEach(() => void start())
  afterEach(async () => {
    await executor.close()
  })

  it('stops a statement that never ends at its deadline, off the event loop, and the tenant stays intact and writable', async () => {
    const path = tenantFile()
    const session = executor.openSession({ tenantId: 'ta', path, readOnly: false })
    // A write transaction is open when the process is killed: WAL must throw it away.
    await session.execute({ sql: 'BEGIN' })
    await session.execute({ sql: "INSERT INTO notes VALUES (2, 'never committed')" })
    const pidsBefore = executor.pids
    let ticks = 0
    const ticker = setInterval(() => ticks++, 20)
    const started = Date.now()
    await expect(session.execute({ sql: NEVER_ENDS })).rejects.toMatchObject({ code: 'STATEMENT_TIMEOUT' })
    clearInterval(ticker)
    expect(Date.now() - started).toBeLessThan(500 + 1000)
    expect(ticks).toBeGreaterThan(5) // the event loop kept turning while the statement ran
    await expect(session.execute({ sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'STATEMENT_TIMEOUT' })

    expect(read(path, 'PRAGMA quick_check')).toEqual([{ quick_check: 'ok' }])
    expect(read(path, 'SELECT title FROM notes')).toEqual([{ title: 'kept' }])
    const next = executor.openSession({ tenantId: 'ta', path, readOnly: false })
    expect(await next.execute({ sql: "INSERT INTO notes VALUES (3, 'after')" })).toMatchObject({ ok: true, rowsAffected: 1 })
    expect(read(path, 'SELECT title FROM notes ORDER BY id')).toEqual([{ title: 'kept' }, { title: 'after' }])
    // The killed process is gone and a fresh one took its place.
    await expect.poll(() => pidsBefore.filter(isProcessAlive).length, { timeout: 5000 }).toBe(1)
    await expect.poll(() => executor.pids.length, { timeout: 5000 }).toBe(2)
  })

  it('refuses a memory bomb with RESULT_TOO_LARGE and replaces the process, returning its memory', async () => {
    start({ memoryLimitMiB: 256 })
    const path = tenantFile()
    const session = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    expect(await session.execute({ sql: 'SELECT 1' })).toMatchObject({ ok: true })
    const before = executor.pids
    await expect(session.execute({ sql: 'SELECT randomblob(600 * 1024 * 1024)' })).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' })
    await expect.poll(() => before.filter(isProcessAlive).length, { timeout: 5000 }).toBe(1)
    const after = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    expect(await after.execute({ sql: 'SELECT count(*) AS n FROM notes' })).toMatchObject({ ok: true, rows: [[1n]] })
  })

  it("counts the memory limit on top of Node's own start-up memory, so any Node starts (Node 24 reserves ~1 GiB)", async () => {
    // 16 MiB is less than any Node holds once started (Node 20 ~50 MiB, Node 24 with the watchdog
    // thread ~1.1 GiB of reserved data segment): counted from zero, no process would ever start.
    start({ memoryLimitMiB: 16 })
    const path = tenantFile()
    const session = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    expect(await session.execute({ sql: 'SELECT count(*) AS n FROM notes' })).toMatchObject({ ok: true, rows: [[1n]] })
    // Each ready process has its limit: what it held once started, and 16 MiB more.
    await vi.waitFor(() => expect(executor.stats).toMatchObject({ starting: 0, idle: 2 }))
    for (const pid of executor.pids) {
      const limit = Number(/^Max data size\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1])
      const held = Number(/VmData:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024
      expect(limit - held).toBeGreaterThan(0)
      expect(limit - held).toBeLessThanOrEqual(16 * 1024 * 1024)
    }
    await expect(session.execute({ sql: 'SELECT randomblob(64 * 1024 * 1024)' })).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' })
  })

  it.runIf(process.platform === 'linux')(
    'refuses every statement, logged once, where no process can be confined (prlimit fails), unless told to run without the limit',
    async () => {
      // A prlimit that always fails, found first on PATH (as a missing one would be).
      const bin = join(dir.path, 'failing-prlimit')
      mkdirSync(bin, { recursive: true })
      writeFileSync(join(bin, 'prlimit'), '#!/bin/sh\necho "prlimit: not permitted" >&2\nexit 1\n', { mode: 0o755 })
      const logged: Array<{ level: string; message: string }> = []
      const record = (level: string) => (_facts: Record<string, unknown>, message: string) => void logged.push({ level, message })
      const logger: Logger = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug') }
      const path = tenantFile()
      const savedPath = process.env.PATH
      process.env.PATH = `${bin}:${savedPath ?? ''}`
      try {
        await executor.close()
        start({ logger })
        const session = executor.openSession({ tenantId: 'ta', path, readOnly: true })
        await expect(session.execute({ sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'EXECUTOR_UNAVAILABLE' })
        await expect(session.execute({ sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'EXECUTOR_UNAVAILABLE' })
        await expect.poll(() => executor.stats, { timeout: 5000 }).toMatchObject({ processes: 0, starting: 0 })
        expect(logged.filter((l) => l.level === 'error')).toEqual([{ level: 'error', message: expect.stringContaining('requireMemoryLimit') }])
        await new Promise((resolve) => setTimeout(resolve, 300))
        expect(executor.stats.processes).toBe(0) // none started again

        await executor.close()
        logged.length = 0
        start({ logger, requireMemoryLimit: false })
        const unconfined = executor.openSession({ tenantId: 'ta', path, readOnly: true })
        expect(await unconfined.execute({ sql: 'SELECT count(*) AS n FROM notes' })).toMatchObject({ ok: true, rows: [[1n]] })
        expect(logged.some((l) => l.level === 'warn' && l.message.includes("V8's heap limit only"))).toBe(true)
      } finally {
        process.env.PATH = savedPath
      }
    },
  )

  it('caps rows, bytes and values with RESULT_TOO_LARGE, and a capped write writes nothing', async () => {
    start({ maxRows: 100, maxResultBytes: 64 * 1024, maxValueBytes: 16 * 1024 })
    const path = tenantFile()
    const session = () => executor.openSession({ tenantId: 'ta', path, readOnly: false })
    const series = (n: number, what: string) => `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n}) SELECT ${what} FROM c`
    await expect(session().execute({ sql: series(101, 'x') })).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE', message: expect.stringContaining('100 rows') })
    expect(await session().execute({ sql: series(100, 'x') })).toMatchObject({ ok: true })
    await expect(session().execute({ sql: series(50, 'randomblob(4096)') })).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' })
    await expect(session().execute({ sql: 'SELECT zeroblob(20000)' })).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' })
    await expect(
      session().execute({ sql: "INSERT INTO notes (title) SELECT 'many' FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) SELECT x FROM c) RETURNING id" }),
    ).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' })
    expect(read(path, 'SELECT count(*) AS n FROM notes')).toEqual([{ n: 1 }])
  })

  it('rolls a transaction back at its deadline from BEGIN and releases the lock; later statements get TRANSACTION_TIMEOUT', async () => {
    start({ transactionTimeoutMs: 400, busyTimeoutMs: 50, maxStatementsPerTenant: 2 })
    const path = tenantFile()
    const holder = executor.openSession({ tenantId: 'ta', path, readOnly: false })
    await holder.execute({ sql: 'BEGIN IMMEDIATE' })
    await holder.execute({ sql: "INSERT INTO notes VALUES (2, 'held')" })
    const other = executor.openSession({ tenantId: 'ta', path, readOnly: false })
    // While the lock is held, another writer is answered at once, not after a long wait.
    await expect(other.execute({ sql: "INSERT INTO notes VALUES (3, 'other')" })).rejects.toMatchObject({ code: 'DATABASE_BUSY' })
    await new Promise((resolve) => setTimeout(resolve, 700))
    await expect(holder.execute({ sql: 'COMMIT' })).rejects.toMatchObject({ code: 'TRANSACTION_TIMEOUT' })
    const writer = executor.openSession({ tenantId: 'ta', path, readOnly: false })
    expect(await writer.execute({ sql: "INSERT INTO notes VALUES (3, 'other')" })).toMatchObject({ ok: true })
    expect(read(path, 'SELECT title FROM notes ORDER BY id')).toEqual([{ title: 'kept' }, { title: 'other' }])
  })

  it('holds each tenant to its share of the pool, so another tenant is still served', async () => {
    await executor.close()
    start({ maxStatementsPerTenant: 1, statementTimeoutMs: 1500, queueTimeoutMs: 300 })
    const a = tenantFile()
    const b = tenantFile()
    const runaway = executor.openSession({ tenantId: 'ta', path: a, readOnly: true }).execute({ sql: NEVER_ENDS })
    const outcome = runaway.catch((error: unknown) => error)
    await new Promise((resolve) => setTimeout(resolve, 100))
    // The tenant's next statement waits for its share, in the tenant's own queue, then gives up.
    const started = Date.now()
    await expect(executor.openSession({ tenantId: 'ta', path: a, readOnly: true }).execute({ sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'CONCURRENCY_LIMITED' })
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)
    expect(await executor.openSession({ tenantId: 'tb', path: b, readOnly: true }).execute({ sql: 'SELECT title FROM notes' })).toMatchObject({ ok: true, rows: [['kept']] })
    expect(await outcome).toMatchObject({ code: 'STATEMENT_TIMEOUT' })
  })

  it('runs a tenant\'s statements past its share in turn, in order, once its running ones end', async () => {
    await executor.close()
    start({ maxStatementsPerTenant: 1, statementTimeoutMs: 300, queueTimeoutMs: 5000 })
    const a = tenantFile()
    const order: string[] = []
    const runaway = executor.openSession({ tenantId: 'ta', path: a, readOnly: true }).execute({ sql: NEVER_ENDS }).catch((error: unknown) => error)
    await new Promise((resolve) => setTimeout(resolve, 50))
    const queued = ['first', 'second', 'third'].map((name) =>
      executor
        .openSession({ tenantId: 'ta', path: a, readOnly: true })
        .execute({ sql: `SELECT '${name}'` })
        .then((result) => (order.push(name), result)),
    )
    expect(await runaway).toMatchObject({ code: 'STATEMENT_TIMEOUT' })
    const results = await Promise.all(queued)
    expect(results.map((r) => r.ok && r.rows[0]![0])).toEqual(['first', 'second', 'third'])
    expect(order).toEqual(['first', 'second', 'third'])
  })

  it('runs the statement guard in the executor process', async () => {
    const session = executor.openSession({ tenantId: 'ta', path: tenantFile(), readOnly: false })
    expect(await session.execute({ sql: "ATTACH 'x.db' AS x" })).toMatchObject({ ok: false, code: 'SQL_FORBIDDEN' })
    expect(await session.execute({ sql: 'CREATE TABLE t (x)' })).toMatchObject({ ok: false, code: 'SQL_FORBIDDEN' })
    expect(await session.execute({ sql: 'SELECT * FROM nowhere' })).toMatchObject({ ok: false, code: 'SQLITE_ERROR' })
    // Positional values bind by index whatever the form; a named value wins over a positional one.
    expect(await session.execute({ sql: 'SELECT :a AS a, ? AS b', args: [1n, 2n], namedArgs: { a: 'x' } })).toMatchObject({ ok: true, rows: [['x', 2n]] })
    expect(await session.execute({ sql: 'SELECT :a AS a, ? AS b', args: [2n], namedArgs: { a: 'x' } })).toMatchObject({ ok: false, code: 'ARGS_INVALID' })
    expect(await session.execute({ sql: 'SELECT ?2 AS a, ?1 AS b', args: [1n, 2n] })).toMatchObject({ ok: true, rows: [[2n, 1n]] })
  })

  it('runs a sequence only once every statement of it passed the guard, and describes without running', async () => {
    const path = tenantFile()
    const session = executor.openSession({ tenantId: 'ta', path, readOnly: false })
    expect(await session.sequence("INSERT INTO notes VALUES (2, 'a;b'); DROP TABLE notes")).toMatchObject({ ok: false, code: 'SQL_FORBIDDEN' })
    expect(read(path, 'SELECT count(*) AS n FROM notes')).toEqual([{ n: 1 }])
    expect(await session.sequence("INSERT INTO notes VALUES (2, 'a;b'); UPDATE notes SET title = 'c' WHERE id = 1;")).toEqual({ ok: true })
    expect(read(path, 'SELECT title FROM notes ORDER BY id')).toEqual([{ title: 'c' }, { title: 'a;b' }])
    expect(await session.describe('DELETE FROM notes WHERE id = :id')).toEqual({ ok: true, params: [':id'], columns: [], isExplain: false, isReadonly: false })
    expect(read(path, 'SELECT count(*) AS n FROM notes')).toEqual([{ n: 2 }])
  })

  it('lets a read-only session open read transactions, BEGIN IMMEDIATE included, and still refuses writes in them', async () => {
    const path = tenantFile()
    const session = executor.openSession({ tenantId: 'ta', path, readOnly: true })
    for (const begin of ['BEGIN', 'BEGIN DEFERRED TRANSACTION', 'BEGIN IMMEDIATE', 'BEGIN EXCLUSIVE', 'BEGIN TRANSACTION READONLY']) {
      expect(await session.execute({ sql: begin }), begin).toMatchObject({ ok: true })
      expect(session.inTransaction).toBe(true)
      expect(await session.execute({ sql: "UPDATE notes SET title = 'x'" })).toMatchObject({ ok: false, code: 'READ_ONLY' })
      expect(await session.execute({ sql: 'SAVEPOINT s' })).toMatchObject({ ok: true })
      expect(await session.execute({ sql: 'RELEASE s' })).toMatchObject({ ok: true })
      expect(await session.execute({ sql: 'COMMIT' })).toMatchObject({ ok: true })
      expect(session.inTransaction).toBe(false)
    }
    // A read-write session's libSQL read transaction cannot write either, by SQLite (query_only),
    // and the connection writes again once it is over.
    const writer = executor.openSession({ tenantId: 'ta', path, readOnly: false })
    expect(await writer.execute({ sql: 'BEGIN TRANSACTION READONLY' })).toMatchObject({ ok: true })
    expect(await writer.execute({ sql: "UPDATE notes SET title = 'x'" })).toMatchObject({ ok: false, code: 'SQLITE_READONLY' })
    expect(await writer.execute({ sql: 'ROLLBACK' })).toMatchObject({ ok: true })
    expect(await writer.sequence("BEGIN TRANSACTION READONLY; UPDATE notes SET title = 'y'")).toMatchObject({ ok: false, code: 'SQLITE_READONLY' })
    expect(await writer.execute({ sql: 'ROLLBACK' })).toMatchObject({ ok: true })
    expect(await writer.execute({ sql: "UPDATE notes SET title = 'z'" })).toMatchObject({ ok: true, rowsAffected: 1 })
    expect(read(path, 'SELECT title FROM notes')).toEqual([{ title: 'z' }])
    await session.close()
    await writer.close()
  })

  it('runs executor processes below the server\'s priority, so busy tenants never starve the event loop', async () => {
    const session = executor.openSession({ tenantId: 'ta', path: tenantFile(), readOnly: true })
    await session.execute({ sql: 'SELECT 1' })
    await vi.waitFor(() => expect(executor.stats).toMatchObject({ starting: 0, idle: 2 }))
    expect(executor.pids.map((pid) => getPriority(pid))).toEqual([10, 10])
    await executor.close()
    start({ niceness: 0 })
    await executor.openSession({ tenantId: 'ta', path: tenantFile(), readOnly: true }).execute({ sql: 'SELECT 1' })
    expect(executor.pids.map((pid) => getPriority(pid))).toEqual([getPriority(), getPriority()])
    expect(() => new SqliteExecutor({ niceness: 20 })).toThrowError(expect.objectContaining({ code: 'INVALID_OPTION' }))
  })

  // Regression: started at nice 10, Node's start-up got a sliver of a busy machine's CPU (10 s and
  // more with two busy cores), and the first statements were refused with DATABASE_BUSY.
  it('starts executor processes at the server\'s priority and lowers it once they are ready, before any statement', async () => {
    const session = executor.openSession({ tenantId: 'ta', path: tenantFile(), readOnly: true })
    const statement = session.execute({ sql: 'SELECT 1' })
    // A process appears in `pids` when it is spawned; it needs far longer than this poll to be ready.
    await vi.waitFor(() => expect(executor.pids.length).toBeGreaterThan(0), { interval: 1 })
    expect(executor.stats.starting).toBeGreaterThan(0)
    expect(getPriority(executor.pids[0]!)).toBe(getPriority())
    expect(await statement).toMatchObject({ ok: true })
    await vi.waitFor(() => expect(executor.stats).toMatchObject({ starting: 0, idle: 2 }))
    expect(executor.pids.map((pid) => getPriority(pid))).toEqual([10, 10])
  })

  it('close stops every executor process, one killed mid-statement included: no orphans', async () => {
    const session = executor.openSession({ tenantId: 'ta', path: tenantFile(), readOnly: true })
    await session.execute({ sql: 'SELECT 1' })
    const running = session.execute({ sql: NEVER_ENDS }).catch((error: unknown) => error)
    const pids = executor.pids
    expect(pids).toHaveLength(2)
    expect(executorProcesses().sort()).toEqual([...pids].sort())
    await executor.close()
    expect(await running).toMatchObject({ code: 'CLOSED' })
    expect(pids.filter(isProcessAlive)).toEqual([])
    expect(executorProcesses()).toEqual([])
  })
})

// Regression: an executor process inside a never-ending statement outlived a parent killed
// with -9 (its 'disconnect' handler needs the thread SQLite holds), burning a core forever.
it('an executor process mid-statement ends when its parent is killed with -9', async () => {
  const parent = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/doomed-parent.ts', import.meta.url)), tenantFile()], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  parent.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  for (let i = 0; i < 300 && !output.includes('\n'); i++) await new Promise((r) => setTimeout(r, 100))
  const child = Number(output.trim())
  expect(child).toBeGreaterThan(0)
  await new Promise((r) => setTimeout(r, 300)) // the statement is running
  expect(isProcessAlive(child)).toBe(true)
  parent.kill('SIGKILL')
  await once(parent, 'exit')
  for (let i = 0; i < 50 && isProcessAlive(child); i++) await new Promise((r) => setTimeout(r, 100))
  const survived = isProcessAlive(child)
  if (survived) process.kill(child, 'SIGKILL')
  expect(survived).toBe(false)
}, 60_000)

describe('rawSql settings of a SQLite data source', () => {
  it('are checked with the data source: a wrong value or an unknown field is INVALID_CONFIG naming it', () => {
    const source = (rawSql: unknown) => ({ id: 'local', engine: 'sqlite', directory: dir.path, rawSql })
    expect(parseDataSourceConfig(source({ statementTimeoutMs: 2000, poolSize: 8 }))).toMatchObject({ rawSql: { statementTimeoutMs: 2000, poolSize: 8 } })
    expect(() => parseDataSourceConfig(source({ statementTimeoutMs: 0 }))).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('rawSql.statementTimeoutMs') }))
    expect(() => parseDataSourceConfig(source({ statementTimeout: 2000 }))).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('statementTimeout') }))
  })
})

describe('statement guard: names', () => {
  it('reads every identifier and string literal, quoted or not, and skips comments', () => {
    expect(sqlNames(`SELECT "a""b", [c d], \`e\`, 'it''s' FROM t -- pragma_x\n/* dbstat */ WHERE x = 1e5`)).toEqual([
      'SELECT',
      'a"b',
      'c d',
      'e',
      "it's",
      'FROM',
      't',
      'WHERE',
      'x',
      'e5',
    ])
  })
})
