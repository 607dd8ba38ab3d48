import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, expect, it, vi } from 'vitest'
import type { SqliteEngine } from '../engines/sqlite/sqlite-engine.js'
import { tempDir } from '../testing/services.js'
import { createTenantry, type Tenantry } from '../tenantry.js'

const migrations = fileURLToPath(new URL('../../../../examples/cv-builder/migrations', import.meta.url))

let root: ReturnType<typeof tempDir>
let tenantry: Tenantry | undefined

beforeEach(() => {
  root = tempDir('tenantry-template-copies-')
})

afterEach(async () => {
  await tenantry?.close()
  tenantry = undefined
  root.cleanup()
})

it('creates tenants as untouched WAL-mode copies of the template, with the template ledger', async () => {
  // Regression: every tenant copied from the template was opened, converted to WAL (fsyncs) and run through the migrator again: ~4× slower creates.
  tenantry = await createTenantry({ home: root.path, migrations: { tenant: migrations } })
  const engine = (await tenantry.dataSources.engine('local')) as SqliteEngine
  await tenantry.createTenant({ slug: 'first' })
  const drop = vi.spyOn(engine, 'drop')
  const second = await tenantry.createTenant({ slug: 'second' })

  const templates = join(engine.directory, '.templates')
  const template = readFileSync(join(templates, readdirSync(templates).find((f) => /^[a-f0-9]+\.db$/.test(f))!))
  const copy = readFileSync(engine.pathOf({ tenantId: second.id, ...second.placement }))
  expect(copy.equals(template)).toBe(true)
  expect([copy[18], copy[19]]).toEqual([2, 2]) // header read/write versions 2: WAL
  expect(drop).not.toHaveBeenCalled() // a new tenant id has nothing to clear
  expect((await tenantry.catalog.ledger(second.id)).map((l) => l.migration)).toEqual(tenantry.migrations.names)

  const jobs = await tenantry.withTenant('second', () => tenantry!.db().selectFrom('jobs').selectAll().execute())
  expect(jobs).toEqual([])
})
