import { sql, type Kysely } from 'kysely'
import { TenantryError } from '../errors.js'
import { derivedTableStep, type DerivedStep } from '../migrations/derived-step.js'

/**
 * The write ledger (issue 10): a tenant-local table of the writes made under an idempotency
 * key, with the answer each got, so that the same write sent again (a retry after a lost
 * answer, a queue replayed after going offline, a claim resumed) is answered from the ledger
 * instead of being made twice.
 *
 * The table lives beside the tenant's own tables (its SQLite file, its Postgres schema or
 * database; under row isolation the shared `tenantry_writes` keyed by `tenant_id` and confined
 * by RLS like every app table), so an entry commits in the same transaction as the write it
 * records: a crash never leaves a write without its entry, nor an entry without its write.
 * It is made by a derived migration step (`ledgerStep`), after the app's migrations, at
 * provisioning and at `tenantry migrate`.
 */

/** The ledger's table in each tenant database. */
export const LEDGER_TABLE = 'tenantry_writes'

/** The ledger name of the step that makes the table; bump the version when what it makes changes. */
export const LEDGER_STEP_NAME = 'tenantry_writes.v1'

/** How long entries are kept: a retry or replay later than this is a new write. */
export const LEDGER_RETENTION_MS = 24 * 60 * 60 * 1000

/**
 * Keys under this prefix are kept `LEDGER_CLAIM_RETENTION_MS`: a browser that committed a claim
 * but was closed before it cleared its local copy resumes the claim on its next load, maybe
 * weeks later, and must find the claim's answer then, not make it twice.
 */
export const LEDGER_CLAIM_PREFIX = 'claim:'
export const LEDGER_CLAIM_RETENTION_MS = 180 * 24 * 60 * 60 * 1000

/** Rows `pruneLedger` deletes per call at most: bounded work on the write path. */
export const LEDGER_PRUNE_BATCH = 500

/** One recorded write: its key, what was asked (hashed), and the answer it got. */
export interface LedgerEntry {
  /** The idempotency key, unique per tenant. */
  key: string
  /** A hash of the request (method, route, id, canonical body): the same key with another request is a reuse. */
  requestHash: string
  /** The status the write was answered with (HTTP status for the data API). */
  status: number
  /** The answer's body, as it was sent (JSON-serialisable). */
  response: unknown
  /** When the write committed, ISO 8601 UTC. */
  createdAt: string
}

interface LedgerRow {
  key: string
  request_hash: string
  status: number | string
  response: string
  created_at: string | Date
}

/** The entry recorded under `key` in the tenant database `db`, if any. */
export async function findLedgerEntry(db: Kysely<any>, key: string): Promise<LedgerEntry | undefined> {
  const row = (await db
    .selectFrom(LEDGER_TABLE)
    .select(['key', 'request_hash', 'status', 'response', 'created_at'])
    .where('key', '=', key)
    .executeTakeFirst()) as LedgerRow | undefined
  if (!row) return undefined
  return {
    key: row.key,
    requestHash: row.request_hash,
    status: Number(row.status),
    response: row.response === '' ? undefined : (JSON.parse(row.response) as unknown),
    createdAt: row.created_at instanceof Date ? row.created_at.toISOString() : row.created_at,
  }
}

/**
 * Records `entry` through `trx`, which should be the transaction of the write it records, so
 * both commit or neither does. A key already recorded (or being recorded by a transaction that
 * has not committed yet, which this waits for on Postgres) throws `IDEMPOTENCY_KEY_IN_USE`;
 * the insert does not fail, so a Postgres transaction is still usable (the caller rolls back).
 */
export async function recordLedgerEntry(trx: Kysely<any>, entry: Omit<LedgerEntry, 'createdAt'>): Promise<void> {
  const result = await trx
    .insertInto(LEDGER_TABLE)
    .values({
      key: entry.key,
      request_hash: entry.requestHash,
      status: entry.status,
      response: entry.response === undefined ? '' : JSON.stringify(entry.response),
      created_at: new Date().toISOString(),
    })
    // No conflict target: under row isolation the key is unique with `tenant_id`, elsewhere alone.
    .onConflict((oc) => oc.doNothing())
    .executeTakeFirst()
  if (Number(result.numInsertedOrUpdatedRows ?? 0n) === 0) {
    throw new TenantryError('IDEMPOTENCY_KEY_IN_USE', `Idempotency key ${JSON.stringify(entry.key)} is already recorded for another write`, {
      details: { key: entry.key },
    })
  }
}

/**
 * Deletes entries older than `olderThanMs` (claims' entries: older than
 * `LEDGER_CLAIM_RETENTION_MS`), at most `LEDGER_PRUNE_BATCH` of them per call (so a caller on
 * the write path does bounded work; call again while it returns the batch size). Returns how
 * many it deleted.
 */
export async function pruneLedger(db: Kysely<any>, olderThanMs: number): Promise<number> {
  const cutoff = new Date(Date.now() - olderThanMs).toISOString()
  const claimCutoff = new Date(Date.now() - Math.max(olderThanMs, LEDGER_CLAIM_RETENTION_MS)).toISOString()
  const result = await db
    .deleteFrom(LEDGER_TABLE)
    .where(
      'key',
      'in',
      db
        .selectFrom(LEDGER_TABLE)
        .select('key')
        .where((eb) =>
          eb.or([
            eb.and([eb('created_at', '<', cutoff), eb('key', 'not like', `${LEDGER_CLAIM_PREFIX}%`)]),
            eb('created_at', '<', claimCutoff),
          ]),
        )
        .limit(LEDGER_PRUNE_BATCH),
    )
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}

/**
 * The derived migration step that makes `tenantry_writes` (`derivedTableStep`: confined and
 * usable exactly as the app's own tables are). `created_at` is ISO text on every engine: it
 * sorts as it reads.
 */
export function ledgerStep(): DerivedStep {
  return derivedTableStep(LEDGER_STEP_NAME, LEDGER_TABLE, async (trx) => {
    await trx.schema
      .createTable(LEDGER_TABLE)
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('request_hash', 'text', (c) => c.notNull())
      .addColumn('status', 'integer', (c) => c.notNull())
      .addColumn('response', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute()
    await trx.schema.createIndex(`${LEDGER_TABLE}_created_at`).on(LEDGER_TABLE).column('created_at').execute()
  }, LEDGER_RECIPE)
}

/** `ledgerStep` as data, for another thread (see `loadMigrationSource`). */
export const LEDGER_RECIPE = { kind: 'ledger' } as const

/** Whether a config's opaque `server` block declares any collection: the ledger is made only then. */
export function declaresCollections(server: Record<string, unknown> | undefined): boolean {
  const collections = server?.collections
  return !!collections && typeof collections === 'object' && Object.keys(collections).length > 0
}
