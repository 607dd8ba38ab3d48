import { SqliteAdapter, SqliteDialect, type DialectAdapter } from 'kysely'

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

/** Kysely's SQLite dialect with transactional DDL. */
export class TransactionalSqliteDialect extends SqliteDialect {
  override createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter()
  }
}
