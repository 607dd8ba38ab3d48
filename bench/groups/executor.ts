// `npm run bench -- --only executor`: how long a fresh SQL executor pool takes to answer its first
// statement (spawn, Node's start-up, better-sqlite3 and the watchdog thread, the memory limit set
// with prlimit, the nice value), against the physical limit: a bare Node process started the same
// way that answers over IPC. Quiet, and with every core kept busy by CPU hogs, where start-up at
// a low priority used to starve (README, "Priority").
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { SqliteExecutor } from 'tenantry'
import { fmt, median, type BenchContext } from '../harness.js'

/** Milliseconds from spawning a bare Node process to its first IPC message. */
async function bareNode(): Promise<number> {
  const started = performance.now()
  const child = spawn(process.execPath, ['-e', 'process.send("ready", () => process.exit(0))'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  await once(child, 'message')
  const ms = performance.now() - started
  await once(child, 'exit')
  return ms
}

/** Milliseconds from a new executor pool (one process) to the answer of its first statement. */
async function firstStatement(path: string): Promise<number> {
  const started = performance.now()
  const executor = new SqliteExecutor({ poolSize: 1 })
  try {
    const session = executor.openSession({ tenantId: 'tbench', path, readOnly: true })
    const answer = await session.execute({ sql: 'SELECT count(*) AS n FROM notes' })
    if (!answer.ok) throw new Error('executor: the first statement failed')
    return performance.now() - started
  } finally {
    await executor.close()
  }
}

/** CPU hogs, one per core, at the server's priority: what a busy machine looks like to start-up. */
function startHogs(): ChildProcess[] {
  return Array.from({ length: availableParallelism() }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }))
}

export async function executorGroup(ctx: BenchContext): Promise<void> {
  const rounds = ctx.size(7, 3)
  const dir = await ctx.workDir('executor')
  const path = join(dir, 'tenant.db')
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL); INSERT INTO notes VALUES (1, 'one')")
  db.close()

  const rows: Array<Array<string | number>> = []
  for (const condition of ['quiet', `${availableParallelism()} CPU hogs`] as const) {
    const hogs = condition === 'quiet' ? [] : startHogs()
    try {
      const bare: number[] = []
      const executor: number[] = []
      await bareNode() // warm the file cache for both
      await firstStatement(path)
      // Interleaved, so neither variant gets the quieter moments.
      for (let i = 0; i < rounds; i++) {
        bare.push(await bareNode())
        executor.push(await firstStatement(path))
      }
      const base = median(bare)
      const ratio = median(executor) / base
      rows.push([condition, 'bare Node, first IPC message', fmt(base), `${fmt(Math.min(...bare))}…${fmt(Math.max(...bare))}`, '1.00×'])
      rows.push([condition, 'SQL executor, first statement answered', fmt(median(executor)), `${fmt(Math.min(...executor))}…${fmt(Math.max(...executor))}`, `${ratio.toFixed(2)}×`])
      ctx.metric(`firstStatementVsBareNode.${condition === 'quiet' ? 'quiet' : 'busy'}`, ratio)
    } finally {
      for (const hog of hogs) hog.kill('SIGKILL')
      await Promise.all(hogs.map((hog) => (hog.exitCode === null && hog.signalCode === null ? once(hog, 'exit') : undefined)))
    }
  }
  ctx.table({
    kind: 'table',
    title: `A new SQL executor pool's first statement vs a bare Node start (median of ${rounds} interleaved rounds)`,
    headers: ['machine', 'variant', 'median ms', 'min…max ms', 'vs bare Node'],
    rows,
  })
  ctx.note('The executor includes its process start (better-sqlite3 loaded, watchdog thread), prlimit and the nice value set once ready, and one read.')
}
