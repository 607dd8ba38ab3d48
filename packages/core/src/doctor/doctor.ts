import type { TenantStatus } from '../catalog/catalog-schema.js'
import type { DoctorTenant, EngineCheck } from '../engines/engine.js'
import { describeDataSource } from '../engines/registry.js'
import type { Tenantry } from '../tenantry.js'

/** One finding of `tenantry doctor`. `fail` means an isolation guarantee does not hold (or cannot be checked). */
export interface DoctorCheck extends EngineCheck {
  /** The data source checked; the check's `name` starts with its id. */
  dataSource?: string
}

/** Tenants whose storage must exist: serving, paused, or deleted with their data kept. */
const STORED_STATUSES: readonly TenantStatus[] = ['ready', 'suspended', 'moving', 'deleted']

/**
 * Checks that what the catalog promises holds in the databases themselves, data source by
 * data source, with each engine's own checks (`DatabaseEngine.doctor`): for Postgres, that the
 * app role is least-privilege and owns nothing and that every tenant's storage exists and
 * belongs to the admin; for SQLite, that the directory matches the catalog. Read-only.
 */
export async function runDoctor(tenantry: Tenantry): Promise<DoctorCheck[]> {
  const [sources, tenants] = await Promise.all([
    tenantry.catalog.listDataSources(),
    tenantry.catalog.listTenants({ includePurged: true }),
  ])
  const checks: DoctorCheck[] = []
  for (const source of sources) {
    const add = ({ name, status, detail }: EngineCheck) => checks.push({ name: `${source.id}: ${name}`, status, detail, dataSource: source.id })
    const own = tenants
      .filter((t) => t.placement.dataSourceId === source.id)
      .map(
        (t): DoctorTenant => ({
          id: t.id,
          slug: t.slug,
          placement: { tenantId: t.id, isolation: t.placement.isolation, locator: t.placement.locator },
          stored: !t.purgedAt && STORED_STATUSES.includes(t.status),
          purged: !!t.purgedAt,
        }),
      )
    try {
      const engine = await tenantry.dataSources.engine(source.id)
      if (!engine.doctor) add({ name: 'engine', status: 'warn', detail: `no checks for engine ${source.engine}` })
      else for (const check of await engine.doctor({ tenants: own })) add(check)
    } catch (error) {
      // A data source that cannot be inspected proves nothing: that is a failure, not a pass.
      add({ name: 'reachable', status: 'fail', detail: `cannot inspect ${describeDataSource(source)}: ${(error as Error).message}` })
    }
  }
  return checks
}
