import { join } from 'node:path'
import { Catalog, type Isolation, type Tenantry, type TenantryConfig } from 'tenantry'
import { createTestDatabase, dropAppRoles, dropDatabases } from 'tenantry/testing'
import { openTenantry } from './fixtures.js'

/** A Tenantry home over a scratch Postgres database, and everything needed to remove it again. */
export interface PgScratch {
  tenantry: Tenantry
  dataSource: string
  /** The configuration it was opened with, but `home`: for another process to open the same home. */
  config: Omit<TenantryConfig, 'home'>
  /** The scratch database, as the admin (superuser). */
  adminUrl: string
  /** The same database as the app role `tenantry_app_<dataSource>` (trust auth: no password needed). */
  appUrl: string
  /** The same database as a schema- or database-isolated tenant's own role `t_<id>_app` (trust auth: no password needed). */
  tenantUrl(tenantId: string): string
  /** `url` with another database name (a database-isolated tenant's). */
  inDatabase(url: string, database: string): string
  reopen(config?: Omit<TenantryConfig, 'home'>): Promise<Tenantry>
  /** Closes Tenantry and drops the tenant databases, templates, the scratch database and the app role. */
  drop(): Promise<void>
}

export async function openPgScratch(
  serverUrl: string,
  home: string,
  dataSource: string,
  isolations: Isolation[],
  config: Omit<TenantryConfig, 'home'> = {},
): Promise<PgScratch> {
  const data = await createTestDatabase(serverUrl, 'tenantry_bench')
  const catalogUrl = join(home, 'catalog.db')
  const base: Omit<TenantryConfig, 'home'> = {
    catalogUrl,
    dataSources: [{ id: dataSource, engine: 'postgres', url: data.url, isolations }],
    defaults: { isolation: isolations[0]!, dataSource },
  }
  const inDatabase = (url: string, database: string) => {
    const u = new URL(url)
    u.pathname = `/${database}`
    return u.toString()
  }
  const app = new URL(data.url)
  app.username = `tenantry_app_${dataSource}`
  let tenantry: Tenantry
  try {
    tenantry = await openTenantry(home, { ...base, ...config })
  } catch (error) {
    await data.drop()
    throw error
  }
  const scratch: PgScratch = {
    get tenantry() {
      return tenantry
    },
    dataSource,
    config: { ...base, ...config },
    adminUrl: data.url,
    appUrl: app.toString(),
    tenantUrl(tenantId) {
      const u = new URL(data.url)
      u.username = `t_${tenantId}_app`
      return u.toString()
    },
    inDatabase,
    async reopen(more = {}) {
      await tenantry.close()
      tenantry = await openTenantry(home, { ...base, ...more })
      return tenantry
    },
    async drop() {
      await tenantry.close().catch(() => {})
      // Database-isolated tenants live outside the scratch database: drop them by the names the catalog holds.
      const catalog = Catalog.open({ url: catalogUrl })
      const tenants = await catalog.listTenants({ includePurged: true })
      await catalog.close()
      await dropDatabases(serverUrl, tenants.filter((t) => t.placement.isolation === 'database').map((t) => t.placement.locator))
      await data.drop()
      await dropAppRoles(serverUrl, [dataSource])
    },
  }
  return scratch
}
