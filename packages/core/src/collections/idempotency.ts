import { createHash } from 'node:crypto'
import type { Kysely } from 'kysely'
import { isTenantryError, TenantryError } from '../errors.js'
import { findLedgerEntry, LEDGER_RETENTION_MS, pruneLedger, recordLedgerEntry, type LedgerEntry } from '../ledger/ledger.js'

/**
 * Idempotent writes of the collections (issue 10): a write given a key commits together with
 * its ledger entry (ledger/ledger.ts), and the same key with the same request is answered from
 * the ledger, writing nothing. Shared by `tenantry.collection(name)` (`opts.idempotencyKey`)
 * and the data API (`Idempotency-Key`), which hash a request the same way, so a key is one
 * write whichever way it arrives.
 */

/** 1 to 255 printable ASCII characters, as the `Idempotency-Key` header allows. */
const KEY_PATTERN = /^[\x20-\x7e]{1,255}$/

/** `key` if it is a valid idempotency key, else `VALIDATION_FAILED` naming `where`. */
export function assertIdempotencyKey(key: unknown, where = 'idempotencyKey'): string {
  if (typeof key !== 'string' || !KEY_PATTERN.test(key)) {
    throw new TenantryError('VALIDATION_FAILED', `${where}: expected 1 to 255 printable ASCII characters`)
  }
  return key
}

/** JSON with object keys sorted at every depth: equal values, equal text. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null'
  if (value === null || typeof value !== 'object') return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
}

/** What a write was asked: the HTTP method and route it is (or would be) sent as, the id, the validated body. */
export interface WriteRequest {
  method: 'POST' | 'PATCH' | 'DELETE'
  /** The route template, e.g. `/data/jobs/:id`. */
  route: string
  id?: string | number
  body?: unknown
}

/** SHA-256 of method, route, id and canonical body. */
export function requestHash(request: WriteRequest): string {
  return createHash('sha256')
    .update(`${request.method}\0${request.route}\0${request.id === undefined ? '' : canonicalJson(request.id)}\0${canonicalJson(request.body)}`)
    .digest('hex')
}

/** A write's answer: its status and body, and whether it came from the ledger. */
export interface WriteOutcome<T> {
  status: number
  body: T
  replayed: boolean
}

/** Runs `fn` bounded (read-only or not) in the current tenant. */
export type BoundedRun = <T>(fn: (db: Kysely<any>) => Promise<T>, readOnly: boolean) => Promise<T>

/** Entries are pruned after one write with a key in this many (per process): bounded work, spread out. */
const PRUNE_EVERY = 32
let writesSincePrune = 0

/**
 * Runs the write `exec` once per `key`: the write and its ledger entry in one transaction;
 * a recorded key with the same request answers the recorded status and body (`replayed`);
 * with another request `IDEMPOTENCY_KEY_REUSED`. A write that throws (a 4xx: not found,
 * constraint, validation) records nothing. Two concurrent writes with one key: the ledger's
 * key lets one commit; the other rolls back its write and answers the committed one's replay
 * (`IDEMPOTENCY_KEY_IN_USE` only if that entry cannot be read right after, e.g. pruned).
 */
export async function idempotentWrite<T>(
  bounded: BoundedRun,
  key: string,
  request: WriteRequest,
  exec: (trx: Kysely<any>) => Promise<{ status: number; body: T }>,
  onPruneError?: (error: unknown) => void,
): Promise<WriteOutcome<T>> {
  const hash = requestHash(request)
  const replay = (entry: LedgerEntry): WriteOutcome<T> => {
    if (entry.requestHash !== hash) {
      throw new TenantryError('IDEMPOTENCY_KEY_REUSED', `Idempotency key ${JSON.stringify(key)} was used for a different request`, { details: { key } })
    }
    return { status: entry.status, body: entry.response as T, replayed: true }
  }
  let outcome: WriteOutcome<T>
  try {
    outcome = await bounded(async (db) => {
      const found = await findLedgerEntry(db, key)
      if (found) return replay(found)
      return inTransaction(db, async (trx) => {
        const result = await exec(trx)
        await recordLedgerEntry(trx, { key, requestHash: hash, status: result.status, response: result.body })
        return { ...result, replayed: false }
      })
    }, false)
  } catch (error) {
    if (isTenantryError(error, 'IDEMPOTENCY_KEY_REUSED')) throw error
    // Another write with this key may have committed while this one ran: this one rolled back
    // (on its ledger insert, or earlier, on what that write changed: a unique value taken, a
    // row gone); answer that one. Otherwise the failure stands and nothing was recorded.
    const found = await bounded((db) => findLedgerEntry(db, key), true).catch(() => undefined)
    if (!found) throw error
    return replay(found)
  }
  if (!outcome.replayed && ++writesSincePrune >= PRUNE_EVERY) {
    writesSincePrune = 0
    await bounded((db) => pruneLedger(db, LEDGER_RETENTION_MS), false).catch((error: unknown) => onPruneError?.(error))
  }
  return outcome
}

/** `fn` in a transaction of `db`, or in `db` itself where it is one already (Postgres' bounded calls are). */
export function inTransaction<T>(db: Kysely<any>, fn: (trx: Kysely<any>) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn)
}
