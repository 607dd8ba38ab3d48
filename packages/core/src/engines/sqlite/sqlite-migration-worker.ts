/**
 * A worker thread of `SqliteMigrationPool`: migrates one tenant file at a time, with its own
 * SQLite engine (same directory and settings as its process's) and its own copy of the
 * migration set, and answers with what the file holds afterwards. Logs go back to the
 * process's logger.
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { Logger } from '../../logger.js'
import { loadMigrationSource } from '../../migrations/migration-source.js'
import { migrateHandle, type HandleMigrationOutcome } from '../../migrations/migration-set.js'
import { SqliteEngine } from './sqlite-engine.js'
import { serializeError, type MigrationJob, type MigrationWorkerData, type WorkerMessage } from './sqlite-migration-protocol.js'

const port = parentPort!
const data = workerData as MigrationWorkerData
const send = (message: WorkerMessage) => port.postMessage(message)

const log =
  (level: keyof Logger) =>
  (facts: Record<string, unknown>, message: string): void => {
    const { err, ...rest } = facts
    send({ log: { level, facts: err === undefined ? rest : { ...rest, err: serializeError(err) }, message } })
  }
const logger: Logger = { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug') }

const engine = new SqliteEngine({ ...data.engine, logger })
if (data.manualCheckpoints) engine.manageCheckpoints()
// A set that fails to load (edited files) fails every job with the reason.
const loaded = loadMigrationSource(data.source).then(
  (set) => ({ set }),
  (error: unknown) => ({ error }),
)

port.on('message', async (job: MigrationJob) => {
  try {
    const migrations = await loaded
    if ('error' in migrations) throw migrations.error
    if (job.storageLimit !== undefined) engine.storage.setLimit(job.placement.tenantId, job.storageLimit)
    const handle = engine.open(job.placement, 'admin')
    let outcome: HandleMigrationOutcome
    try {
      outcome = await migrateHandle(handle, migrations.set, { tenantId: job.placement.tenantId, logger })
    } finally {
      // Closing checkpoints the log into the file and syncs it: here, off the process's event loop.
      await handle.close()
    }
    const { applied, executed, error } = outcome
    send({ id: job.id, outcome: { applied, executed, ...(error !== undefined ? { error: serializeError(error) } : {}) } })
  } catch (error) {
    send({ id: job.id, failed: serializeError(error) })
  }
})
