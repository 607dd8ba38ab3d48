import { existsSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import type { EngineCheck, EngineDoctorContext } from '../engine.js'
import { isTenantFileName } from './sqlite-names.js'

/** `tenantry doctor` on a SQLite data source: the directory exists and holds exactly the catalog's tenant files. Read-only. */
export async function checkSqlite(directory: string, { tenants }: EngineDoctorContext): Promise<EngineCheck[]> {
  const stored = tenants.filter((t) => t.stored)
  if (!existsSync(directory)) {
    // The engine creates it on the first tenant; missing with tenants means their data is gone.
    return [{ name: 'directory', status: stored.length ? 'fail' : 'warn', detail: `${directory} does not exist${stored.length ? '' : ' yet (created with the first tenant)'}` }]
  }
  const files = new Set((await readdir(directory)).filter(isTenantFileName))
  const missing = stored.filter((t) => !files.has(t.placement.locator))
  // A purged tenant's file left behind is stray too: nothing routes to it, yet it holds someone's data.
  const known = new Set(tenants.filter((t) => !t.purged).map((t) => t.placement.locator))
  const stray = [...files].filter((name) => !known.has(name)).sort()
  return [
    { name: 'directory', status: 'ok', detail: directory },
    {
      name: 'tenant files',
      status: missing.length ? 'fail' : 'ok',
      detail: missing.length ? `missing: ${missing.map((t) => `${t.placement.locator} (${t.slug})`).join(', ')}` : `${stored.length} tenant file(s) present`,
    },
    { name: 'stray files', status: stray.length ? 'warn' : 'ok', detail: stray.length ? `tenant files with no catalog row: ${stray.join(', ')}` : 'none' },
  ]
}
