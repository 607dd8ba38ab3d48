import pg from 'pg'
import type { Logger } from '../../logger.js'
import { IDENTIFIER_PATTERN } from '../../identifiers.js'
import { TenantryError } from '../../errors.js'
import type { EngineRole } from '../engine.js'

/** A login: a role's name and password. */
export interface PostgresLogin {
  name: string
  password: string
}

export interface PostgresConnectionOptions {
  /** The admin URL: its user owns tenant schemas and databases; its database holds schema and row tenants. */
  url: string
  /** The app role, which app code connects as. */
  appRole: PostgresLogin
  /** Connections in each shared pool (admin and app). */
  poolSize: number
  /**
   * Longest an admin transaction (`transaction`) waits for one lock, advisory locks included,
   * before it fails with `DATABASE_BUSY` and rolls back: a purge or a grant never hangs behind
   * a transaction left open elsewhere. @default 30000
   */
  adminLockTimeoutMs?: number
  logger: Logger
}

const ADMIN_LOCK_TIMEOUT_MS = 30_000

/** A row of `inspectIdleConnections`: what the next borrower of a pooled connection inherits. */
export interface IdleConnection {
  pid: number
  searchPath: string | undefined
  /** `I` idle, `T` inside a transaction, `E` inside an aborted one. */
  transactionStatus: string | null
}

/**
 * Every connection a Postgres data source opens: the two shared pools on its own database
 * (admin and app), pools on tenant databases, and one-off clients. The only place that
 * rewrites a connection URL (to another database or another login).
 */
export class PostgresConnection {
  /** The data source's database, as the admin. */
  readonly admin: pg.Pool
  /** The data source's database, as the app role. */
  readonly app: pg.Pool
  readonly #options: PostgresConnectionOptions

  constructor(options: PostgresConnectionOptions) {
    this.#options = options
    this.admin = this.pool(undefined, 'admin', options.poolSize)
    this.app = this.pool(undefined, 'app', options.poolSize)
  }

  /** The name of the data source's own database (the admin URL's). */
  get database(): string {
    return decodeURIComponent(new URL(this.#options.url).pathname.slice(1))
  }

  /**
   * The admin URL, moved to `database` (default: the data source's own) and logged in as
   * `login` (default: the admin).
   */
  url(options: { database?: string; login?: EngineRole | PostgresLogin } = {}): string {
    const url = new URL(this.#options.url)
    const login = options.login === 'app' ? this.#options.appRole : options.login === 'admin' ? undefined : options.login
    if (login) {
      url.username = login.name
      url.password = login.password
    }
    if (options.database !== undefined) {
      // Only names Tenantry built: a database name is a path segment here, and `/` or `?` would change the URL.
      if (!IDENTIFIER_PATTERN.test(options.database)) {
        throw new TenantryError('INVALID_IDENTIFIER', `Invalid Postgres database ${JSON.stringify(options.database)}`)
      }
      url.pathname = `/${options.database}`
    }
    return url.toString()
  }

  /**
   * A pool of its own on a tenant (or template) database, or on the data source's own when
   * `database` is `undefined`, logged in as `login`. The caller ends it.
   */
  pool(database: string | undefined, login: EngineRole | PostgresLogin, max: number): pg.Pool {
    const pool = new pg.Pool({ connectionString: this.url({ ...(database === undefined ? {} : { database }), login }), max })
    // An idle connection ended by the server (the tenant's database dropped WITH (FORCE), a restart) is an
    // 'error' event on the pool; unheard, Node would end the process. The pool replaces the connection.
    pool.on('error', (err) => this.#options.logger.warn({ err, database }, 'An idle Postgres connection was ended by the server'))
    // The pool hears its idle connections only: one checked out between two queries (a transaction
    // waiting on the app) that the server ends emits 'error' on the client alone. Its next query fails.
    pool.on('connect', (client) => client.on('error', (err) => this.#options.logger.warn({ err, database }, 'A Postgres connection in use was ended by the server')))
    return pool
  }

  /** Runs `fn` on one admin connection to `database`, or to the data source's own database when it is `undefined`. */
  async withClient<T>(database: string | undefined, fn: (client: pg.ClientBase) => Promise<T>): Promise<T> {
    if (database === undefined) {
      const client = await this.admin.connect()
      try {
        return await fn(client)
      } finally {
        client.release()
      }
    }
    const client = new pg.Client({ connectionString: this.url({ database }) })
    // Ended by the server between two of `fn`'s queries (its database dropped WITH (FORCE)): the next query fails.
    client.on('error', (err) => this.#options.logger.warn({ err, database }, 'An admin Postgres connection was ended by the server'))
    await client.connect()
    try {
      return await fn(client)
    } finally {
      await client.end()
    }
  }

  /** Read-only queries as the admin, in the data source's database or in `database`. */
  async query<R extends Record<string, unknown>>(text: string, values: unknown[] = [], database?: string): Promise<R[]> {
    if (database === undefined) return (await this.admin.query<R>(text, values)).rows
    return this.withClient(database, async (client) => (await client.query<R>(text, values)).rows)
  }

  /**
   * Runs `fn` in an admin transaction. With `lock`, the transaction first takes the advisory
   * lock of that name, which serialises it with every other holder across processes: Postgres
   * answers concurrent changes to one role or grant with "tuple concurrently updated". No lock
   * is waited for longer than `adminLockTimeoutMs` (`DATABASE_BUSY`).
   */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>, lock?: string): Promise<T> {
    const client = await this.admin.connect()
    const lockTimeoutMs = this.#options.adminLockTimeoutMs ?? ADMIN_LOCK_TIMEOUT_MS
    try {
      // One round trip: a parameterless multi-statement query goes over the simple protocol.
      await client.query(`BEGIN; SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`)
      if (lock !== undefined) await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [lock])
      const result = await fn(client)
      await client.query('COMMIT')
      return result
    } catch (error) {
      // The caller gets the transaction's own error; a failed rollback only ends the connection's part in it.
      await client.query('ROLLBACK').catch((err: unknown) => this.#options.logger.warn({ err }, 'Rolling back a Postgres admin transaction failed'))
      if ((error as { code?: unknown }).code === '55P03') {
        throw new TenantryError('DATABASE_BUSY', `Another session held a lock this change needs for more than ${lockTimeoutMs} ms; nothing was changed, retry when it is released`, {
          cause: error,
          details: { retryAfterSeconds: 1 },
        })
      }
      throw error
    } finally {
      client.release()
    }
  }

  /**
   * Borrows every idle connection of the app pool at once (so each is a different one) and
   * reports what the next borrower would inherit. Connections in use are left alone. Read-only.
   */
  async inspectIdleConnections(): Promise<IdleConnection[]> {
    const clients = await Promise.all(Array.from({ length: this.app.idleCount }, () => this.app.connect()))
    try {
      return await Promise.all(
        clients.map(async (client) => {
          // Read before querying: a query would change it. pg keeps it from the last ReadyForQuery.
          const transactionStatus = (client as pg.PoolClient & { getTransactionStatus(): string | null }).getTransactionStatus()
          const row = await client
            .query<{ pid: number; search_path: string }>(`select pg_backend_pid() as pid, current_setting('search_path') as search_path`)
            .then((r) => r.rows[0]!, () => undefined) // an aborted transaction answers nothing: that is the finding
          return { pid: row?.pid ?? (client as pg.PoolClient & { processID: number }).processID, searchPath: row?.search_path, transactionStatus }
        }),
      )
    } finally {
      for (const client of clients) client.release()
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.admin.end(), this.app.end()])
  }
}
