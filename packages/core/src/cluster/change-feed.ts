import type { Socket } from 'node:net'
import type Database from 'better-sqlite3'
import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import { SILENT_LOGGER, type Logger } from '../logger.js'

/**
 * One change to the catalog that a process may hold in a cache:
 * - `tenant`: its status, slug, maintenance or placement changed, or it was deleted or purged;
 * - `token`: an integration token was revoked (or its expiry changed, or it was deleted);
 * - `settings`: the tenant's settings document (quotas and limits) changed;
 * - `membership`: a user's membership of a tenant changed (published by the server);
 * - `reset`: changes may have been missed (the feed's connection dropped): drop every cached entry.
 */
export type CatalogChange =
  | { kind: 'tenant'; tenantId: string }
  | { kind: 'token'; tokenId: string; tenantId?: string }
  | { kind: 'settings'; tenantId: string }
  | { kind: 'membership'; tenantId?: string; userId?: string }
  | { kind: 'reset' }

export type ChangeListener = (change: CatalogChange) => void

/** The Postgres channel the catalog's triggers (migration `0012_change_feed`) notify on. */
export const CHANGE_CHANNEL = 'tenantry_changes'
/** The `application_name` of the feed's listening connection, so an operator can find it in `pg_stat_activity`. */
export const CHANGE_FEED_APPLICATION_NAME = 'tenantry-change-feed'

/**
 * Announces catalog changes to every process on the catalog, so that caches (placements,
 * quotas, limits, verified tokens) drop what changed instead of waiting out a TTL.
 *
 * The catalog announces its own writes: on Postgres, triggers on `tenants`, `placements`,
 * `tokens` and `tenant_settings` `NOTIFY` in the writing transaction, so a change is heard only
 * once it has committed, whoever wrote it; on SQLite, temporary triggers on this process's
 * connection tell this process alone (several nodes need the Postgres catalog). `publish` is for
 * changes outside those tables.
 */
export interface ChangeFeed {
  /** Starts listening. Idempotent. Throws when the catalog cannot be reached. */
  start(): Promise<void>
  /** Calls `listener` with every change heard, until the returned function is called. */
  subscribe(listener: ChangeListener): () => void
  /** Announces `change` to every process (with `db`, inside that transaction: heard on commit). */
  publish(change: Exclude<CatalogChange, { kind: 'reset' }>, db?: Kysely<any>): Promise<void>
  close(): Promise<void>
}

/** Listeners, each called on its own: one that throws does not keep the change from the others. */
class Listeners {
  readonly #listeners = new Set<ChangeListener>()
  readonly #logger: Logger

  constructor(logger: Logger) {
    this.#logger = logger
  }

  add(listener: ChangeListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  deliver(change: CatalogChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change)
      } catch (err) {
        this.#logger.warn({ err, change }, 'A catalog change listener failed')
      }
    }
  }
}

/** Parses a notification's payload; anything else (another version's kind?) counts as a reset, to be safe. */
export function parseChange(payload: string | undefined): CatalogChange {
  try {
    const value = JSON.parse(payload ?? '') as Record<string, unknown>
    const tenantId = typeof value.tenantId === 'string' ? value.tenantId : undefined
    if (value.kind === 'tenant' && tenantId) return { kind: 'tenant', tenantId }
    if (value.kind === 'settings' && tenantId) return { kind: 'settings', tenantId }
    if (value.kind === 'token' && typeof value.tokenId === 'string') return { kind: 'token', tokenId: value.tokenId, ...(tenantId ? { tenantId } : {}) }
    if (value.kind === 'membership') {
      return { kind: 'membership', ...(tenantId ? { tenantId } : {}), ...(typeof value.userId === 'string' ? { userId: value.userId } : {}) }
    }
  } catch {
    // fall through
  }
  return { kind: 'reset' }
}

export interface PostgresChangeFeedOptions {
  logger?: Logger
  /** First wait before reconnecting a dropped listening connection; doubles up to `maxReconnectMs`. @default 100 */
  minReconnectMs?: number
  /** @default 2000 */
  maxReconnectMs?: number
  /**
   * How often the listening connection is asked a trivial query; one not answered within this
   * long counts as lost. TCP keepalive alone takes many minutes to notice a silent network. @default 5000
   */
  heartbeatMs?: number
}

/**
 * `LISTEN` on one dedicated connection (a pooled one would be handed to queries). When it drops,
 * every listener hears `reset` at once and again after each reconnect attempt, since changes
 * made meanwhile went unheard; it reconnects with backoff until it is closed.
 */
export class PostgresChangeFeed implements ChangeFeed {
  readonly #url: string
  readonly #db: Kysely<any>
  readonly #logger: Logger
  readonly #listeners: Listeners
  readonly #minMs: number
  readonly #maxMs: number
  readonly #heartbeatMs: number
  #heartbeat: NodeJS.Timeout | undefined
  #client: pg.Client | undefined
  #starting: Promise<void> | undefined
  #retry: NodeJS.Timeout | undefined
  #delayMs: number
  #closed = false

  constructor(url: string, db: Kysely<any>, options: PostgresChangeFeedOptions = {}) {
    this.#url = url
    this.#db = db
    this.#logger = options.logger ?? SILENT_LOGGER
    this.#listeners = new Listeners(this.#logger)
    this.#minMs = options.minReconnectMs ?? 100
    this.#maxMs = options.maxReconnectMs ?? 2000
    this.#heartbeatMs = options.heartbeatMs ?? 5000
    this.#delayMs = this.#minMs
  }

  start(): Promise<void> {
    this.#starting ??= this.#connect()
    return this.#starting
  }

  subscribe(listener: ChangeListener): () => void {
    return this.#listeners.add(listener)
  }

  async publish(change: Exclude<CatalogChange, { kind: 'reset' }>, db: Kysely<any> = this.#db): Promise<void> {
    await sql`select pg_notify(${CHANGE_CHANNEL}, ${JSON.stringify(change)})`.execute(db)
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retry)
    clearInterval(this.#heartbeat)
    const client = this.#client
    this.#client = undefined
    await client?.end().catch(() => undefined)
  }

  async #connect(): Promise<void> {
    // keepAlive: a connection cut without a word (a dead peer) is noticed and replaced.
    const client = new pg.Client({ connectionString: this.#url, application_name: CHANGE_FEED_APPLICATION_NAME, keepAlive: true })
    client.on('notification', (message) => {
      if (message.channel === CHANGE_CHANNEL) this.#listeners.deliver(parseChange(message.payload))
    })
    client.on('error', (err) => this.#logger.warn({ err }, 'The catalog change feed connection failed; reconnecting'))
    client.on('end', () => this.#lost(client))
    try {
      await client.connect()
      await client.query(`LISTEN ${CHANGE_CHANNEL}`)
    } catch (error) {
      client.removeAllListeners('end')
      await client.end().catch(() => undefined)
      throw error
    }
    if (this.#closed) {
      await client.end().catch(() => undefined)
      return
    }
    // Listening alone never keeps a process alive: a script that forgets `close` still exits.
    const socket = client.connection.stream as Partial<Socket>
    socket.unref?.()
    this.#client = client
    this.#heartbeat = setInterval(() => {
      // Unanswered in time: end the socket, which ends the client and starts a reconnect.
      const deadline = setTimeout(() => socket.destroy?.(), this.#heartbeatMs).unref()
      client.query('select 1').then(
        () => clearTimeout(deadline),
        () => clearTimeout(deadline),
      )
    }, this.#heartbeatMs)
    this.#heartbeat.unref()
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client || this.#closed) return
    this.#client = undefined
    clearInterval(this.#heartbeat)
    this.#listeners.deliver({ kind: 'reset' })
    this.#reconnectLater()
  }

  #reconnectLater(): void {
    if (this.#closed) return
    const delay = this.#delayMs
    this.#delayMs = Math.min(this.#maxMs, this.#delayMs * 2)
    this.#retry = setTimeout(() => {
      this.#connect().then(
        () => {
          this.#delayMs = this.#minMs
          this.#logger.info({}, 'The catalog change feed reconnected')
          // What changed while it was away went unheard.
          this.#listeners.deliver({ kind: 'reset' })
        },
        (err: unknown) => {
          this.#logger.warn({ err }, 'Reconnecting the catalog change feed failed; trying again')
          // Caches refilled meanwhile may already be stale: drop them again while the feed is down.
          this.#listeners.deliver({ kind: 'reset' })
          this.#reconnectLater()
        },
      )
    }, delay)
    this.#retry.unref()
  }
}

/** The tables whose rows caches hold, the change each kind of write announces, and the column naming the row. */
const SQLITE_TRIGGERS: ReadonlyArray<{ table: string; events: readonly string[]; kind: 'tenant' | 'token' | 'settings'; column: string }> = [
  { table: 'tenants', events: ['UPDATE', 'DELETE'], kind: 'tenant', column: 'id' },
  { table: 'placements', events: ['UPDATE', 'DELETE'], kind: 'tenant', column: 'tenant_id' },
  { table: 'tokens', events: ['UPDATE OF revoked_at, expires_at', 'DELETE'], kind: 'token', column: 'id' },
  { table: 'tenant_settings', events: ['INSERT', 'UPDATE', 'DELETE'], kind: 'settings', column: 'tenant_id' },
]

/**
 * A SQLite catalog's feed: in-process only. Temporary triggers (this connection's alone, so
 * nothing is left in the file for other programs to trip on) call a function of this process.
 * Other processes on the same file are not told: their caches follow within their TTLs.
 * A trigger fires before its transaction commits; the listeners are called after the
 * statement, and a change rolled back only costs a cache miss.
 */
export class SqliteChangeFeed implements ChangeFeed {
  readonly #database: Database.Database
  readonly #listeners: Listeners
  #started = false

  constructor(database: Database.Database, options: { logger?: Logger } = {}) {
    this.#database = database
    this.#listeners = new Listeners(options.logger ?? SILENT_LOGGER)
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#database.function('tenantry_change', { deterministic: false }, (kind: unknown, id: unknown) => {
      const change = kind === 'token' ? { kind: 'token', tokenId: id } : { kind, tenantId: id }
      // Not from inside the statement: a listener may query the catalog.
      queueMicrotask(() => this.#listeners.deliver(parseChange(JSON.stringify(change))))
      return null
    })
    for (const { table, events, kind, column } of SQLITE_TRIGGERS) {
      for (const event of events) {
        const row = event === 'DELETE' ? 'OLD' : 'NEW'
        const name = `tenantry_change_${table}_${event.split(' ')[0]!.toLowerCase()}`
        this.#database.exec(`CREATE TEMP TRIGGER IF NOT EXISTS ${name} AFTER ${event} ON main.${table} BEGIN SELECT tenantry_change('${kind}', ${row}.${column}); END`)
      }
    }
    this.#started = true
  }

  subscribe(listener: ChangeListener): () => void {
    return this.#listeners.add(listener)
  }

  async publish(change: Exclude<CatalogChange, { kind: 'reset' }>): Promise<void> {
    queueMicrotask(() => this.#listeners.deliver(change))
  }

  async close(): Promise<void> {}
}
