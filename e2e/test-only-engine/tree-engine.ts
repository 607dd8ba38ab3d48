import { existsSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { Kysely, SqliteAdapter, SqliteDialect, type DialectAdapter } from 'kysely'
import { z } from 'zod'
import {
  TENANT_ID_PATTERN,
  TenantryError,
  type DataSourceBase,
  type DatabaseEngine,
  type EngineDefinition,
  type EngineHandle,
  type EnginePlacement,
  type Isolation,
} from 'tenantry'

// A test-only engine, registered from its test with `registerEngine`: each tenant is a
// SQLite file in a directory tree of its own, `<root>/<2 characters of the id>/<id>/tenant.sqlite`,
// opened with plain better-sqlite3 and Kysely. It lives entirely in this folder: Tenantry
// reaches it through the registry and the engine contract only.

/** The data source config of a tree engine. */
export interface TreeDataSourceConfig extends DataSourceBase {
  engine: 'sqlite_tree'
  /** The directory the tree grows under. */
  root: string
}

declare module 'tenantry' {
  interface DataSourceConfigs {
    sqlite_tree: TreeDataSourceConfig
  }
}

/** SQLite runs DDL in transactions; saying so lets a migration and its record commit together. */
class TransactionalDdlAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true
  }
}

class TreeDialect extends SqliteDialect {
  override createAdapter(): DialectAdapter {
    return new TransactionalDdlAdapter()
  }
}

export class TreeSqliteEngine implements DatabaseEngine {
  readonly name = 'sqlite_tree'
  readonly isolations: readonly Isolation[] = ['database']
  readonly root: string

  constructor(root: string) {
    this.root = resolve(root)
  }

  locatorFor(tenantId: string, isolation: Isolation): string {
    if (!this.isolations.includes(isolation)) throw new TenantryError('UNSUPPORTED_PLACEMENT', `The tree engine offers database isolation only, not ${isolation}`)
    if (!TENANT_ID_PATTERN.test(tenantId)) throw new TenantryError('INVALID_IDENTIFIER', `Invalid tenant id ${JSON.stringify(tenantId)}`)
    return `${tenantId.slice(1, 3)}/${tenantId}`
  }

  /** The tenant's directory, after checking that its locator is the one `locatorFor` derives. */
  directoryOf(placement: EnginePlacement): string {
    if (placement.locator !== this.locatorFor(placement.tenantId, placement.isolation)) {
      throw new TenantryError('INVALID_IDENTIFIER', `Invalid tree locator ${JSON.stringify(placement.locator)}`)
    }
    return join(this.root, placement.locator)
  }

  fileOf(placement: EnginePlacement): string {
    return join(this.directoryOf(placement), 'tenant.sqlite')
  }

  async create(placement: EnginePlacement): Promise<void> {
    const file = this.fileOf(placement)
    await mkdir(this.directoryOf(placement), { recursive: true })
    // An empty file is an empty SQLite database; `wx` refuses one that exists.
    await writeFile(file, '', { flag: 'wx' })
  }

  async exists(placement: EnginePlacement): Promise<boolean> {
    return existsSync(this.fileOf(placement))
  }

  open(placement: EnginePlacement): EngineHandle {
    const database = new Database(this.fileOf(placement), { fileMustExist: true, timeout: 5000 })
    database.pragma('journal_mode = WAL')
    database.pragma('foreign_keys = ON')
    const db = new Kysely<any>({ dialect: new TreeDialect({ database }) })
    return {
      engine: this.name,
      db,
      // One connection per file, held by a running transaction: exec joins it.
      execScript: async (_db, script) => void database.exec(script),
      close: () => db.destroy(),
    }
  }

  async drop(placement: EnginePlacement): Promise<void> {
    await rm(this.directoryOf(placement), { recursive: true, force: true })
  }

  async close(): Promise<void> {}

  async test(): Promise<string> {
    await mkdir(this.root, { recursive: true })
    return `SQLite tree under ${this.root}`
  }
}

/** The tree engine as the registry knows it. */
export const TREE_ENGINE: EngineDefinition<TreeDataSourceConfig> = {
  name: 'sqlite_tree',
  label: 'SQLite tree',
  configSchema: z.object({ root: z.string().min(1) }),
  resolveConfig: (input, { resolvePath }) => (typeof input.root === 'string' ? { ...input, root: resolvePath(input.root) } : input),
  toRecord: (config) => ({ config: { root: config.root }, secret: null }),
  createEngine: (record) => new TreeSqliteEngine(String(record.config.root)),
  describe: (config) => String(config.root),
}
