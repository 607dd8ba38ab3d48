import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

/** SQLite checkpoint modes. See https://sqlite.org/pragma.html#pragma_wal_checkpoint */
export type CheckpointMode = 'PASSIVE' | 'FULL' | 'RESTART' | 'TRUNCATE'

export interface CheckpointOutcome {
  /** Readers or writers kept the checkpoint from finishing (a PASSIVE one never waits). */
  busy: boolean
  /** Frames in the write-ahead log, and how many of them are now in the database file. */
  log: number
  checkpointed: number
}

/** better-sqlite3 as this package resolves it: the worker loads the same build. */
const BETTER_SQLITE3 = createRequire(import.meta.url).resolve('better-sqlite3')

/**
 * The worker: its own connection to the file, one checkpoint, the outcome back. Plain
 * JavaScript evaluated as CommonJS, so it runs the same from source (tests) and from dist.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.module)
const db = new Database(workerData.path, { fileMustExist: true, timeout: workerData.busyTimeoutMs })
try {
  const row = db.pragma('wal_checkpoint(' + workerData.mode + ')')[0]
  parentPort.postMessage({ busy: row.busy === 1, log: row.log, checkpointed: row.checkpointed })
} finally {
  db.close()
}
`

const MODES: readonly CheckpointMode[] = ['PASSIVE', 'FULL', 'RESTART', 'TRUNCATE']

/**
 * Checkpoints the SQLite database at `path` in a worker thread. better-sqlite3 is synchronous:
 * a checkpoint on the event loop's thread (including the one SQLite runs when the last
 * connection closes) holds every other request of the process for as long as it copies the
 * write-ahead log into the database, seconds for a log that grew behind a long read. SQLite's
 * locks are per file, so the main thread's connections keep reading meanwhile.
 */
export function checkpointOffThread(path: string, mode: CheckpointMode, options: { busyTimeoutMs?: number } = {}): Promise<CheckpointOutcome> {
  if (!MODES.includes(mode)) return Promise.reject(new Error(`Unknown checkpoint mode ${String(mode)}`))
  return new Promise((resolve, reject) => {
    let outcome: CheckpointOutcome | undefined
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module: BETTER_SQLITE3, path, mode, busyTimeoutMs: options.busyTimeoutMs ?? 5000 } })
    worker.once('message', (message: CheckpointOutcome) => (outcome = message))
    worker.once('error', reject)
    worker.once('exit', (code) => {
      if (outcome) resolve(outcome)
      else reject(new Error(`The checkpoint worker for ${path} exited with code ${code} and no outcome`))
    })
  })
}
