import { existsSync } from 'node:fs'
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { EngineCheck, EngineDoctorContext } from '../engine.js'
import { isTenantFileName, isStagingFileName } from './sqlite-names.js'

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
    ...(await stagingCheck(directory, tenants)),
  ]
}

/**
 * Staging files (`<tenant file>.creating`) of creates that cannot finish them: the tenant is
 * not in the catalog, or not being created. A crash between writing one and publishing it
 * leaves it; a create that retries removes its own, but nothing else ever would.
 */
async function strayStagingFiles(directory: string, tenants: EngineDoctorContext['tenants'], creating?: ReadonlySet<string>): Promise<string[]> {
  if (!existsSync(directory)) return []
  const owners = new Map(tenants.map((t) => [t.placement.locator, t]))
  return (await readdir(directory))
    .filter(isStagingFileName)
    .filter((name) => {
      const owner = owners.get(name.slice(0, -'.creating'.length))
      return !owner || owner.purged || (creating ? !creating.has(owner.id) : owner.stored)
    })
    .sort()
}

async function stagingCheck(directory: string, tenants: EngineDoctorContext['tenants']): Promise<EngineCheck[]> {
  const stray = await strayStagingFiles(directory, tenants)
  return [
    {
      name: 'staging files',
      status: stray.length ? 'warn' : 'ok',
      detail: stray.length ? `left by interrupted creates: ${stray.join(', ')} (tenantry doctor --fix removes them)` : 'none',
    },
  ]
}

/** Removes the staging files no running create owns (see `DatabaseEngine.removeLeftovers`). */
export async function removeSqliteLeftovers(directory: string, context: EngineDoctorContext & { creating: ReadonlySet<string> }): Promise<string[]> {
  const stray = await strayStagingFiles(directory, context.tenants, context.creating)
  for (const name of stray) await rm(join(directory, name), { force: true })
  return stray.map((name) => join(directory, name))
}
