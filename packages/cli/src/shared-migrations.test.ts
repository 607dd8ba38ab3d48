import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createManagedAdmin, dropAppRoles, findPostgres, tempDir, type ManagedAdmin } from 'tenantry/testing'
import { runCliCaptured, type CliRun } from '@tenantry/cli/testing'

const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const postgres = await findPostgres()

describe.skipIf('skip' in postgres)(`tenantry migrate with shared migrations${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, { timeout: 180_000 }, () => {
  const dir = tempDir('tenantry-cli-shared-')
  const dataSource = `pg_cli_shared_${process.pid}`
  let admin: ManagedAdmin

  beforeAll(async () => {
    if ('skip' in postgres) return
    admin = await createManagedAdmin(postgres.url, 'tenantry_cli_shared')
    // The app's own config: its shared tables (seed 002's plans, and a table tenants may not read), no tenant migrations.
    writeFileSync(
      join(dir.path, 'tenantry.config.mjs'),
      `export default {
  home: './home',
  migrations: {
    tenant: {},
    shared: {
      migrations: {
        '0001_plans': {
          async up(db) {
            await db.schema.createTable('plans').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('name', 'text').execute()
            await db.schema.createTable('platform_secrets').addColumn('key', 'text').execute()
            await db.insertInto('plans').values({ id: 1, name: 'free' }).execute()
          },
        },
      },
      readable: ['plans'],
    },
  },
  dataSources: [{ id: '${dataSource}', engine: 'postgres', url: ${JSON.stringify(admin.url)} }],
  defaults: { isolation: 'schema', dataSource: '${dataSource}' },
}
`,
    )
  })

  afterAll(async () => {
    if ('skip' in postgres) return
    await admin?.drop()
    await dropAppRoles(postgres.url, [dataSource])
    dir.cleanup()
  })

  const cli = (...args: string[]): Promise<CliRun> =>
    runCliCaptured(args, { cwd: dir.path, env: { TENANTRY_HOME: undefined, TENANTRY_CATALOG_URL: undefined, TENANTRY_DEBUG: undefined } })

  async function json<T>(...args: string[]): Promise<T> {
    const run = await cli(...args, '--json')
    if (run.code !== 0) throw new Error(`tenantry ${args.join(' ')} exited ${run.code}: ${run.stderr}`)
    return JSON.parse(run.stdout) as T
  }

  it('status shows shared pending; --shared-only applies them alone; migrate runs shared then tenants; a tenant reads the declared table', async () => {
    expect(await json('migrate', 'status')).toMatchObject({ shared: { dataSource, pending: ['0001_plans'], readable: ['plans'] } })

    const dry = await cli('migrate', '--shared-only', '--dry-run')
    expect(dry).toMatchObject({ code: 0, stdout: expect.stringContaining('would apply 0001_plans') })

    expect(await json('migrate', '--shared-only')).toMatchObject({ shared: { applied: ['0001_plans'], readable: ['plans'] }, tenants: null })
    expect(await json('migrate', '--shared-only')).toMatchObject({ shared: { applied: [] } })

    await json('tenant', 'create', 'acme')
    const both = await json<{ shared: { applied: string[] }; tenants: { total: number } }>('migrate')
    expect(both).toMatchObject({ shared: { applied: [] }, tenants: { total: 1 } })

    const text = await cli('migrate', 'status')
    expect(text).toMatchObject({ code: 0, stdout: expect.stringMatching(/Shared migrations \(schema public of data source .*\): all applied/) })
    expect(text.stdout).toContain('SHARED MIGRATION')
    expect(text.stdout).toContain('Tenants may read: plans.')

    expect(await json('sql', 'acme', 'select name from public.plans')).toEqual({ rows: [{ name: 'free' }] })
    const refused = await cli('sql', 'acme', 'select * from public.platform_secrets')
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringContaining('permission denied') })
  })

  it('refuses --shared-only with --tenant, --concurrency or --catalog-only (exit 2)', async () => {
    for (const extra of [['--tenant', 'acme'], ['--concurrency', '2'], ['--catalog-only']]) {
      expect(await cli('migrate', '--shared-only', ...extra)).toMatchObject({ code: 2, stderr: expect.stringContaining('--shared-only cannot be combined') })
    }
  })
})

describe('tenantry migrate --shared-only without shared migrations', { timeout: 60_000 }, () => {
  it('is a usage error (exit 2) that changes nothing', async () => {
    const home = tempDir('tenantry-cli-no-shared-')
    try {
      const run = await runCliCaptured(['migrate', '--shared-only'], { cwd: REPO, env: { TENANTRY_HOME: home.path, TENANTRY_CATALOG_URL: undefined } })
      expect(run).toMatchObject({ code: 2, stderr: expect.stringContaining('No shared migrations are configured') })
      expect(existsSync(join(home.path, 'catalog.db'))).toBe(false)
    } finally {
      home.cleanup()
    }
  })
})
