import { cp, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createTenantry, type Tenantry, type TenantryConfig } from 'tenantry'
import { repoRoot } from './harness.js'

export const exampleMigrations = join(repoRoot, 'examples/cv-builder/migrations')

export function openTenantry(home: string, config: Omit<TenantryConfig, 'home'> = {}): Promise<Tenantry> {
  return createTenantry({
    home,
    migrations: { tenant: exampleMigrations },
    dataSources: [{ id: 'local', engine: 'sqlite' }],
    ...config,
  })
}

export function slugFor(prefix: string, i: number): string {
  return `${prefix}${String(i).padStart(5, '0')}`
}

export interface Provisioned {
  slugs: string[]
  ids: string[]
  seconds: number
  tenantsPerSec: number
}

/** Creates `count` tenants one after another, as an app's sign-up flow would. */
export async function provisionTenants(
  tenantry: Tenantry,
  count: number,
  options: { prefix?: string; offset?: number; progress?: (done: number) => void } = {},
): Promise<Provisioned> {
  const slugs: string[] = []
  const ids: string[] = []
  const started = performance.now()
  for (let i = 0; i < count; i++) {
    const tenant = await tenantry.createTenant({ slug: slugFor(options.prefix ?? 't', (options.offset ?? 0) + i) })
    slugs.push(tenant.slug)
    ids.push(tenant.id)
    if (options.progress && (i + 1) % 1000 === 0) options.progress(i + 1)
  }
  const seconds = (performance.now() - started) / 1000
  return { slugs, ids, seconds, tenantsPerSec: count / seconds }
}

/**
 * Copies the example's migrations into `dir/migrations` and adds one more. The copy keeps
 * the migration set's content hash, so tenants made from the original set are just one
 * migration behind. `node_modules` is linked in because migration files import kysely.
 */
export async function migrationsWithNewOne(dir: string): Promise<string> {
  const migrations = join(dir, 'migrations')
  await cp(exampleMigrations, migrations, { recursive: true })
  await symlink(join(repoRoot, 'node_modules'), join(dir, 'node_modules'), 'dir')
  await writeFile(
    join(migrations, '0003_job_tags.ts'),
    [
      "import type { Kysely } from 'kysely'",
      '',
      'export async function up(db: Kysely<any>): Promise<void> {',
      "  await db.schema.alterTable('jobs').addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]')).execute()",
      '}',
      '',
    ].join('\n'),
  )
  return migrations
}
