import { Kysely, WithSchemaPlugin, sql } from 'kysely'
import pg from 'pg'
import { TenantryError } from '../../errors.js'
import { assertTenantId } from '../../identifiers.js'
import type {
  DatabaseEngine,
  EngineHandle,
  EnginePlacement,
  EngineRole,
  EngineTemplate,
  Isolation,
} from '../engine.js'
import { ROW_SCHEMA, tenantizeRowSchema } from './row-isolation.js'
import { ScopedPostgresDialect } from './scoped-postgres-dialect.js'
import { TenantRowsPlugin } from './tenant-rows-plugin.js'

export interface PostgresEngineOptions {
  /** The data source id; it names the app role and templates. */
  id: string
  /**
   * The admin connection: it owns tenant schemas and databases and runs DDL and migrations
   * (seed 003's migration master). Its database holds schema-isolated tenants.
   */
  url: string
  /**
   * The app role: owns nothing, cannot create, alter or drop, cannot bypass RLS. Created
   * and kept in step by Tenantry (`CREATE ROLE … LOGIN NOBYPASSRLS`).
   */
  appRole: { name: string; password: string }
  /** Derives a stable secret for a purpose (the passwords of per-tenant read-only roles). */
  deriveSecret: (purpose: string) => string
  /** @default ['schema', 'database', 'row'] */
  isolations?: Isolation[]
  /** Connections in each shared pool (admin and app, for schema tenants). @default 10 */
  poolSize?: number
  /** Connections in each database-isolated tenant's own pool. @default 2 */
  tenantPoolSize?: number
}

const NAME_PATTERN = /^[a-z][a-z0-9_]{0,62}$/

/** Quotes an identifier Tenantry built itself, after checking it against the allowlist again. */
export function quoteIdentifier(name: string): string {
  if (!NAME_PATTERN.test(name)) throw new TenantryError('INVALID_IDENTIFIER', `Invalid Postgres identifier ${JSON.stringify(name)}`)
  return `"${name}"`
}

interface PostgresTemplate extends EngineTemplate {
  readonly database: string
}

/**
 * Postgres under schema isolation (a schema `t_<id>` per tenant in the data source's
 * database) and database isolation (a database `t_<id>` per tenant, created from a
 * pre-migrated template database).
 */
export class PostgresEngine implements DatabaseEngine {
  readonly name = 'postgres' as const
  readonly isolations: readonly Isolation[]
  readonly #options: PostgresEngineOptions
  readonly #adminPool: pg.Pool
  readonly #appPool: pg.Pool
  #roleReady: Promise<void> | undefined

  constructor(options: PostgresEngineOptions) {
    quoteIdentifier(options.appRole.name)
    this.#options = options
    this.isolations = options.isolations ?? ['schema', 'database', 'row']
    this.#adminPool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10 })
    this.#appPool = new pg.Pool({ connectionString: this.#appUrl(), max: options.poolSize ?? 10 })
  }

  locatorFor(tenantId: string, isolation: Isolation): string {
    this.#assertIsolation(isolation)
    assertTenantId(tenantId)
    return `t_${tenantId}`
  }

  async create(placement: EnginePlacement): Promise<void> {
    await this.#ensureAppRole()
    const name = this.#locator(placement)
    if (placement.isolation === 'row') {
      // Row tenants share one schema; a tenant has nothing of its own to create.
      await this.#adminTransaction(async (client) => {
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tenantry-rows:${this.#options.id}`])
        await this.#createSchema(client, quoteIdentifier(ROW_SCHEMA), true)
      })
      return
    }
    if (placement.isolation === 'schema') {
      await this.#adminTransaction((client) => this.#createSchema(client, name, false))
      return
    }
    await this.#createDatabase(name)
  }

  /** A schema the admin owns, whose tables (made later, by migrations) the app role may use but never alter. */
  async #createSchema(client: pg.PoolClient, name: string, ifNotExists: boolean): Promise<void> {
    await client.query(`CREATE SCHEMA ${ifNotExists ? 'IF NOT EXISTS ' : ''}${name}`)
    await client.query(`GRANT USAGE ON SCHEMA ${name} TO ${this.#app()}`)
    await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${name} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${this.#app()}`)
    await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${name} GRANT USAGE, SELECT ON SEQUENCES TO ${this.#app()}`)
  }

  async ensureTemplate(
    key: string,
    isolation: Isolation,
    migrate: (handle: EngineHandle) => Promise<void>,
  ): Promise<PostgresTemplate | undefined> {
    // A schema cannot be cloned in Postgres short of replaying its DDL, which is what migrations are.
    if (isolation !== 'database') return undefined
    await this.#ensureAppRole()
    const database = `tpl_${this.#options.id}_${key.slice(0, 16)}`
    const existing = await this.#adminPool.query('SELECT datistemplate FROM pg_database WHERE datname = $1', [database])
    if (existing.rows[0]?.datistemplate) return { key, database }
    if (existing.rowCount) await this.#dropDatabase(database) // a build that died half-way
    await this.#createDatabase(quoteIdentifier(database))
    const handle = this.#openDatabase(database, 'admin', 1)
    try {
      await migrate(handle)
    } finally {
      await handle.close()
    }
    await this.#adminPool.query(`ALTER DATABASE ${quoteIdentifier(database)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`)
    return { key, database }
  }

  async createFromTemplate(placement: EnginePlacement, template: EngineTemplate): Promise<void> {
    const source = quoteIdentifier((template as PostgresTemplate).database)
    await this.#adminPool.query(`CREATE DATABASE ${this.#locator(placement)} TEMPLATE ${source}`)
    await this.#adminPool.query(`REVOKE CONNECT ON DATABASE ${this.#locator(placement)} FROM PUBLIC`)
    await this.#adminPool.query(`GRANT CONNECT ON DATABASE ${this.#locator(placement)} TO ${this.#app()}`)
  }

  async exists(placement: EnginePlacement): Promise<boolean> {
    this.#locator(placement)
    const [query, name] =
      placement.isolation === 'database'
        ? ['SELECT 1 FROM pg_database WHERE datname = $1', placement.locator]
        : ['SELECT 1 FROM pg_namespace WHERE nspname = $1', placement.isolation === 'row' ? ROW_SCHEMA : placement.locator]
    return ((await this.#adminPool.query(query, [name])).rowCount ?? 0) > 0
  }

  open(placement: EnginePlacement, role: EngineRole = 'app'): EngineHandle {
    const name = placement.locator
    this.#locator(placement)
    if (placement.isolation === 'database') return this.#openDatabase(name, role, this.#options.tenantPoolSize ?? 2)
    if (placement.isolation === 'row') return this.#openRows(placement.tenantId, role)
    const pool = role === 'admin' ? this.#adminPool : this.#appPool
    const db = new Kysely<any>({ dialect: new ScopedPostgresDialect({ pool, schema: name, ownsPool: false }) }).withPlugin(
      new WithSchemaPlugin(name),
    )
    return { engine: 'postgres', db, schema: name, execScript, close: () => db.destroy() }
  }

  async drop(placement: EnginePlacement): Promise<void> {
    const name = this.#locator(placement)
    if (placement.isolation === 'row') return this.#deleteRows(placement.tenantId)
    await this.revokeReadOnly(placement)
    if (placement.isolation === 'schema') await this.#adminPool.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`)
    else await this.#dropDatabase(placement.locator)
  }

  async close(): Promise<void> {
    await Promise.all([this.#adminPool.end(), this.#appPool.end()])
  }

  /**
   * A login role that can read one tenant and nothing else (seed 003's limited user), and its
   * connection URL for `psql` or a BI tool: `SELECT` on the tenant's tables (now and after
   * later migrations), no write, no DDL, no other schema or database. Offered for schema and
   * database isolation only, where privileges confine it; row isolation would rest on a
   * setting the SQL itself could change. Calling it again returns the same URL.
   */
  async grantReadOnly(placement: EnginePlacement): Promise<{ role: string; url: string }> {
    const name = this.#locator(placement)
    if (placement.isolation === 'row') {
      throw new TenantryError('UNSUPPORTED_PLACEMENT', 'Row-isolated tenants get no raw database access: their boundary is a setting SQL could change')
    }
    const role = `${placement.locator}_ro`
    const password = this.#options.deriveSecret(`postgres-readonly:${placement.tenantId}`)
    const quotedRole = quoteIdentifier(role)
    await this.#adminTransaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tenantry-role:${role}`])
      const exists = (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount
      const attributes = `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD '${password}'`
      await client.query(`${exists ? 'ALTER' : 'CREATE'} ROLE ${quotedRole} WITH ${attributes}`)
      // Seatbelt, not the boundary (the user can unset it): the boundary is having SELECT only.
      await client.query(`ALTER ROLE ${quotedRole} SET default_transaction_read_only = on`)
      if (placement.isolation === 'schema') {
        await client.query(`ALTER ROLE ${quotedRole} SET search_path = ${name}`)
        await client.query(`GRANT USAGE ON SCHEMA ${name} TO ${quotedRole}`)
        await client.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${name} TO ${quotedRole}`)
        await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${name} GRANT SELECT ON TABLES TO ${quotedRole}`)
      }
    })
    const url = new URL(this.#options.url)
    url.username = role
    url.password = password
    if (placement.isolation === 'database') {
      await this.#adminPool.query(`GRANT CONNECT ON DATABASE ${name} TO ${quotedRole}`)
      // Temporary tables are writes too, and cost the server: not for a read-only role.
      await this.#adminPool.query(`REVOKE TEMPORARY ON DATABASE ${name} FROM PUBLIC`)
      await this.#inDatabase(placement.locator, async (client) => {
        await client.query(`GRANT USAGE ON SCHEMA public TO ${quotedRole}`)
        await client.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${quotedRole}`)
        await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ${quotedRole}`)
      })
      url.pathname = `/${placement.locator}`
    }
    return { role, url: url.toString() }
  }

  /** Removes the tenant's read-only role and everything granted to it. Idempotent. */
  async revokeReadOnly(placement: EnginePlacement): Promise<void> {
    const name = this.#locator(placement)
    const role = `${placement.locator}_ro`
    if (!(await this.#adminPool.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount) return
    const quotedRole = quoteIdentifier(role)
    // Privileges live per database: drop them where they were granted, then the role.
    if (placement.isolation === 'database') {
      if (await this.exists(placement)) await this.#inDatabase(placement.locator, (client) => client.query(`DROP OWNED BY ${quotedRole}`).then(() => {}))
      await this.#adminPool.query(`REVOKE ALL ON DATABASE ${name} FROM ${quotedRole}`).catch(() => {})
    } else {
      await this.#adminPool.query(`DROP OWNED BY ${quotedRole}`)
    }
    await this.#adminPool.query(`DROP ROLE ${quotedRole}`)
  }

  async #inDatabase(database: string, fn: (client: pg.Client) => Promise<void>): Promise<void> {
    const url = new URL(this.#options.url)
    url.pathname = `/${quoteIdentifier(database).slice(1, -1)}`
    const client = new pg.Client({ connectionString: url.toString() })
    await client.connect()
    try {
      await fn(client)
    } finally {
      await client.end()
    }
  }

  /** Checks the admin connection; returns the server version. */
  async test(): Promise<{ version: string }> {
    const result = await this.#adminPool.query<{ version: string }>('SHOW server_version')
    return { version: result.rows[0]!.version }
  }

  /** The app role's name: `tenantry_app_<data source id>`. */
  get appRoleName(): string {
    return this.#options.appRole.name
  }

  /**
   * @internal For isolation tests and `tenantry doctor`. Borrows every idle connection of the
   * shared app pool at once (so each is a different one) and reports what the next borrower
   * would inherit: the backend, its `search_path`, and whether a transaction is still open
   * (`I` idle, `T` open, `E` aborted). Connections in use are left alone. Read-only.
   */
  async inspectIdleConnections(): Promise<Array<{ pid: number; searchPath: string | undefined; transactionStatus: string | null }>> {
    const clients = await Promise.all(Array.from({ length: this.#appPool.idleCount }, () => this.#appPool.connect()))
    try {
      return await Promise.all(
        clients.map(async (client) => {
          // Read before querying: a query would change it. pg keeps it from the last ReadyForQuery.
          const transactionStatus = (client as pg.PoolClient & { getTransactionStatus(): string | null }).getTransactionStatus()
          const row = await client
            .query<{ pid: number; search_path: string }>(`select pg_backend_pid() as pid, current_setting('search_path') as search_path`)
            .then((r) => r.rows[0]!, () => undefined) // an aborted transaction answers nothing
          return { pid: row?.pid ?? (client as pg.PoolClient & { processID: number }).processID, searchPath: row?.search_path, transactionStatus }
        }),
      )
    } finally {
      for (const client of clients) client.release()
    }
  }

  /**
   * @internal Read-only catalog queries for `tenantry doctor`, as the admin: in the data
   * source's own database, or in `database` (a database-isolated tenant) on a one-off connection.
   */
  async inspect<R extends Record<string, unknown>>(text: string, values: unknown[] = [], database?: string): Promise<R[]> {
    if (database === undefined) return (await this.#adminPool.query<R>(text, values)).rows
    const url = new URL(this.#options.url)
    url.pathname = `/${quoteIdentifier(database).slice(1, -1)}`
    const client = new pg.Client({ connectionString: url.toString() })
    await client.connect()
    try {
      return (await client.query<R>(text, values)).rows
    } finally {
      await client.end()
    }
  }

  /**
   * A row tenant's handle: the shared schema, with the tenant set per transaction for RLS and
   * the tenant predicate added to every query. The admin handle migrates the shared tables.
   */
  #openRows(tenantId: string, role: EngineRole): EngineHandle {
    if (role === 'admin') {
      const db = new Kysely<any>({
        dialect: new ScopedPostgresDialect({ pool: this.#adminPool, schema: ROW_SCHEMA, ownsPool: false }),
      }).withPlugin(new WithSchemaPlugin(ROW_SCHEMA))
      return { engine: 'postgres', db, schema: ROW_SCHEMA, shared: true, execScript, afterEachMigration: tenantizeRowSchema, close: () => db.destroy() }
    }
    const db = new Kysely<any>({
      dialect: new ScopedPostgresDialect({ pool: this.#appPool, schema: ROW_SCHEMA, tenantId, ownsPool: false }),
    })
      .withPlugin(new TenantRowsPlugin(tenantId))
      .withPlugin(new WithSchemaPlugin(ROW_SCHEMA))
    return { engine: 'postgres', db, schema: ROW_SCHEMA, shared: true, execScript, close: () => db.destroy() }
  }

  /** Removes one row tenant's rows from every shared table, referencing tables first. */
  async #deleteRows(tenantId: string): Promise<void> {
    await this.#adminTransaction(async (client) => {
      const tables = await client.query<{ name: string; refs: string[] }>(
        `SELECT c.relname AS name,
           array(SELECT r.relname FROM pg_constraint f JOIN pg_class r ON r.oid = f.conrelid
                 WHERE f.contype = 'f' AND f.confrelid = c.oid AND f.conrelid <> c.oid)::text[] AS refs
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`,
        [ROW_SCHEMA],
      )
      const pending = new Map(tables.rows.map((t) => [t.name, t.refs]))
      while (pending.size > 0) {
        const ready = [...pending].filter(([, refs]) => refs.every((r) => !pending.has(r)))
        if (ready.length === 0) throw new TenantryError('INTERNAL', 'Cyclic foreign keys between row-isolated tables')
        for (const [table] of ready) {
          await client.query(`DELETE FROM ${quoteIdentifier(ROW_SCHEMA)}."${table.replace(/"/g, '""')}" WHERE tenant_id = $1`, [tenantId])
          pending.delete(table)
        }
      }
    })
  }

  #openDatabase(database: string, role: EngineRole, max: number): EngineHandle {
    const url = new URL(role === 'admin' ? this.#options.url : this.#appUrl())
    url.pathname = `/${database}`
    const db = new Kysely<any>({ dialect: new ScopedPostgresDialect({ pool: new pg.Pool({ connectionString: url.toString(), max }) }) })
    return { engine: 'postgres', db, execScript, close: () => db.destroy() }
  }

  async #createDatabase(quoted: string): Promise<void> {
    await this.#adminPool.query(`CREATE DATABASE ${quoted}`)
    await this.#adminPool.query(`REVOKE CONNECT ON DATABASE ${quoted} FROM PUBLIC`)
    await this.#adminPool.query(`GRANT CONNECT ON DATABASE ${quoted} TO ${this.#app()}`)
    const url = new URL(this.#options.url)
    url.pathname = `/${quoted.slice(1, -1)}`
    const client = new pg.Client({ connectionString: url.toString() })
    await client.connect()
    try {
      // Default privileges live in each database, and a template passes them on to its copies.
      await client.query(`GRANT USAGE ON SCHEMA public TO ${this.#app()}`)
      await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${this.#app()}`)
      await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${this.#app()}`)
    } finally {
      await client.end()
    }
  }

  async #dropDatabase(database: string): Promise<void> {
    await this.#adminPool.query(`ALTER DATABASE ${quoteIdentifier(database)} WITH IS_TEMPLATE false`).catch(() => {})
    await this.#adminPool.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(database)} WITH (FORCE)`)
  }

  /** Creates the app role once, and keeps its password in step with the key it derives from. */
  #ensureAppRole(): Promise<void> {
    this.#roleReady ??= (async () => {
      const { name, password } = this.#options.appRole
      const literal = `'${password.replace(/'/g, "''")}'`
      await this.#adminTransaction(async (client) => {
        // Serialises role creation across processes sharing this server.
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tenantry-role:${name}`])
        const exists = (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rowCount
        const attributes = `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ${literal}`
        await client.query(`${exists ? 'ALTER' : 'CREATE'} ROLE ${quoteIdentifier(name)} WITH ${attributes}`)
      })
    })().catch((error: unknown) => {
      this.#roleReady = undefined
      throw error
    })
    return this.#roleReady
  }

  async #adminTransaction(fn: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    const client = await this.#adminPool.connect()
    try {
      await client.query('BEGIN')
      await fn(client)
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    } finally {
      client.release()
    }
  }

  #appUrl(): string {
    const url = new URL(this.#options.url)
    url.username = this.#options.appRole.name
    url.password = this.#options.appRole.password
    return url.toString()
  }

  #app(): string {
    return quoteIdentifier(this.#options.appRole.name)
  }

  #locator(placement: EnginePlacement): string {
    this.#assertIsolation(placement.isolation)
    if (placement.locator !== `t_${placement.tenantId}`) {
      throw new TenantryError('INVALID_IDENTIFIER', `Invalid Postgres locator ${JSON.stringify(placement.locator)}`)
    }
    assertTenantId(placement.tenantId)
    return quoteIdentifier(placement.locator)
  }

  #assertIsolation(isolation: Isolation): void {
    if (!this.isolations.includes(isolation)) {
      throw new TenantryError(
        'UNSUPPORTED_PLACEMENT',
        `This Postgres data source offers ${this.isolations.join(' and ')} isolation, not ${isolation}`,
      )
    }
  }
}

/** A `.sql` migration runs as one simple-protocol query on the transaction's connection. */
async function execScript(db: Kysely<any>, script: string): Promise<void> {
  await sql.raw(script).execute(db)
}
