import { existsSync } from 'node:fs'
import { basename, dirname, isAbsolute, join, relative } from 'node:path'
import type { Command } from 'commander'
import { createJiti } from 'jiti'
import type { Kysely } from 'kysely'
import { describeDataSource, loadConfig, type Tenantry } from 'tenantry'
import { configFileOf, withTenantry } from '../open-tenantry.js'
import { progressLine } from './migrate.js'
import { redactUrl, type Output } from '../output.js'

/** The tenant `start --demo` creates when there is none by that slug. */
export const DEMO_SLUG = 'demo'

/** Where the example app's seed lives, relative to the repo's own config file. */
const EXAMPLE_SEED = join('examples', 'cv-builder', 'seed.ts')

type Seed = (db: Kysely<any>) => Promise<void>

/**
 * `tenantry start`: brings the catalog and every tenant up to date, shows where things are,
 * then serves the HTTP API (`--no-server` stops after preparing). With `--demo` (as the
 * repo's `npm start` asks) it also creates a `demo` tenant if there is none, seeded with the
 * example app's data when the config is this repo's own; an app never gets one unasked. A
 * second run changes nothing.
 */
export function registerStartCommand(program: Command, out: Output): void {
  program
    .command('start')
    .description('migrate the catalog and tenants, show where the data lives, then start the HTTP server')
    .option('--demo', `create a "${DEMO_SLUG}" tenant if there is none (seeded with the example app's data in this repo)`)
    .option('--no-server', 'prepare only; do not start the HTTP server')
    .option('--port <port>', 'port of the HTTP server (default $PORT or 3000)')
    .action(async (options: { demo?: boolean; server: boolean; port?: string }, command: Command) => {
      const configFile = configFileOf(command)
      const config = await loadConfig(configFile)
      await withTenantry(
        command,
        async (tenantry) => {
          // The app's shared tables first: tenants' migrations and code may read them.
          const shared = tenantry.sharedMigrations ? await tenantry.migrateShared() : undefined
          if (shared?.applied.length) out.note(`Shared migrations: applied ${shared.applied.join(', ')}.`)
          const report = await tenantry.migrate({ onResult: (result) => out.note(progressLine(result)) })
          let seeded: boolean | undefined
          // Any record of the slug counts, even a deleted one: its data and slug are kept.
          if (options.demo && !(await tenantry.catalog.findTenantBySlug(DEMO_SLUG))) {
            await tenantry.tenants.create({ slug: DEMO_SLUG, name: 'Demo', actor: 'cli:start' })
            seeded = await seedDemo(tenantry, configFile)
          }
          const tenants = await tenantry.catalog.listTenants()

          out.line('Tenantry is ready.')
          out.line()
          out.line(`  config     ${configFile ? displayPath(configFile) : '(none found: built-in defaults)'}`)
          out.line(`  home       ${displayPath(config.home)}`)
          const catalog = isAbsolute(config.catalogUrl) ? displayPath(config.catalogUrl) : redactUrl(config.catalogUrl)
          out.line(`  catalog    ${catalog}`)
          for (const source of await tenantry.catalog.listDataSources()) {
            out.line(`  data       ${source.id}: ${describeDataSource(source)}`)
          }
          out.line()
          if (report.results.length > 0) {
            out.line(`Tenant migrations: ${report.succeeded} tenants migrated, ${report.failed} failed.`)
          }
          if (seeded !== undefined) {
            out.line(
              seeded
                ? `Created tenant ${DEMO_SLUG} and seeded it with the CV builder example's data.`
                : `Created tenant ${DEMO_SLUG} (empty: no example seed next to the config).`,
            )
          }
          out.line(`${tenants.length} ${tenants.length === 1 ? 'tenant' : 'tenants'}:`)
          out.table(tenants, [
            { header: 'SLUG', value: (t) => t.slug },
            { header: 'STATUS', value: (t) => t.status },
            { header: 'NAME', value: (t) => t.name },
            { header: 'CREATED', value: (t) => t.createdAt },
          ], '  ')

          const cli = invocation()
          const slug = tenants.find((t) => t.status === 'ready')?.slug
          out.line()
          out.line('Try:')
          if (slug) {
            const query = (await hasTable(tenantry, slug, 'jobs'))
              ? 'select company, title from jobs'
              : "select name from sqlite_master where type = 'table'"
            out.line(`  ${cli} tenant show ${slug}`)
            out.line(`  ${cli} sql ${slug} "${query}"`)
          }
          out.line(`  ${cli} tenant create acme --name "Acme Inc"`)
          out.line(`  ${cli} migrate status`)
          if (report.failed > 0) throw new Error(`${report.failed} tenants failed to migrate; run \`tenantry migrate\` to retry`)
        },
        { config },
      )
      if (!options.server) return
      const port = options.port === undefined ? undefined : Number(options.port)
      if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536)) {
        throw new Error(`--port must be a port number, not ${JSON.stringify(options.port)}`)
      }
      // Loaded only here: preparing alone should not pay for the server's dependencies.
      const { startServer } = await import('@tenantry/server')
      const server = await startServer({ config, ...(port !== undefined ? { port } : {}) })
      out.line()
      out.line(`Serving at ${server.url}  (API docs: ${server.url}/docs; stop with Ctrl-C)`)
    })
}

/** Seeds the demo tenant with the example app's data, when the config sits in this repo. */
async function seedDemo(tenantry: Tenantry, configFile: string | undefined): Promise<boolean> {
  if (!configFile) return false
  const path = join(dirname(configFile), EXAMPLE_SEED)
  if (!existsSync(path)) return false
  const jiti = createJiti(import.meta.url)
  const { seedCvBuilder } = await jiti.import<{ seedCvBuilder?: Seed }>(path)
  if (typeof seedCvBuilder !== 'function') return false
  await tenantry.withTenant(DEMO_SLUG, () => seedCvBuilder(tenantry.db()))
  return true
}

async function hasTable(tenantry: Tenantry, slug: string, table: string): Promise<boolean> {
  try {
    return await tenantry.withTenant(slug, async () => {
      const tables = await tenantry.db().introspection.getTables()
      return tables.some((t) => t.name === table)
    })
  } catch {
    return false
  }
}

/** How the user ran this command, so the suggestions can be pasted as they are. */
function invocation(): string {
  const script = process.argv[1] ?? 'tenantry'
  if (basename(script) === 'tenantry') return 'tenantry'
  const path = relative(process.cwd(), script)
  return `node ${path.startsWith('..') || isAbsolute(path) ? script : path}`
}

function displayPath(path: string): string {
  const rel = relative(process.cwd(), path)
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path
}
