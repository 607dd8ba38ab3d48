// The configuration the HTTP groups serve: the repo's own config (SQLite catalog, a SQLite file
// per tenant, the cv-builder collections) in a scratch home, with rate limits on (so their cost
// is measured) but far above what one run asks for.
import { join } from 'node:path'
import { loadConfig, type TenantryConfig } from 'tenantry'
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
