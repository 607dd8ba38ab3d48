import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type TenantryConfig } from 'tenantry'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir } from 'tenantry/testing'
import { ALL_MIGRATIONS, FAN_OUT_CHILD, childResult, copyExampleMigrations, runChild, writeNewMigrations } from './fixtures/homes.js'

// The fan-out over Postgres schemas, with the catalog on Postgres too: SIGKILLed at random
// moments it converges on re-run, and a second runner against the same catalog is refused.
const TENANTS = 12
const TRIALS = 8
const postgres = await findPostgres()

describe.skipIf('skip' in postgres)(`fan-out over Postgres schemas${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
  const dir = tempDir()
  const migrations = join(dir.path, 'migrations')
  const dataSource = `pg_kill_${process.pid}`
  let catalogDb: { url: string; drop(): Promise<void> }
  let dataDb: { url: string; drop(): Promise<void> }
  let config: TenantryConfig
  let admin: pg.Client

  beforeAll(async () => {
    if ('skip' in postgres) return
    ;[catalogDb, dataDb] = await Promise.all([createTestDatabase(postgres.url, 'tenantry_kill_catalog'), createTestDatabase(postgres.url, 'tenantry_kill_data')])
    copyExampleMigrations(migrations)
    config = {
      home: join(dir.path, 'home'),
      catalogUrl: catalogDb.url,
      migrations: { tenant: migrations },
      dataSources: [{ id: dataSource, engine: 'postgres', url: dataDb.url, isolations: ['schema'] }],
      defaults: { isolation: 'schema', dataSource },
    }
    const setup = await createTenantry(config)
    for (let i = 0; i < TENANTS; i++) {
      const slug = `kill_${i}`
      await setup.createTenant({ slug })
      await setup.withTenant(slug, () => setup.db().insertInto('jobs').values({ company: slug, title: 'x', start_date: '2020-01-01' }).execute())
    }
    await setup.close()
    writeNewMigrations(migrations)
    admin = new pg.Client({ connectionString: dataDb.url })
    await admin.connect()
  })

  afterAll(async () => {
    await admin?.end()
    await dataDb?.drop()
    await catalogDb?.drop()
    if (!('skip' in postgres)) await dropAppRoles(postgres.url, [dataSource])
    dir.cleanup()
  })

  /** For every tenant: the catalog ledger, the schema's own migration table, and the real columns. */
  async function state() {
    const tenantry = await createTenantry(config)
    try {
      const tenants = await tenantry.catalog.listTenants()
      const lock = await tenantry.catalog.readLock('tenant-migrations')
      const rows = []
      for (const tenant of tenants) {
        const schema = tenant.placement.locator
        const ledger = (await tenantry.catalog.ledger(tenant.id)).map((l) => l.migration)
        const applied = (await admin.query<{ name: string }>(`SELECT name FROM "${schema}".tenantry_migration ORDER BY name`)).rows.map((r) => r.name)
        const columns = (
          await admin.query<{ column_name: string }>(`SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'jobs'`, [schema])
        ).rows.map((r) => r.column_name)
        const tags = (await admin.query(`SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'job_tags'`, [schema])).rowCount
        rows.push({ slug: tenant.slug, ledger, applied, remote: columns.includes('remote'), tags: tags === 1 })
      }
      return { rows, lock }
    } finally {
      await tenantry.close()
    }
  }

  it('converges after SIGKILLs at random moments', async () => {
    const args = [JSON.stringify(config), '4']
    let interrupted = 0
    for (let trial = 0; trial < TRIALS; trial++) {
      // The first trial dies as soon as it starts, while every tenant is still behind: once a run
      // finishes, the later ones have nothing left to do, and a quick one (Node 24) finished the
      // first before a random kill landed, so no trial was ever interrupted.
      const outcome = await runChild(FAN_OUT_CHILD, args, { killAfterStartedMs: trial === 0 ? 0 : Math.floor(Math.random() * 400) })
      if (outcome.signal === 'SIGKILL') interrupted++
      // Between kills: every tenant has all or none of a run's migrations, and the ledger never claims more than the schema holds.
      for (const tenant of (await state()).rows) {
        expect(tenant.applied, tenant.slug).toEqual(expect.arrayContaining(tenant.ledger))
        expect(tenant.remote, tenant.slug).toBe(tenant.applied.includes('0003_job_remote'))
      }
    }
    expect(interrupted).toBeGreaterThan(0)
    const final = await runChild(FAN_OUT_CHILD, args)
    expect(childResult(final)?.report?.failed, final.stderr).toBe(0)
    const { rows, lock } = await state()
    expect(lock).toBeUndefined()
    expect(rows).toHaveLength(TENANTS)
    for (const tenant of rows) {
      expect(tenant, tenant.slug).toEqual({ slug: tenant.slug, ledger: ALL_MIGRATIONS, applied: ALL_MIGRATIONS, remote: true, tags: true })
    }
  })

  it('refuses a second runner against the same Postgres catalog while the first holds the lock', async () => {
    writeFileSync(join(migrations, '0005_job_notes.sql'), 'ALTER TABLE jobs ADD COLUMN notes TEXT;\n')
    // Rewrites 0003 is not possible (already applied); hold the runner with a gated migration of its own.
    writeFileSync(
      join(migrations, '0006_gate.ts'),
      `import { existsSync, writeFileSync } from 'node:fs'
export async function up() {
  const gate = process.env.TENANTRY_TEST_GATE
  if (!gate) return
  writeFileSync(gate + '.entered', '')
  const deadline = Date.now() + 30_000
  while (!existsSync(gate + '.open')) {
    if (Date.now() > deadline) throw new Error('gate never opened')
    await new Promise((r) => setTimeout(r, 10))
  }
}
`,
    )
    const gate = join(dir.path, 'gate')
    const first = runChild(FAN_OUT_CHILD, [JSON.stringify(config), '1'], { env: { TENANTRY_TEST_GATE: gate } })
    const deadline = Date.now() + 30_000
    while (!existsSync(`${gate}.entered`)) {
      if (Date.now() > deadline) throw new Error('the first runner never reached the gate')
      await new Promise((r) => setTimeout(r, 20))
    }
    const second = await createTenantry(config)
    try {
      await expect(second.migrate()).rejects.toMatchObject({ code: 'MIGRATION_LOCKED', message: expect.stringContaining('pid') })
    } finally {
      await second.close()
    }
    writeFileSync(`${gate}.open`, '')
    const outcome = await first
    expect(childResult(outcome)?.report?.failed, outcome.stderr).toBe(0)
  })
})
