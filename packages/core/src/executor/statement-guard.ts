import type { Database, Statement } from 'better-sqlite3'
import { isBeginWithMode } from './sql-text.js'

/**
 * The rules for raw SQL over HTTP, checked on every statement before it runs.
 *
 * The connection already confines a lot: it is opened on the tenant's own file only, is
 * read-only at the engine level for read-only tokens, runs in SQLite's defensive mode
 * (better-sqlite3's default: no writes to `sqlite_master`, no `writable_schema`) and cannot
 * load extensions. What a statement could still do is checked in three layers:
 *
 * 1. **Leading keyword** (before anything is compiled): only `SELECT`, `WITH`, `VALUES`,
 *    `INSERT`, `REPLACE`, `UPDATE`, `DELETE` and transaction control (`BEGIN`, `COMMIT`,
 *    `END`, `ROLLBACK`, `SAVEPOINT`, `RELEASE`). This is checked *before* `prepare` because
 *    SQLite applies many PRAGMAs (`writable_schema`, `query_only`, `trusted_schema`…) while
 *    compiling them, so preparing one would already change the connection. Everything else
 *    (PRAGMA, ATTACH, DETACH, VACUUM, CREATE, DROP, ALTER, ANALYZE, REINDEX, EXPLAIN, a
 *    leading `;`) is refused.
 * 2. **One statement**: better-sqlite3's `prepare` throws when the text holds more than one.
 * 3. **What SQLite compiled** (`EXPLAIN` opcodes), the check that does not depend on
 *    parsing text right: no schema change (`ParseSchema`, `CreateBtree`, `SetCookie`,
 *    `Destroy`, `Drop*`, `VCreate`…), no `Vacuum`, no `JournalMode`, no `Checkpoint`,
 *    no call of `sqlite_attach`/`sqlite_detach`/`load_extension`/`fts3_tokenizer`, and no
 *    table of any database but `main` (index 0): neither `temp` nor anything attached.
 *    Table-valued PRAGMA functions (`pragma_optimize`, `pragma_database_list`…) and the
 *    `sqlite_dbpage`/`sqlite_stmt`/`dbstat` tables compile to a bare `VOpen`, so they are
 *    refused by name: any identifier or string literal spelling one.
 * 4. **Read-only tokens**: the statement must be `readonly` as SQLite reports it
 *    (`sqlite3_stmt_readonly`), on top of the read-only connection.
 *
 * Schema changes are refused for read-write tokens too: a tenant's schema belongs to its
 * migrations (the ledger would lie otherwise), and a trigger or view created here would
 * run later inside the app's own queries.
 *
 * A read-only session may open transactions: `BEGIN`, `BEGIN DEFERRED`, `COMMIT`, `END`,
 * `ROLLBACK`, `SAVEPOINT` and `RELEASE` are read-only as SQLite reports them. `BEGIN
 * IMMEDIATE`, `BEGIN EXCLUSIVE` (what `@libsql/client`'s `transaction()`, and so drizzle and
 * Kysely, send by default) and libSQL's `BEGIN TRANSACTION READONLY` run there as a plain
 * deferred `BEGIN`: a read-only connection can never take the write lock they ask for, and
 * must not hold writers back. Writes inside still fail, by the guard and by the connection.
 */
export const ALLOWED_LEADING_KEYWORDS: ReadonlySet<string> = new Set([
  'SELECT',
  'WITH',
  'VALUES',
  'INSERT',
  'REPLACE',
  'UPDATE',
  'DELETE',
  'BEGIN',
  'COMMIT',
  'END',
  'ROLLBACK',
  'SAVEPOINT',
  'RELEASE',
])

/** Opcodes that change the schema, the file or the connection; never allowed. */
const FORBIDDEN_OPCODES: ReadonlySet<string> = new Set([
  'ParseSchema',
  'CreateBtree',
  'SetCookie',
  'Destroy',
  'DropTable',
  'DropIndex',
  'DropTrigger',
  'Vacuum',
  'IncrVacuum',
  'JournalMode',
  'Checkpoint',
  'LoadAnalysis',
  'VCreate',
  'VDestroy',
  'VRename',
  'SqlExec',
  'MaxPgcnt',
  'Expire',
])

/** SQL functions that reach outside the tenant's file or the process's safety. */
const FORBIDDEN_FUNCTIONS = /^(sqlite_attach|sqlite_detach|load_extension|fts3_tokenizer|readfile|writefile|edit)\(/i

/**
 * Eponymous virtual tables that reach past the tenant's rows: the table-valued PRAGMA functions
 * (`pragma_optimize` writes `sqlite_stat1`, `pragma_database_list` shows the server's file
 * path), raw pages and statement internals. In the compiled program they are a bare `VOpen`
 * like `json_each`, so they are refused by name, wherever a name can stand.
 */
const FORBIDDEN_TABLE_NAMES = /^(pragma_\w+|sqlite_dbpage|sqlite_stmt|dbstat)$/i

/** Where a `--` or block comment starting at `i` ends (an unclosed one runs to the end), or `i` when none starts there. */
function afterComment(sql: string, i: number): number {
  if (sql.startsWith('--', i)) {
    const end = sql.indexOf('\n', i)
    return end === -1 ? sql.length : end + 1
  }
  if (sql.startsWith('/*', i)) {
    const end = sql.indexOf('*/', i + 2)
    return end === -1 ? sql.length : end + 2
  }
  return i
}

/**
 * Every identifier and string literal of `sql`, unquoted: SQLite reads a string literal as a
 * table name where one is expected (`FROM 'pragma_database_list'`), so both count as names.
 */
export function sqlNames(sql: string): string[] {
  const names: string[] = []
  const closers: Record<string, string> = { "'": "'", '"': '"', '`': '`', '[': ']' }
  let i = 0
  while (i < sql.length) {
    const c = sql[i]!
    const past = afterComment(sql, i)
    if (past !== i) i = past
    else if (c in closers) {
      const close = closers[c]!
      let name = ''
      i++
      while (i < sql.length) {
        if (sql[i] === close) {
          // A doubled quote is the quote itself (brackets have no escape).
          if (close !== ']' && sql[i + 1] === close) {
            name += close
            i += 2
            continue
          }
          break
        }
        name += sql[i++]
      }
      i++
      names.push(name)
    } else if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      const start = i
      while (i < sql.length && /[\w$\u0080-\uffff]/.test(sql[i]!)) i++
      names.push(sql.slice(start, i))
    } else i++
  }
  return names
}

/** Opcodes whose operand names a database (schema) index: which operand. */
const DATABASE_OPERAND: Readonly<Record<string, 'p1' | 'p3'>> = {
  Transaction: 'p1',
  ReadCookie: 'p1',
  OpenRead: 'p3',
  OpenWrite: 'p3',
  ReopenIdx: 'p3',
  TableLock: 'p1',
}

/** Why a statement was refused; `code` goes to the client. */
export class StatementRefused extends Error {
  override readonly name = 'StatementRefused'
  constructor(
    readonly code: 'SQL_FORBIDDEN' | 'READ_ONLY' | 'SQL_PARSE_ERROR',
    message: string,
  ) {
    super(message)
  }
}

/** Parameters as better-sqlite3 binds them: positional values, then one object of named ones. */
export type Bindings = unknown[]

/**
 * The first keyword of `sql` after whitespace and comments, upper-cased, or `undefined`
 * when it does not start with a word (`;`, `(`, garbage, nothing).
 */
export function leadingKeyword(sql: string): string | undefined {
  let i = 0
  for (;;) {
    while (i < sql.length && /\s/.test(sql[i]!)) i++
    const past = afterComment(sql, i)
    if (past === i) break
    i = past
  }
  return /^[A-Za-z]+/.exec(sql.slice(i))?.[0]?.toUpperCase()
}

/**
 * Compiles `sql` on `db` and returns the statement if the rules above allow it, or throws
 * `StatementRefused`. Nothing runs: `EXPLAIN` only lists the program.
 */
export function prepareGuarded(db: Database, sql: string, bindings: Bindings, readOnly: boolean): Statement {
  const keyword = leadingKeyword(sql)
  if (!keyword || !ALLOWED_LEADING_KEYWORDS.has(keyword)) {
    throw new StatementRefused(
      'SQL_FORBIDDEN',
      `${keyword ?? 'This statement'} is not allowed over SQL-over-HTTP: only SELECT, WITH, VALUES, INSERT, REPLACE, UPDATE, DELETE and transaction control. Schema changes go through migrations (tenantry migrate)`,
    )
  }
  const forbidden = sqlNames(sql).find((name) => FORBIDDEN_TABLE_NAMES.test(name))
  if (forbidden) {
    throw new StatementRefused('SQL_FORBIDDEN', `${forbidden} is not allowed over SQL-over-HTTP: it reaches past the tenant's rows`)
  }
  // See above: on a read-only connection a write-intent BEGIN is a read transaction.
  if (readOnly && isBeginWithMode(sql)) return db.prepare('BEGIN DEFERRED')
  let statement: Statement
  try {
    statement = db.prepare(sql)
  } catch (error) {
    const message = (error as Error).message
    if (/more than one statement/i.test(message)) {
      throw new StatementRefused('SQL_FORBIDDEN', 'Send one statement per request step (use a batch or a sequence for several)')
    }
    throw error
  }

  // Same text, same bindings: the program listed is the program that will run.
  const program = db.prepare(`EXPLAIN ${sql}`).all(...bindings) as Array<{ opcode: string; p1: number; p3: number; p4: unknown }>
  for (const op of program) {
    if (FORBIDDEN_OPCODES.has(op.opcode)) {
      throw new StatementRefused(
        'SQL_FORBIDDEN',
        `This statement changes the schema, the file or the connection (${op.opcode}); that is not allowed over SQL-over-HTTP. Schema changes go through migrations (tenantry migrate)`,
      )
    }
    if ((op.opcode === 'Function' || op.opcode === 'PureFunc') && typeof op.p4 === 'string' && FORBIDDEN_FUNCTIONS.test(op.p4)) {
      throw new StatementRefused('SQL_FORBIDDEN', `${op.p4.replace(/\(.*$/, '')}() is not allowed over SQL-over-HTTP`)
    }
    const operand = DATABASE_OPERAND[op.opcode]
    // `BEGIN IMMEDIATE` opens a transaction on every schema, temp (1) included; that is all
    // temp is ever used for, since nothing can be created in it.
    const allowed = op.opcode === 'Transaction' ? [0, 1] : [0]
    if (operand && !allowed.includes(Number(op[operand]))) {
      throw new StatementRefused('SQL_FORBIDDEN', 'Only the main database is reachable over SQL-over-HTTP (no temp or attached databases)')
    }
  }
  if (readOnly && !statement.readonly) {
    throw new StatementRefused('READ_ONLY', 'This token is read-only: the statement would write')
  }
  return statement
}
