import type { Compilable, Kysely } from 'kysely'
import { currentTenant } from '../context.js'
import { NoTenantError, TenantryError } from '../errors.js'
import type { BoundedQueryOptions } from '../engines/engine.js'
import type { Logger } from '../logger.js'
import type { PreparedQuery } from '../router/prepared-query.js'
import { Collection } from './collection.js'
import { parseCollections, type CollectionConfig } from './declaration.js'
import { CollectionRepository, type CollectionRunner } from './repository.js'
import { TenantCollection } from './tenant-collection.js'

/** What `Collections` needs of a `Tenantry`: passed as functions, so this module stays below it. */
export interface CollectionsHost {
  /** The config's opaque `server` block, whose `collections` are the declarations. */
  server: Record<string, unknown> | undefined
  bounded<T>(fn: (db: Kysely<any>) => Promise<T>, options: BoundedQueryOptions): Promise<T>
  db(): Kysely<any>
  /** `tenantry.prepare`. */
  prepare<P, O>(build: (db: Kysely<any>, params: P) => Compilable<O>): PreparedQuery<P, O>
  /** The engine name of tenant `id`. */
  engineOf(tenantId: string): Promise<string>
  /** The tenant's own data API deadline (`tenantry.limits`), if it has one. */
  ownStatementTimeoutMs(tenantId: string): Promise<number | undefined>
  logger: Logger
}

/**
 * The declared collections of a Tenantry instance, behind `tenantry.collection(name)`: the
 * declarations are parsed strictly on first use (`INVALID_CONFIG` names the mistake), and each
 * call runs in the tenant in context under the deadline the data API would give it (the
 * tenant's own in the catalog, else `server.dataApi.tenants.<slug>.statementTimeoutMs`, else the
 * data source's `bounded` default).
 */
export class Collections {
  readonly #host: CollectionsHost
  #declared: Record<string, CollectionConfig> | undefined
  readonly #repositories = new Map<string, CollectionRepository>()

  constructor(host: CollectionsHost) {
    this.#host = host
  }

  /** The declarations, parsed (`table` resolved, defaults filled). */
  declarations(): Record<string, CollectionConfig> {
    this.#declared ??= parseCollections(this.#host.server?.collections)
    return this.#declared
  }

  /** The repository of collection `name` (shared with the data API), or `NOT_FOUND`. */
  repository(name: string): CollectionRepository {
    let repository = this.#repositories.get(name)
    if (!repository) {
      const declaration = Object.hasOwn(this.declarations(), name) ? this.declarations()[name] : undefined
      if (!declaration) throw new TenantryError('NOT_FOUND', `No collection ${JSON.stringify(name)} is declared in server.collections`)
      repository = new CollectionRepository(new Collection(name, declaration))
      this.#repositories.set(name, repository)
    }
    return repository
  }

  get<Row extends Record<string, unknown>, Create>(name: string): TenantCollection<Row, Create> {
    return new TenantCollection<Row, Create>(this.repository(name), () => this.#runner())
  }

  /** The in-process runner: the tenant in context, or `NoTenantError`. */
  #runner(): CollectionRunner {
    const tenant = currentTenant()
    if (!tenant) throw new NoTenantError()
    const host = this.#host
    const configured = () => {
      const dataApi = host.server?.dataApi as { tenants?: Record<string, { statementTimeoutMs?: unknown }> } | undefined
      const ms = dataApi?.tenants?.[tenant.slug]?.statementTimeoutMs
      return typeof ms === 'number' ? ms : undefined
    }
    return {
      bounded: async (fn, readOnly) => {
        const statementTimeoutMs = (await host.ownStatementTimeoutMs(tenant.id)) ?? configured()
        return host.bounded(fn, { readOnly, ...(statementTimeoutMs ? { statementTimeoutMs } : {}) })
      },
      readOne: (build, params) => host.prepare(build).executeTakeFirst(params) as Promise<Record<string, unknown> | undefined>,
      engine: () => host.engineOf(tenant.id),
      warn: (details, message) => host.logger.warn({ ...details, tenantId: tenant.id }, message),
    }
  }
}
