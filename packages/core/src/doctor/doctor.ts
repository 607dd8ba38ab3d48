import type { EngineCheck } from '../engines/engine.js'
import { describeDataSource } from '../engines/registry.js'
import { checkSearchIndexes, SEARCH_INDEX_STEP_PREFIX } from '../search-index/search-index.js'
import type { Tenantry } from '../tenantry.js'
import { checkHalfMade, doctorTenants, type HalfMadeOptions } from './repair.js'

/** One finding of `tenantry doctor`. `fail` means an isolation guarantee does not hold (or cannot be checked). */
export interface DoctorCheck extends EngineCheck {
  /** The data source checked; the check's `name` starts with its id. */
  dataSource?: string
}

/**
 * Checks that what the catalog promises holds in the databases themselves, data source by
 * data source, with each engine's own checks (`DatabaseEngine.doctor`): for Postgres, that the
 * app role is least-privilege and owns nothing and that every tenant's storage exists and
 * belongs to the admin; for SQLite, that the directory matches the catalog. Then, that no
 * lifecycle operation was cut short (`checkHalfMade`; `options.graceMs` as there). Read-only.
 */
export async function runDoctor(tenantry: Tenantry, options: HalfMadeOptions = {}): Promise<DoctorCheck[]> {
  const [sources, tenants] = await Promise.all([
    tenantry.catalog.listDataSources(),
    tenantry.catalog.listTenants({ includePurged: true }),
  ])
  const checks: DoctorCheck[] = []
  for (const source of sources) {
    const add = ({ name, status, detail }: EngineCheck) => checks.push({ name: `${source.id}: ${name}`, status, detail, dataSource: source.id })
    const own = doctorTenants(tenants.filter((t) => t.placement.dataSourceId === source.id))
    try {
      const engine = await tenantry.dataSources.engine(source.id)
      if (!engine.doctor) add({ name: 'engine', status: 'warn', detail: `no checks for engine ${source.engine}` })
      else for (const check of await engine.doctor({ tenants: own })) add(check)
      // Searchable collections on Postgres want pg_trgm: without it, search scans.
      const sample = own.find((t) => t.stored)
      if (source.engine === 'postgres' && sample && tenantry.migrations.derived.some((d) => d.name.startsWith(SEARCH_INDEX_STEP_PREFIX))) {
        const handle = engine.open(sample.placement, 'admin')
        try {
          add(await checkSearchIndexes(handle))
        } finally {
          await handle.close()
        }
      }
    } catch (error) {
      // A data source that cannot be inspected proves nothing: that is a failure, not a pass.
      add({ name: 'reachable', status: 'fail', detail: `cannot inspect ${describeDataSource(source)}: ${(error as Error).message}` })
    }
  }
  checks.push(...(await checkHalfMade(tenantry, options)))
  return checks
}
