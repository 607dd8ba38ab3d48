import { TenantryError } from '../../errors.js'
import { SILENT_LOGGER, type Logger } from '../../logger.js'
import type { BoundedConfig } from '../../bounded.js'
import type {
  BoundedQueries,
  DatabaseEngine,
  EngineAdoption,
  EngineCheck,
  EngineDoctorContext,
  EngineHandle,
  EnginePlacement,
  EngineRole,
  EngineTemplate,
  Isolation,
  ReadOnlyAccess,
  SharedTables,
  EngineBackups,
} from '../engine.js'
import { postgresBoundedQueries } from './bounded-postgres.js'
import { postgresBackups } from './postgres-backup.js'
import { databaseIsolation } from './database-isolation.js'
import type { PostgresContext, PostgresIsolationKind, PostgresTemplate, PostgresTenant } from './isolation-kind.js'
import { PostgresConnection, type IdleConnection, type PostgresLogin } from './postgres-connection.js'
import { checkPostgres } from './postgres-doctor.js'
import { assertPostgresDataSourceId, readOnlyRoleName, tenantRoleName, tenantStorageName } from './postgres-names.js'
import { APP_PRIVILEGES, APP_ROLE_ATTRIBUTES, roleLock, upsertLoginRole, type AppPrivilege } from './postgres-privileges.js'
import { postgresReadOnlyAccess } from './read-only-access.js'
import { rowIsolation } from './row-isolation.js'
import { postgresStorage } from './postgres-storage.js'
import { schemaIsolation } from './schema-isolation.js'
import { postgresSharedTables } from './shared-tables.js'

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
  appRole: PostgresLogin
  /** Derives a stable secret for a purpose (the passwords of per-tenant roles and read-only roles). */
  deriveSecret: (purpose: string) => string
  /** @default ['schema', 'database', 'row'] */
  isolations?: Isolation[]
  /** Connections in each shared pool (admin and app, for schema tenants). @default 10 */
  poolSize?: number
  /** Connections in each tenant's own pool (every isolation: each tenant logs in as its own role). @default 2 */
  tenantPoolSize?: number
  /** The DML privileges tenant roles get on tenant tables. @default ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] */
  appPrivileges?: readonly AppPrivilege[]
  /** Deadlines of `tenantry.bounded` (the server's data API) on this data source's tenants. @default { statementTimeoutMs: 2000 } */
  bounded?: BoundedConfig
  /** Tenants' `tenantry.prepare` reads as named prepared statements, planned once per connection. @default true */
  preparedStatements?: boolean
  /** @default SILENT_LOGGER */
  logger?: Logger
}

/** What `test()` reads of the admin role. */
type AdminPrivileges = {
  rolsuper: boolean
  rolcreaterole: boolean
  rolcreatedb: boolean
  create_on_database: boolean
}

/** The admin's privileges the isolations need, each with the way to tell whether it is held. A superuser holds them all. */
function requiredPrivileges(isolations: readonly Isolation[]): Array<{ line: string; held(admin: AdminPrivileges): boolean }> {
  return [
    { line: 'CREATEROLE: the app role, per-tenant roles and read-only roles', held: (a) => a.rolcreaterole },
    ...(isolations.some((i) => i !== 'database')
      ? [{ line: 'CREATE on the database: a schema per tenant, or the shared row-isolation schema', held: (a: AdminPrivileges) => a.create_on_database }]
      : []),
    ...(isolations.includes('database') ? [{ line: 'CREATEDB: a database per tenant, and template databases', held: (a: AdminPrivileges) => a.rolcreatedb }] : []),
  ]
}

const KINDS: Record<Isolation, (context: PostgresContext) => PostgresIsolationKind> = {
  schema: schemaIsolation,
  database: databaseIsolation,
  row: rowIsolation,
}

/**
 * Postgres under schema isolation (a schema `t_<id>` per tenant in the data source's
 * database), database isolation (a database `t_<id>` per tenant, created from a pre-migrated
 * template database) and row isolation (shared tables, `tenant_id` and RLS). The engine
 * checks each placement once and hands it to the module of its isolation kind.
 */
export class PostgresEngine implements DatabaseEngine {
  readonly name = 'postgres' as const
  readonly isolations: readonly Isolation[]
  readonly requiredPrivileges: readonly string[]
  readonly readOnlyAccess: ReadOnlyAccess | undefined
  /** Measured, not enforced: see postgres-storage.ts. */
  readonly storage = postgresStorage(() => this.#context.connection)
  /** `tenantry.bounded`: a transaction with transaction-local `statement_timeout` and `lock_timeout`. */
  readonly boundedQueries: BoundedQueries
  /** Schema and database tenants with `pg_dump` and `pg_restore` (see postgres-backup.ts); row tenants go row by row. */
  readonly backups: EngineBackups
  /**
   * Existing storage adopted as a tenant's: a schema of this data source's database is moved in
   * (schema-adoption.ts), a database on its server is copied in (database-isolation.ts).
   */
  readonly adoption: EngineAdoption = {
    isolations: ['schema', 'database'],
    adopt: async (placement, existing) => {
      const { kind, tenant } = this.#resolve(placement)
      if (!kind.adoption) throw new TenantryError('UNSUPPORTED_PLACEMENT', `Postgres adopts schemas and databases, not ${kind.isolation} isolation`)
      await this.#ensureAppRole()
      await kind.adoption.adopt(tenant, existing)
    },
    release: async (placement, existing, created) => {
      const { kind, tenant } = this.#resolve(placement)
      await kind.adoption?.release(tenant, existing, created)
    },
  }
  /** App-level shared tables in the database's `public` schema (`migrations.shared`, shared-tables.ts). */
  readonly sharedTables: SharedTables
  readonly #options: PostgresEngineOptions
  readonly #context: PostgresContext
  readonly #kinds: ReadonlyMap<Isolation, PostgresIsolationKind>
  #roleReady: Promise<void> | undefined

  constructor(options: PostgresEngineOptions) {
    assertPostgresDataSourceId(options.id)
    this.#options = options
    this.isolations = options.isolations ?? ['schema', 'database', 'row']
    const logger = options.logger ?? SILENT_LOGGER
    const connection = new PostgresConnection({ url: options.url, appRole: options.appRole, poolSize: options.poolSize ?? 10, logger })
    this.#context = {
      dataSourceId: options.id,
      connection,
      appRole: options.appRole.name,
      tenantPoolSize: options.tenantPoolSize ?? 2,
      appPrivileges: options.appPrivileges ?? APP_PRIVILEGES,
      tenantLogin: (tenant) => ({ name: tenantRoleName(tenant.id), password: options.deriveSecret(`postgres-tenant-role:${tenant.id}`) }),
      preparedStatements: options.preparedStatements ?? true,
      logger,
    }
    this.#kinds = new Map(this.isolations.map((isolation) => [isolation, KINDS[isolation](this.#context)]))
    const readOnly = this.isolations.filter((isolation) => this.#kinds.get(isolation)!.readOnly)
    this.readOnlyAccess = readOnly.length
      ? postgresReadOnlyAccess({ context: this.#context, resolve: (placement) => this.#resolve(placement), isolations: readOnly, deriveSecret: options.deriveSecret })
      : undefined
    this.requiredPrivileges = requiredPrivileges(this.isolations).map((p) => p.line)
    this.boundedQueries = postgresBoundedQueries(options.bounded)
    this.sharedTables = postgresSharedTables(this.#context, () => this.#ensureAppRole())
    this.backups = postgresBackups(this.#context, async (placement) => {
      // A restore leaves the read-only role's grants out (it may be gone since the backup): they come back here if it exists.
      const [role] = await connection.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [readOnlyRoleName(placement.tenantId)])
      if (role && this.readOnlyAccess?.isolations.includes(placement.isolation)) await this.readOnlyAccess.grant(placement)
    })
  }

  locatorFor(tenantId: string, isolation: Isolation): string {
    this.#kind(isolation)
    return tenantStorageName(tenantId)
  }

  async create(placement: EnginePlacement): Promise<void> {
    const { kind, tenant } = this.#resolve(placement)
    await this.#ensureAppRole()
    await kind.create(tenant)
  }

  /** A schema cannot be cloned in Postgres short of replaying its DDL, which is what migrations are: templates are for database isolation. */
  async ensureTemplate(key: string, isolation: Isolation, migrate: (handle: EngineHandle) => Promise<void>): Promise<EngineTemplate | undefined> {
    const templates = this.#kind(isolation).templates
    if (!templates) return undefined
    await this.#ensureAppRole()
    return templates.ensure(key, migrate)
  }

  async createFromTemplate(placement: EnginePlacement, template: EngineTemplate): Promise<void> {
    const { kind, tenant } = this.#resolve(placement)
    if (!kind.templates) throw new TenantryError('UNSUPPORTED_PLACEMENT', `Postgres ${kind.isolation} isolation has no templates`)
    await kind.templates.createFrom(tenant, template as PostgresTemplate)
  }

  async exists(placement: EnginePlacement): Promise<boolean> {
    const { kind, tenant } = this.#resolve(placement)
    return kind.exists(tenant)
  }

  open(placement: EnginePlacement, role: EngineRole = 'app'): EngineHandle {
    const { kind, tenant } = this.#resolve(placement)
    return kind.open(tenant, role)
  }

  async drop(placement: EnginePlacement): Promise<void> {
    const { kind, tenant } = this.#resolve(placement)
    // The read-only role holds privileges on the storage: it goes first, or neither could be dropped.
    if (kind.readOnly) await this.readOnlyAccess?.revoke(placement)
    await kind.drop(tenant)
  }

  async close(): Promise<void> {
    await this.#context.connection.close()
  }

  /**
   * Connects as the admin and checks it holds every privilege in `requiredPrivileges`; rejects
   * with `INVALID_CONFIG` naming each one missing. A superuser is not needed: `LOGIN CREATEDB
   * CREATEROLE` and `CREATE` on the database, as managed Postgres services give, are enough.
   */
  async test(): Promise<string> {
    const [row] = await this.#context.connection.query<AdminPrivileges & { version: string; admin: string }>(
      `select current_setting('server_version') as version, current_user as admin, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
         has_database_privilege(current_database(), 'CREATE') as create_on_database
       from pg_roles r where r.rolname = current_user`,
    )
    const missing = requiredPrivileges(this.isolations).filter((p) => !row!.rolsuper && !p.held(row!))
    if (missing.length) {
      throw new TenantryError('INVALID_CONFIG', `its admin role ${row!.admin} lacks ${missing.map((p) => p.line).join('; ')}`)
    }
    return `PostgreSQL ${row!.version}`
  }

  doctor(context: EngineDoctorContext): Promise<EngineCheck[]> {
    return checkPostgres(this.#context, context)
  }

  /** The app role's name: `tenantry_app_<data source id>`. */
  get appRoleName(): string {
    return this.#context.appRole
  }

  /**
   * @internal For isolation tests. What the next borrower of each idle connection of the
   * shared app pool would inherit: the backend, its `search_path`, and whether a transaction
   * is still open. Read-only.
   */
  inspectIdleConnections(): Promise<IdleConnection[]> {
    return this.#context.connection.inspectIdleConnections()
  }

  /** Creates the app role once, and keeps its password in step with the key it derives from. */
  #ensureAppRole(): Promise<void> {
    this.#roleReady ??= (async () => {
      const { name, password } = this.#options.appRole
      await this.#context.connection.transaction((client) => upsertLoginRole(client, name, APP_ROLE_ATTRIBUTES, password), roleLock(name))
    })().catch((error: unknown) => {
      this.#roleReady = undefined
      throw error
    })
    return this.#roleReady
  }

  /** The one check of a placement: an offered isolation, and the locator `locatorFor` derives from the tenant id. */
  #resolve(placement: EnginePlacement): { kind: PostgresIsolationKind; tenant: PostgresTenant } {
    const kind = this.#kind(placement.isolation)
    if (placement.locator !== tenantStorageName(placement.tenantId)) {
      throw new TenantryError('INVALID_IDENTIFIER', `Invalid Postgres locator ${JSON.stringify(placement.locator)}`)
    }
    return { kind, tenant: { id: placement.tenantId, name: placement.locator } }
  }

  #kind(isolation: Isolation): PostgresIsolationKind {
    const kind = this.#kinds.get(isolation)
    if (!kind) {
      throw new TenantryError(
        'UNSUPPORTED_PLACEMENT',
        `This Postgres data source offers ${this.isolations.join(' and ')} isolation, not ${isolation}`,
      )
    }
    return kind
  }
}
