import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PROVISIONING_STEPS, type Tenantry } from 'tenantry'
import { tempDir } from 'tenantry/testing'
import { CREATE_TENANT_CHILD, OLD_MIGRATIONS, copyExampleMigrations, openTenantry, readHome, runChild } from './fixtures/homes.js'

/** Every file in the tenants directory, and what it belongs to: each must be a live catalog tenant's file. */
function tenantFiles(home: string): { files: string[]; templates: string[] } {
  const dir = join(home, 'tenants')
  if (!existsSync(dir)) return { files: [], templates: [] }
  const files = readdirSync(dir).filter((f) => f !== '.templates').sort()
  const templates = existsSync(join(dir, '.templates')) ? readdirSync(join(dir, '.templates')) : []
  return { files, templates }
}

async function refusal(tenantry: Tenantry, slug: string): Promise<string | undefined> {
  let ran = false
  const error = await tenantry.withTenant(slug, () => (ran = true)).then(
    () => undefined,
    (e: { code?: string }) => e.code,
  )
  expect(ran).toBe(false)
  return error
}

describe('a create killed with SIGKILL', () => {
  const root = tempDir('tenantry-provisioning-kill-')
  const migrations = join(root.path, 'migrations')

  beforeAll(() => {
    copyExampleMigrations(migrations)
  })

  afterAll(() => root.cleanup())

  it.each(PROVISIONING_STEPS)('before %s: never serves, and a re-run finishes it with no orphan files', async (step) => {
    const home = join(root.path, step)
    const neighbour = await openTenantry(home, migrations)
    try {
      await neighbour.createTenant({ slug: 'neighbour' })
      await neighbour.withTenant('neighbour', () => neighbour.db().insertInto('jobs').values({ company: 'neighbour', title: 'CTO', start_date: '2021-01-01' }).execute())
    } finally {
      await neighbour.close()
    }

    const child = await runChild(CREATE_TENANT_CHILD, [home, migrations, 'acme', step])
    expect(child.signal, child.stderr).toBe('SIGKILL')
    expect(child.lines).not.toContain('created')

    const crashed = readHome(home)
    const acme = crashed.tenants.find((t) => t.slug === 'acme')
    if (step === 'record') expect(acme).toBeUndefined()
    else expect(acme?.status).toBe('provisioning')
    // Whatever the crash left belongs to a catalog row (a re-run or a purge can find it).
    const owned = new Set(crashed.tenants.map((t) => t.id))
    for (const file of tenantFiles(home).files) expect(owned, file).toContain(file.slice(0, 20))

    const tenantry = await openTenantry(home, migrations)
    let id: string
    try {
      expect(await refusal(tenantry, 'acme')).toBe(step === 'record' ? 'TENANT_NOT_FOUND' : 'TENANT_NOT_READY')

      const created = await tenantry.createTenant({ slug: 'acme' })
      id = created.id
      expect(created.status).toBe('ready')
      if (acme) expect(created.id).toBe(acme.id)
      await tenantry.withTenant('acme', async () => {
        await tenantry.db().insertInto('jobs').values({ company: 'acme', title: 'CEO', start_date: '2022-01-01' }).execute()
        expect(await tenantry.db().selectFrom('jobs').select('company').execute()).toEqual([{ company: 'acme' }])
      })
    } finally {
      await tenantry.close()
    }

    const state = readHome(home)
    expect(state.tenants.map((t) => [t.slug, t.status, t.ledger, t.applied])).toEqual([
      ['acme', 'ready', OLD_MIGRATIONS, OLD_MIGRATIONS],
      ['neighbour', 'ready', OLD_MIGRATIONS, OLD_MIGRATIONS],
    ])
    expect(state.tenants.map((t) => t.ownRow)).toEqual([true, true])
    const neighbourId = state.tenants.find((t) => t.slug === 'neighbour')!.id
    const { files, templates } = tenantFiles(home)
    expect(files).toEqual([`${id}.db`, `${neighbourId}.db`].sort())
    // Only sealed templates: no build or staging leftovers.
    for (const template of templates) expect(template).toMatch(/^[a-f0-9]{16,64}\.db$/)
  })

  // Regression: a crash while building the template left its scratch files in .templates for good.
  it('inside the template build: the re-run leaves no scratch files behind', async () => {
    const home = join(root.path, 'template-build')
    const dir = join(root.path, 'migrations-that-crash')
    copyExampleMigrations(dir)
    writeFileSync(
      join(dir, '0003_crash.ts'),
      `import type { Kysely } from 'kysely'
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).execute()
  if (process.env.TENANTRY_TEST_CRASH) process.kill(process.pid, 'SIGKILL')
}
`,
    )
    const child = await runChild(CREATE_TENANT_CHILD, [home, dir, 'acme', 'none'], { env: { TENANTRY_TEST_CRASH: '1' } })
    expect(child.signal, child.stderr).toBe('SIGKILL')
    // The crash really landed mid-build: its scratch database is still there.
    expect(tenantFiles(home).templates.some((f) => f.endsWith('.build'))).toBe(true)
    expect(readHome(home).tenants.map((t) => t.status)).toEqual(['provisioning'])

    const tenantry = await openTenantry(home, dir)
    let id: string
    try {
      expect(await refusal(tenantry, 'acme')).toBe('TENANT_NOT_READY')
      id = (await tenantry.createTenant({ slug: 'acme' })).id
    } finally {
      await tenantry.close()
    }
    const { files, templates } = tenantFiles(home)
    expect(files).toEqual([`${id}.db`])
    expect(templates).toHaveLength(1)
    expect(templates[0]).toMatch(/^[a-f0-9]{16,64}\.db$/)
    expect(readHome(home).tenants.map((t) => [t.status, t.applied])).toEqual([['ready', [...OLD_MIGRATIONS, '0003_crash']]])
  })
})
