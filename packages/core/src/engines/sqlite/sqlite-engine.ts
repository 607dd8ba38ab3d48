import { constants as fsConstants } from 'node:fs'
import { chmod, copyFile, link, mkdir, readdir, rm, unlink } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { Kysely } from 'kysely'
import { TenantryError } from '../../errors.js'
import { assertTenantId } from '../../identifiers.js'
import { isProcessAlive } from '../../processes.js'
import type { DatabaseEngine, EngineHandle, EnginePlacement, EngineTemplate, Isolation } from '../engine.js'
import { TransactionalSqliteDialect } from './sqlite-dialect.js'

/** SQLite `synchronous` levels. See https://sqlite.org/pragma.html#pragma_synchronous */
export type SqliteSynchronous = 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA'

export interface SqliteEngineOptions {
  /** The directory holding one file per tenant. Created when missing. */
  directory: string
  /**
   * Durability of each commit. In WAL mode `NORMAL` never corrupts a database and
   * loses no commit when the *process* dies; a power cut or OS crash may roll back
   * the last transactions before the WAL was synced. `FULL` syncs the WAL on every
   * commit and survives power loss too, at the cost of one fsync per commit.
   * @default 'NORMAL'
   */
  synchronous?: SqliteSynchronous
  /** How long a writer waits for another connection's lock before SQLITE_BUSY. @default 5000 */
  busyTimeoutMs?: number
}

const LOCATOR_PATTERN = /^t[a-z2-7]{19}\.db$/
const TEMPLATE_KEY_PATTERN = /^[a-f0-9]{16,64}$/
const SIDE_FILES = ['-wal', '-shm', '-journal', '.creating']
/** Scratch files of a template build: `<key>.<pid>-<time>.build` (with its -wal/-shm) and `.sealed`. */
const BUILD_FILE_PATTERN = /^[a-f0-9]{16,64}\.(\d+)-[a-z0-9]+\.(?:build|sealed)/

interface SqliteTemplate extends EngineTemplate {
  readonly path: string
}

/** Database-per-tenant on SQLite: one file per tenant, named after the tenant id. */
export class SqliteEngine implements DatabaseEngine {
  readonly name = 'sqlite' as const
  readonly isolations: readonly Isolation[] = ['database']
  readonly directory: string
  readonly #synchronous: SqliteSynchronous
  readonly #busyTimeoutMs: number
  #directoryReady = false

  constructor(options: SqliteEngineOptions) {
    this.directory = resolve(options.directory)
    this.#synchronous = options.synchronous ?? 'NORMAL'
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 5000
  }

  locatorFor(tenantId: string, isolation: Isolation): string {
    this.#assertIsolation(isolation)
    assertTenantId(tenantId)
    return `${tenantId}.db`
  }

  /** The tenant's file. Checked again here so that no locator, however it got into the catalog, escapes the directory. */
  pathOf(placement: EnginePlacement): string {
    this.#assertIsolation(placement.isolation)
    if (!LOCATOR_PATTERN.test(placement.locator) || placement.locator !== `${placement.tenantId}.db`) {
      throw new TenantryError('INVALID_IDENTIFIER', `Invalid SQLite locator ${JSON.stringify(placement.locator)}`)
    }
    return join(this.directory, placement.locator)
  }

  async create(placement: EnginePlacement): Promise<void> {
    const path = this.pathOf(placement)
    await this.#ensureDirectory()
    const staging = `${path}.creating`
    await rm(staging, { force: true })
    new Database(staging).close()
    await this.#publish(staging, path)
  }

  async ensureTemplate(key: string, isolation: Isolation, migrate: (handle: EngineHandle) => Promise<void>): Promise<SqliteTemplate> {
    this.#assertIsolation(isolation)
    if (!TEMPLATE_KEY_PATTERN.test(key)) throw new TenantryError('INVALID_IDENTIFIER', `Invalid template key ${key}`)
    const templates = join(this.directory, '.templates')
    const path = join(templates, `${key}.db`)
    await this.#removeAbandonedBuilds(templates)
    if (existsSync(path)) return { key, path }
    await mkdir(templates, { recursive: true })

    const unique = `${process.pid}-${Date.now().toString(36)}`
    const scratch = join(templates, `${key}.${unique}.build`)
    const sealed = join(templates, `${key}.${unique}.sealed`)
    try {
      const handle = this.#openFile(scratch, false)
      try {
        await migrate(handle)
      } finally {
        await handle.close()
      }
      // VACUUM INTO writes a compact, self-contained copy with no WAL: the template is
      // sealed once and never opened for writing again, so copying it is always consistent.
      const db = new Database(scratch, { fileMustExist: true })
      try {
        db.prepare('VACUUM INTO ?').run(sealed)
      } finally {
        db.close()
      }
      // Sealed in WAL mode, the journal mode every handle sets: a copy opens without first
      // converting its journal, which costs a write transaction and several fsyncs per tenant.
      const seal = new Database(sealed, { fileMustExist: true })
      try {
        seal.pragma('journal_mode = WAL')
      } finally {
        seal.close()
      }
      await chmod(sealed, 0o444)
      await link(sealed, path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error // another process sealed the same template first
      })
    } finally {
      await Promise.all([scratch, `${scratch}-wal`, `${scratch}-shm`, sealed].map((f) => rm(f, { force: true })))
    }
    return { key, path }
  }

  async createFromTemplate(placement: EnginePlacement, template: EngineTemplate): Promise<void> {
    const path = this.pathOf(placement)
    await this.#ensureDirectory()
    const staging = `${path}.creating`
    await rm(staging, { force: true })
    await copyFile((template as SqliteTemplate).path, staging, fsConstants.COPYFILE_FICLONE)
    await chmod(staging, 0o644)
    await this.#publish(staging, path)
  }

  async exists(placement: EnginePlacement): Promise<boolean> {
    return existsSync(this.pathOf(placement))
  }

  open(placement: EnginePlacement): EngineHandle {
    return this.#openFile(this.pathOf(placement), true)
  }

  async drop(placement: EnginePlacement): Promise<void> {
    const path = this.pathOf(placement)
    await Promise.all([path, ...SIDE_FILES.map((suffix) => path + suffix)].map((f) => rm(f, { force: true })))
  }

  async close(): Promise<void> {}

  /** Makes the fully written staging file visible under its final name, refusing to replace an existing tenant file. */
  async #publish(staging: string, path: string): Promise<void> {
    try {
      await link(staging, path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new TenantryError('PROVISIONING_FAILED', `Tenant database already exists: ${path}`, { cause: error })
      }
      throw error
    } finally {
      await unlink(staging).catch(() => {})
    }
  }

  #openFile(path: string, mustExist: boolean): EngineHandle {
    const database = new Database(path, { fileMustExist: mustExist, timeout: this.#busyTimeoutMs })
    try {
      database.pragma('journal_mode = WAL')
      database.pragma(`synchronous = ${this.#synchronous}`)
      database.pragma('foreign_keys = ON')
    } catch (error) {
      database.close()
      throw error
    }
    const db = new Kysely<any>({ dialect: new TransactionalSqliteDialect({ database }) })
    return {
      engine: 'sqlite',
      db,
      async execScript(_db, script) {
        // better-sqlite3 has one connection per file, and a running Kysely transaction holds
        // it, so exec here joins that transaction. Kysely's own `sql` runs one statement only.
        database.exec(script)
      },
      close: () => db.destroy(),
    }
  }

  /** Removes what template builds left when their process died mid-build; a live process's build is left alone. */
  async #removeAbandonedBuilds(templates: string): Promise<void> {
    const files = await readdir(templates).catch(() => [])
    const abandoned = files.filter((file) => {
      const pid = BUILD_FILE_PATTERN.exec(file)?.[1]
      return pid !== undefined && !isProcessAlive(Number(pid))
    })
    await Promise.all(abandoned.map((file) => rm(join(templates, file), { force: true })))
  }

  async #ensureDirectory(): Promise<void> {
    if (this.#directoryReady) return
    await mkdir(this.directory, { recursive: true })
    this.#directoryReady = true
  }

  #assertIsolation(isolation: Isolation): void {
    if (!this.isolations.includes(isolation)) {
      throw new TenantryError('UNSUPPORTED_PLACEMENT', `SQLite data sources offer database isolation only, not ${isolation}`)
    }
  }
}

