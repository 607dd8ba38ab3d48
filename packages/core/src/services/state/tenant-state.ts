import type { Kysely } from 'kysely'
import { TenantryError } from '../../errors.js'
import type { TenantDb } from '../../router/router.js'
import { scopeTenant, type TenantService } from '../scope.js'
import { STATE_TABLE } from './state-step.js'

/** One entry of the tenant's state. */
export interface StateEntry<T = unknown> {
  key: string
  value: T
  /** 1 at the first write, +1 at each write since; what `expectedVersion` compares with. */
  version: number
  updatedAt: string
}

export interface StateSetOptions {
  /**
   * Compare-and-set: write only if the entry's version is this one (`0`: only if there is no
   * entry yet). Otherwise `VERSION_CONFLICT`, with the version found in `details.actual` (0: none).
   */
  expectedVersion?: number
}

export interface StateListOptions {
  /** Only keys that start with it. */
  prefix?: string
  /** Only keys after it (the last key of the previous page). */
  after?: string
  /** @default 100, at most 1000 */
  limit?: number
}

/** Longest key, in UTF-16 code units. */
export const STATE_MAX_KEY_LENGTH = 512
/** Largest value, as JSON, in bytes. */
export const STATE_MAX_VALUE_BYTES = 256 * 1024

interface Row {
  key: string
  value: string
  version: number | string
  updated_at: string
}

/**
 * `tenantry.state`: a small durable key-value store per tenant (seed 004's per-user workflow
 * state), in the tenant's own database (`tenantry_state`, made by `stateStep`): it is backed up,
 * moved and purged with the tenant's data, and isolated as the tenant's tables are. Values are
 * JSON. Every write bumps the entry's version; `expectedVersion` makes a write
 * compare-and-set, so two workers updating one workflow cannot overwrite each other unseen.
 *
 * @example
 * await tenantry.withTenant('acme', async () => {
 *   const run = await tenantry.state.get<Workflow>('workflow:42')
 *   await tenantry.state.set('workflow:42', { ...run!.value, paused: true }, { expectedVersion: run!.version })
 * })
 */
export class TenantState implements TenantService {
  readonly name = 'state'
  readonly #db: () => TenantDb
  readonly #enabled: boolean

  /**
   * `db` is `tenantry.db`: the tenant in context's database (it throws `NO_TENANT` outside
   * `withTenant`). `enabled`: the config's `services.state`, without which no tenant has the table.
   */
  constructor(db: () => TenantDb, enabled: boolean) {
    this.#db = db
    this.#enabled = enabled
  }

  async get<T = unknown>(key: string): Promise<StateEntry<T> | undefined> {
    const db = this.#open()
    const row = (await db.selectFrom(STATE_TABLE).selectAll().where('key', '=', checkKey(key)).executeTakeFirst()) as Row | undefined
    return row ? toEntry<T>(row) : undefined
  }

  /** Writes `value` under `key` and returns the entry's new version. */
  async set(key: string, value: unknown, options: StateSetOptions = {}): Promise<number> {
    const db = this.#open()
    checkKey(key)
    const json = encode(key, value)
    const expected = options.expectedVersion
    if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 0)) {
      throw new TenantryError('INVALID_OPTION', `expectedVersion is a whole number of at least 0, not ${String(expected)}`)
    }
    const at = new Date().toISOString()
    if (expected === 0) {
      if (await insert(db, key, json, at)) return 1
      throw await conflict(db, key, 0)
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      let update = db
        .updateTable(STATE_TABLE)
        .set((eb) => ({ value: json, version: eb('version', '+', 1), updated_at: at }))
        .where('key', '=', key)
      if (expected !== undefined) update = update.where('version', '=', expected)
      const row = (await update.returning('version').executeTakeFirst()) as { version: number | string } | undefined
      if (row) return Number(row.version)
      if (expected !== undefined) throw await conflict(db, key, expected)
      // No entry: create it; another writer may create it first, then update theirs.
      if (await insert(db, key, json, at)) return 1
    }
    throw new TenantryError('DATABASE_BUSY', `State key ${JSON.stringify(key)} is being created and deleted by others; retry`)
  }

  /** Removes `key` (only at `expectedVersion`, when given); whether it was there. */
  async delete(key: string, options: StateSetOptions = {}): Promise<boolean> {
    const db = this.#open()
    checkKey(key)
    const expected = options.expectedVersion
    let query = db.deleteFrom(STATE_TABLE).where('key', '=', key)
    if (expected !== undefined) query = query.where('version', '=', expected)
    const removed = Number((await query.executeTakeFirst()).numDeletedRows) > 0
    if (!removed && expected !== undefined && expected !== 0) throw await conflict(db, key, expected)
    return removed
  }

  /** Entries by key (byte order), optionally those starting with `prefix`, a page at a time. */
  async list<T = unknown>(options: StateListOptions = {}): Promise<Array<StateEntry<T>>> {
    const db = this.#open()
    const limit = options.limit ?? 100
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new TenantryError('INVALID_OPTION', `limit is a whole number from 1 to 1000, not ${String(limit)}`)
    let query = db.selectFrom(STATE_TABLE).selectAll().orderBy('key').limit(limit)
    const { prefix, after } = options
    if (prefix !== undefined && prefix !== '') {
      checkKey(prefix)
      // A range on the key (its index), then the exact test: `prefix` sorts first among the keys it starts.
      query = query.where('key', '>=', prefix).where((eb) => eb(eb.fn('substr', ['key', eb.val(1), eb.val([...prefix].length)]), '=', prefix))
    }
    if (after !== undefined) query = query.where('key', '>', checkKey(after))
    return ((await query.execute()) as Row[]).map((row) => toEntry<T>(row))
  }

  /** The state lives in the tenant's database: it goes when the database is dropped. */
  async purgeTenant(): Promise<{ removedWith: string }> {
    return { removedWith: 'the tenant database' }
  }

  async close(): Promise<void> {}

  #open(): Kysely<any> {
    scopeTenant('state')
    if (!this.#enabled) {
      throw new TenantryError('INVALID_CONFIG', 'tenantry.state needs `services: { state: true }` in tenantry.config (then `tenantry migrate` makes its table in every tenant database)')
    }
    return this.#db() as Kysely<any>
  }
}

/** Inserts unless the key exists (no conflict target: under row isolation the key is unique with `tenant_id`). */
async function insert(db: Kysely<any>, key: string, json: string, at: string): Promise<boolean> {
  const result = await db
    .insertInto(STATE_TABLE)
    .values({ key, value: json, version: 1, updated_at: at })
    .onConflict((oc) => oc.doNothing())
    .executeTakeFirst()
  return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0
}

async function conflict(db: Kysely<any>, key: string, expected: number): Promise<TenantryError> {
  const row = (await db.selectFrom(STATE_TABLE).select('version').where('key', '=', key).executeTakeFirst()) as { version: number | string } | undefined
  const actual = row ? Number(row.version) : 0
  return new TenantryError('VERSION_CONFLICT', `State key ${JSON.stringify(key)} is at version ${actual}, not ${expected}`, { details: { key, expected, actual } })
}

function toEntry<T>(row: Row): StateEntry<T> {
  return { key: row.key, value: JSON.parse(row.value) as T, version: Number(row.version), updatedAt: row.updated_at }
}

const LONE_SURROGATE = /\p{Cs}/u

function checkKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > STATE_MAX_KEY_LENGTH || LONE_SURROGATE.test(key) || key.includes('\0')) {
    throw new TenantryError('INVALID_OPTION', `A state key is a non-empty string of well-formed Unicode without NUL, at most ${STATE_MAX_KEY_LENGTH} characters`)
  }
  return key
}

function encode(key: string, value: unknown): string {
  const json = value === undefined ? undefined : JSON.stringify(value)
  if (json === undefined) throw new TenantryError('INVALID_OPTION', `The value for state key ${JSON.stringify(key)} is not JSON (undefined, a function or a symbol)`)
  if (Buffer.byteLength(json) > STATE_MAX_VALUE_BYTES) {
    throw new TenantryError('INVALID_OPTION', `The value for state key ${JSON.stringify(key)} is larger than ${STATE_MAX_VALUE_BYTES} bytes`)
  }
  return json
}
