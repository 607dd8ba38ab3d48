// The configuration the HTTP groups serve: the repo's own config (SQLite catalog, a SQLite file
// per tenant, the cv-builder collections) in a scratch home, with rate limits on (so their cost
// is measured) but far above what one run asks for.
import { join } from 'node:path'
import { loadConfig, type Tenantry, type TenantryConfig } from 'tenantry'
import type { CvBuilderDatabase } from '../examples/cv-builder/schema.js'
import { repoRoot, type BenchContext } from './harness.js'

export interface BenchServerSetup {
  config: TenantryConfig
  env: NodeJS.ProcessEnv
  home: string
}

export async function benchServerSetup(ctx: BenchContext): Promise<BenchServerSetup> {
  const home = join(await ctx.workDir('home'), 'home')
  const env: NodeJS.ProcessEnv = { ...process.env, TENANTRY_HOME: home }
  delete env.TENANTRY_CATALOG_URL
  delete env.BETTER_AUTH_SECRET
  delete env.BETTER_AUTH_URL
  const loaded = await loadConfig(join(repoRoot, 'tenantry.config.ts'), env)
  const unlimited = 1_000_000_000
  const config = {
    ...loaded,
    server: { ...loaded.server, limits: { anonymous: unlimited, user: unlimited, plans: { default: { tenant: unlimited, token: unlimited } } } },
  }
  return { config, env, home }
}

/**
 * Inserts `count` cv-builder jobs into `slug` (in batches of 500), each with `description(i)`,
 * and returns the id of the middle one: the row the point reads ask for.
 */
export async function seedJobs(tenantry: Tenantry, slug: string, count: number, description: (i: number) => string | null = () => null): Promise<number> {
  return tenantry.withTenant(slug, async () => {
    const db = tenantry.db<CvBuilderDatabase>()
    for (let i = 0; i < count; i += 500) {
      const rows = Array.from({ length: Math.min(500, count - i) }, (_, j) => ({
        company: `Company ${i + j}`,
        title: 'Engineer',
        location: 'Remote',
        start_date: '2020-01-01',
        description: description(i + j),
      }))
      await db.insertInto('jobs').values(rows).execute()
    }
    const middle = await db.selectFrom('jobs').select('id').orderBy('id').offset(count >> 1).limit(1).executeTakeFirstOrThrow()
    return middle.id
  })
}
