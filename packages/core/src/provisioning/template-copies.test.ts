import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, expect, it, vi } from 'vitest'
import { SYNC_TEMPLATE_COPY_BYTES, type SqliteEngine } from '../engines/sqlite/sqlite-engine.js'
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

it("records a copy's ledger in the commit that activates it: none before, all of it after", async () => {
  let pause: Promise<void> | undefined
  let paused!: () => void
  let reached!: () => void
  const atActivate = new Promise<void>((resolve) => (reached = resolve))
  tenantry = await createTenantry(
    { home: root.path, migrations: { tenant: migrations } },
    {
      beforeProvisioningStep: async (step) => {
        if (step !== 'activate' || !pause) return
        reached()
        await pause
      },
    },
  )
  await tenantry.createTenant({ slug: 'warm' }) // builds the template and learns its ledger
  pause = new Promise((resolve) => (paused = resolve))
  const creating = tenantry.createTenant({ slug: 'acme' })
  await atActivate
  // Copied, about to be activated: a crash here leaves a provisioning tenant with no ledger (a resumed create starts afresh).
  const half = (await tenantry.catalog.findTenantBySlug('acme'))!
  expect(half.status).toBe('provisioning')
  expect(await tenantry.catalog.ledger(half.id)).toEqual([])
  paused()
  const created = await creating
  expect(created.status).toBe('ready')
  expect((await tenantry.catalog.ledger(created.id)).map((l) => l.migration)).toEqual(tenantry.migrations.names)
})

it(`copies a template larger than ${SYNC_TEMPLATE_COPY_BYTES} bytes off the thread, whole`, async () => {
  const seeded = join(root.path, 'seeded-migrations')
  mkdirSync(seeded)
  writeFileSync(
    join(seeded, '0001_reference.sql'),
    `create table reference (id integer primary key, blob blob not null);
     with recursive n(i) as (select 1 union all select i + 1 from n where i < 400) insert into reference select i, randomblob(1000) from n;`,
  )
  tenantry = await createTenantry({ home: root.path, migrations: { tenant: seeded } })
  const engine = (await tenantry.dataSources.engine('local')) as SqliteEngine
  await tenantry.createTenant({ slug: 'first' })
  const second = await tenantry.createTenant({ slug: 'second' })
  const templates = join(engine.directory, '.templates')
  const template = readFileSync(join(templates, readdirSync(templates).find((f) => /^[a-f0-9]+\.db$/.test(f))!))
  expect(template.length).toBeGreaterThan(SYNC_TEMPLATE_COPY_BYTES)
  expect(readFileSync(engine.pathOf({ tenantId: second.id, ...second.placement })).equals(template)).toBe(true)
  const rows = await tenantry.withTenant('second', () => tenantry!.db().selectFrom('reference').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow())
  expect(Number(rows.n)).toBe(400)
})
