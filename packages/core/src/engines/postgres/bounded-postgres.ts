import { sql } from 'kysely'
import { boundedTimeout, type BoundedConfig } from '../../bounded.js'
import { TenantryError } from '../../errors.js'
import type { BoundedQueries } from '../engine.js'
import { withTransactionSettings, type PendingTransactionSettings } from './scoped-postgres-dialect.js'

/** Longest a bounded call waits for a lock, at most: a wait past it is `DATABASE_BUSY`, which a client retries. */
const MAX_LOCK_TIMEOUT_MS = 1000
/** A bounded transaction idle this long (its caller awaiting something else) ends its connection. */
const MIN_IDLE_TIMEOUT_MS = 10_000

/**
 * Bounded queries on Postgres, whose driver never holds the event loop: `fn` runs in a
 * transaction that sets, for that transaction only (`set_config(…, true)`, dropped at COMMIT
 * or ROLLBACK, so a pooled connection never carries them to its next borrower):
 * - `statement_timeout`: the deadline; a statement past it is `STATEMENT_TIMEOUT` (57014);
 * - `lock_timeout`: half the deadline, at most a second; a lock held elsewhere past it is
 *   `DATABASE_BUSY` (55P03) rather than a timeout, since retrying soon will likely succeed;
 * - `idle_in_transaction_session_timeout`: a transaction left open while its caller awaits
 *   something else does not hold its locks for long;
 * - `transaction_read_only` for read-only calls.
 * They travel in the same round trip as `BEGIN` (`withTransactionSettings`).
 */
export function postgresBoundedQueries(config: BoundedConfig | undefined): BoundedQueries {
  return {
    async run(target, options, fn) {
      const timeoutMs = boundedTimeout(options.statementTimeoutMs, config)
      const lockMs = Math.max(1, Math.min(MAX_LOCK_TIMEOUT_MS, Math.floor(timeoutMs / 2)))
      const idleMs = Math.max(MIN_IDLE_TIMEOUT_MS, timeoutMs * 5)
      // Integers checked by `boundedTimeout`: the literals below never carry input.
      const calls = [
        `set_config('statement_timeout', '${timeoutMs}', true)`,
        `set_config('lock_timeout', '${lockMs}', true)`,
        `set_config('idle_in_transaction_session_timeout', '${idleMs}', true)`,
        ...(options.readOnly ? [`set_config('transaction_read_only', 'on', true)`] : []),
      ]
      const pending: PendingTransactionSettings = { calls, applied: false }
      try {
        return await withTransactionSettings(pending, () =>
          target
            .db()
            .transaction()
            .execute(async (trx) => {
              // A handle whose dialect did not send them with BEGIN: send them now, before `fn`'s first statement.
              if (!pending.applied) await sql.raw(`select ${calls.join(', ')}`).execute(trx)
              return fn(trx)
            }),
        )
      } catch (error) {
        throw translatePostgresError(error, timeoutMs)
      }
    },
  }
}

/** Postgres' deadline and lock errors as Tenantry's codes; anything else as it is. */
function translatePostgresError(error: unknown, timeoutMs: number): unknown {
  switch ((error as { code?: unknown })?.code) {
    case '57014': // query_canceled: statement_timeout
      return new TenantryError('STATEMENT_TIMEOUT', `The statement ran past its deadline of ${timeoutMs} ms and was stopped`, { cause: error })
    case '55P03': // lock_not_available: lock_timeout
      return new TenantryError('DATABASE_BUSY', 'Another transaction holds a lock this statement needs; retry shortly', {
        cause: error,
        details: { retryAfterSeconds: 1 },
      })
    case '25P03': // idle_in_transaction_session_timeout
      return new TenantryError('TRANSACTION_TIMEOUT', 'The transaction stayed idle past its deadline and was rolled back', { cause: error })
    default:
      return error
  }
}
