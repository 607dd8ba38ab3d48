import { existsSync } from 'node:fs'
import { chmod, rm } from 'node:fs/promises'
import Database from 'better-sqlite3'
import { TenantryError } from '../../errors.js'
import type { BackupProgress } from '../engine.js'

/**
 * SQLite's online backup API (`sqlite3_backup_*`, better-sqlite3's `db.backup`), both ways.
 *
 * Every page is copied in one step after the first: a step holds one read transaction on the
 * source, so the copy is a snapshot even while the tenant is written, and a copy in many small
 * steps would start over each time another connection wrote (it never ends under steady writes).
 * Into a live database, the backup holds one write transaction on the destination from its
 * first step to its last and commits it (in WAL mode, as one commit of the WAL): readers see the
 * old data until then, writers wait on SQLite's lock, and a failure or crash part-way rolls back.
 */
const ALL_PAGES = 0x7fffffff
/** Attempts while another connection holds the destination's write lock (a step returns SQLITE_BUSY). */
const BUSY_ATTEMPTS = 200
const BUSY_WAIT_MS = 25

/** Writes a consistent copy of the database at `source` to the new file `destination`. */
export async function backupSqliteFile(source: string, destination: string, options: { onProgress?: (progress: BackupProgress) => void } = {}): Promise<void> {
  if (existsSync(destination)) throw new TenantryError('INVALID_OPTION', `${destination} exists: a backup never replaces a file`)
  const db = new Database(source, { readonly: true, fileMustExist: true })
  try {
    await copyPages(db, destination, options)
    await chmod(destination, 0o600)
  } catch (error) {
    await rm(destination, { force: true })
    throw error
  } finally {
    db.close()
  }
}

/**
 * Replaces the database at `destination` (which exists, and may be open elsewhere) with the
 * backup file `source`, in one write transaction of `destination`. The source is checked first.
 */
export async function restoreSqliteFile(source: string, destination: string, options: CopyOptions = {}): Promise<void> {
  const db = openBackup(source)
  try {
    await copyPages(db, destination, options)
  } finally {
    db.close()
  }
}

/** Opens a backup file read-only after SQLite's `quick_check`: a damaged file is refused before anything is replaced. */
function openBackup(path: string): Database.Database {
  let db: Database.Database | undefined
  try {
    db = new Database(path, { readonly: true, fileMustExist: true })
    const result = db.pragma('quick_check', { simple: true })
    if (result !== 'ok') throw new TenantryError('INVALID_BACKUP', `${path} is damaged: ${String(result)}`)
    return db
  } catch (error) {
    db?.close()
    if (error instanceof TenantryError) throw error
    throw new TenantryError('INVALID_BACKUP', `${path} is not a SQLite database: ${(error as Error).message}`, { cause: error })
  }
}

interface CopyOptions {
  failBeforeCommit?: boolean
  onProgress?: ((progress: BackupProgress) => void) | undefined
}

/**
 * Progress is told in pages at the two points there are: all pages to go once the first step
 * has the lock, all done at the end. Copying in more, smaller steps would let the bar move but
 * would restart under writes (see above).
 */
async function copyPages(db: Database.Database, destination: string, options: CopyOptions): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    let steps = 0
    const progress = await db.backup(destination, {
      progress: ({ totalPages, remainingPages }) => {
        steps += 1
        if (steps === 1 && totalPages > 0) options.onProgress?.({ step: 'copy', done: totalPages - remainingPages, total: totalPages, unit: 'pages' })
        // The first step (of no pages) took the destination's lock; the next copies every page and commits.
        if (!options.failBeforeCommit) return ALL_PAGES
        if (steps === 1) return 1 // fault tests: one page written into the destination's transaction, then a failure
        throw new TenantryError('INTERNAL', 'Injected failure before the restored data committed')
      },
    })
    // A step that met another connection's lock before it started reports no pages at all: nothing was copied.
    if (progress.totalPages > 0) {
      options.onProgress?.({ step: 'copy', done: progress.totalPages, total: progress.totalPages, unit: 'pages' })
      return
    }
    if (attempt >= BUSY_ATTEMPTS) throw new TenantryError('DATABASE_BUSY', `${destination} stayed locked by another connection; try again`)
    await new Promise((resolve) => setTimeout(resolve, BUSY_WAIT_MS))
  }
}
