import type { Kysely } from 'kysely'

/** How a tenant's rows are kept apart. See ARCHITECTURE.md. */
export type Isolation = 'row' | 'schema' | 'database'

/** The database software behind a data source. */
export type EngineName = 'sqlite' | 'postgres'

/** Where one tenant lives inside a data source: its isolation and the engine-specific locator. */
export interface EnginePlacement {
  readonly tenantId: string
  readonly isolation: Isolation
  /** File name, schema name or database name: always derived from the tenant id, never from input. */
  readonly locator: string
}

/** Who a handle connects as. */
export type EngineRole = 'app' | 'admin'

/** An open connection (or pool) to one tenant's data. */
export interface EngineHandle {
  /** The engine behind the handle, for migrations that must differ between engines. */
  readonly engine: EngineName
  /** Kysely on the tenant's data. The router wraps it before app code sees it. */
  readonly db: Kysely<any>
  /** The schema holding the tenant's tables (and migration table) where it is not the default one. */
  readonly schema?: string
  /**
   * The tenant's tables are shared with other tenants (row isolation): a migration applied
   * through one tenant's handle is applied for all of them.
   */
  readonly shared?: boolean
  /**
   * Runs after each migration, inside its transaction: row isolation turns the tables the
   * migration made into tenant-keyed, RLS-protected ones here.
   */
  afterEachMigration?(db: Kysely<any>): Promise<void>
  /**
   * Runs a multi-statement SQL script (a `.sql` migration) on `db`, which is this handle's
   * Kysely or a transaction of it, so the script joins that transaction.
   */
  execScript(db: Kysely<any>, script: string): Promise<void>
  /** Closes the connection(s). Kysely waits for a running query before it lets go. */
  close(): Promise<void>
}

/** A sealed, pre-migrated copy that new tenants are created from. */
export interface EngineTemplate {
  /** Identifies the migration set the template holds (a content hash). */
  readonly key: string
}

/**
 * One engine serving one data source. Every engine has the same few operations, so a
 * reader who knows one knows all.
 */
export interface DatabaseEngine {
  readonly name: EngineName
  /** The isolation kinds this engine offers on this data source. */
  readonly isolations: readonly Isolation[]
  /** The locator for a new tenant's data, derived from its id alone. */
  locatorFor(tenantId: string, isolation: Isolation): string
  /** Creates the tenant's empty storage. Fails if it exists. */
  create(placement: EnginePlacement): Promise<void>
  /**
   * Returns the template for `key`, building it with `migrate` when missing, or `undefined`
   * where this engine cannot clone for `isolation`: tenants are then created by replaying migrations.
   */
  ensureTemplate?(
    key: string,
    isolation: Isolation,
    migrate: (handle: EngineHandle) => Promise<void>,
  ): Promise<EngineTemplate | undefined>
  /** Creates the tenant's storage as a consistent copy of `template`. Fails if it exists. */
  createFromTemplate?(placement: EnginePlacement, template: EngineTemplate): Promise<void>
  /** Whether the tenant's storage exists. */
  exists(placement: EnginePlacement): Promise<boolean>
  /**
   * Opens the tenant's storage. Synchronous so that `tenantry.db()` is; engines that dial out
   * connect lazily. `app` (the default) is what app code gets: on engines with roles, a
   * least-privilege role that owns nothing. `admin` runs DDL: migrations and provisioning.
   */
  open(placement: EnginePlacement, role?: EngineRole): EngineHandle
  /** Removes the tenant's storage and any partial leftovers of a crashed create. Idempotent. */
  drop(placement: EnginePlacement): Promise<void>
  /** Releases engine-wide resources. */
  close(): Promise<void>
}
