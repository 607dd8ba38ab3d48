import {
  CompiledQuery,
  SqliteAdapter,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  type SqliteDialectConfig,
} from 'kysely'

/**
 * SQLite runs DDL inside transactions, but Kysely's adapter says it does not, which
 * would make its Migrator apply each migration and record it in two steps. A crash
 * between them leaves a migration applied and unrecorded. This adapter tells the truth,
 * so a migration and its record commit together.
 */
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true
  }
}

export interface TransactionalSqliteDialectConfig extends SqliteDialectConfig {
  /**
   * Begin every transaction with `BEGIN IMMEDIATE`, taking the write lock up front. A
   * deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
   * another process holds or took the write lock in between; an immediate one waits its
   * turn (the busy timeout). For databases whose transactions all write, like the catalog.
   * @default false
   */
  immediateTransactions?: boolean
}

class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'))
  }
}

/** Kysely's SQLite dialect with transactional DDL. */
export class TransactionalSqliteDialect extends SqliteDialect {
  readonly #config: TransactionalSqliteDialectConfig

  constructor(config: TransactionalSqliteDialectConfig) {
    super(config)
    this.#config = config
  }

  override createDriver(): Driver {
    return this.#config.immediateTransactions ? new ImmediateSqliteDriver(this.#config) : super.createDriver()
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter()
  }
}
