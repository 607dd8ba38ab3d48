import type { Logger } from '../../logger.js'
import type { EngineHandle, EngineRole, EngineTemplate, Isolation } from '../engine.js'
import type { PostgresConnection, PostgresLogin } from './postgres-connection.js'
import type { AppPrivilege } from './postgres-privileges.js'

/** A tenant as an isolation kind sees it: its id, and the storage name derived from it (`t_<id>`). */
export interface PostgresTenant {
  readonly id: string
  readonly name: string
}

/** What every isolation kind of one data source shares. */
export interface PostgresContext {
  readonly dataSourceId: string
  readonly connection: PostgresConnection
  /** The app role's name: the role app code connects as, granted use of every tenant's tables. */
  readonly appRole: string
  /** Connections in each tenant's own pool (every isolation kind). */
  readonly tenantPoolSize: number
  /**
   * The DML privileges tenant roles get on tenant tables (the data source's `appPrivileges`),
   * granted on create and after each migration.
   */
  readonly appPrivileges: readonly AppPrivilege[]
  /**
   * The tenant's own login role (`t_<id>_app`) with its password, derived from the secret
   * key so that nothing is stored: every tenant's app handles connect as it.
   */
  tenantLogin(tenant: PostgresTenant): PostgresLogin
  /** App handles run `tenantry.prepare` reads as named prepared statements (the data source's `preparedStatements`). */
  readonly preparedStatements: boolean
  readonly logger: Logger
}

/** A template database: the pre-migrated copy database-isolated tenants are created from. */
export interface PostgresTemplate extends EngineTemplate {
  readonly database: string
}

/**
 * One way of keeping Postgres tenants apart (stancl's managers, one per engine × isolation):
 * schema, database or row. The engine checks the placement, ensures the app role, and then
 * hands the tenant to the kind of its isolation: the kinds hold no `if` on isolation.
 */
export interface PostgresIsolationKind {
  readonly isolation: Isolation
  /** Creates the tenant's storage. Fails if it exists, except where tenants share it (row). */
  create(tenant: PostgresTenant): Promise<void>
  exists(tenant: PostgresTenant): Promise<boolean>
  open(tenant: PostgresTenant, role: EngineRole): EngineHandle
  /** Removes the tenant's storage (or its rows). Idempotent. */
  drop(tenant: PostgresTenant): Promise<void>
  /** Where the kind can clone a pre-migrated template (database isolation only). */
  readonly templates?: {
    ensure(key: string, migrate: (handle: EngineHandle) => Promise<void>): Promise<PostgresTemplate>
    createFrom(tenant: PostgresTenant, template: PostgresTemplate): Promise<void>
  }
  /**
   * Where existing storage can become a tenant's (`tenantry tenant adopt`): `existing` is a
   * schema of the data source's database (schema isolation, moved in) or a database on its
   * server (database isolation, copied in). `release` undoes it, dropping `created` tables.
   */
  readonly adoption?: {
    adopt(tenant: PostgresTenant, existing: string): Promise<void>
    release(tenant: PostgresTenant, existing: string, created: readonly string[]): Promise<void>
  }
  /** Where privileges can confine a per-tenant read-only role (schema and database isolation). */
  readonly readOnly?: {
    /** Grants `role` (which exists, committed) read access to the tenant; returns the database its URL must name, if not the data source's own. */
    grant(tenant: PostgresTenant, role: string): Promise<string | undefined>
    /** Drops every privilege granted to `role`, so that the role itself can be dropped. */
    revoke(tenant: PostgresTenant, role: string): Promise<void>
  }
}
