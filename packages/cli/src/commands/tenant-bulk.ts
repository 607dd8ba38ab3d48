import { readFileSync } from 'node:fs'
import { Option, type Command } from 'commander'
import { forEachBounded, slugProblem, type Isolation } from 'tenantry'
import { UsageError } from '../errors.js'
import { cliActor, ISOLATIONS, positiveInteger, requireDataSourceId } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import { quoteInput, type Output } from '../output.js'
import { Progress } from '../progress.js'

interface CreateManyOptions {
  isolation?: Isolation
  dataSource?: string
  concurrency?: number
  json?: boolean
}

/** One tenant to create, from one line of the file. */
interface Wanted {
  slug: string
  name?: string
}

/**
 * The tenants a file asks for: one per line, `slug` or `slug,name` (blank lines and lines
 * starting with `#` are skipped). Every line is checked before anything is created, so a typo
 * on line 9,000 changes nothing; a slug listed twice is refused too.
 */
export function parseTenantList(text: string): Wanted[] {
  const wanted: Wanted[] = []
  const seen = new Map<string, number>()
  const problems: string[] = []
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const comma = line.indexOf(',')
    const slug = (comma === -1 ? line : line.slice(0, comma)).trim()
    const name = comma === -1 ? undefined : line.slice(comma + 1).trim() || undefined
    const problem = slugProblem(slug)
    if (problem) problems.push(`line ${index + 1}: invalid slug ${quoteInput(slug)}: ${problem}`)
    else if (seen.has(slug)) problems.push(`line ${index + 1}: ${slug} is already on line ${seen.get(slug)}`)
    else {
      seen.set(slug, index + 1)
      wanted.push(name === undefined ? { slug } : { slug, name })
    }
  })
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join('; ')
    throw new UsageError(`The tenant list has ${problems.length} bad ${problems.length === 1 ? 'line' : 'lines'}, nothing was created: ${shown}${problems.length > 5 ? '; …' : ''}`)
  }
  if (wanted.length === 0) throw new UsageError('The tenant list names no tenant')
  return wanted
}

/**
 * `tenantry tenant create-many <file>`: bulk provisioning, with a progress bar on a terminal.
 * Tenants that already exist and are ready are skipped, so a run cut short is finished by
 * running it again; one tenant's failure does not stop the others.
 */
export function registerTenantBulkCommands(program: Command, out: Output): void {
  const tenant = program.commands.find((c) => c.name() === 'tenant')
  if (!tenant) throw new Error('register the tenant commands first')
  tenant
    .command('create-many')
    .description('create many tenants from a file: one `slug` or `slug,name` per line; existing ready tenants are skipped')
    .argument('<file>', 'the tenant list (`-` reads stdin)')
    .addOption(new Option('--isolation <isolation>', 'for every tenant (default: from the config)').choices(ISOLATIONS))
    .option('--data-source <id>', 'for every tenant (default: from the config)')
    .option('--concurrency <n>', 'tenants created at once (default 4)', positiveInteger)
    .option('--json', 'print { results: [{ slug, outcome, id?, error? }], succeeded, skipped, failed }')
    .action(async (file: string, options: CreateManyOptions, command: Command) => {
      if (options.dataSource !== undefined) requireDataSourceId(options.dataSource)
      let text: string
      try {
        text = readFileSync(file === '-' ? 0 : file, 'utf8')
      } catch (error) {
        throw new UsageError(`Cannot read the tenant list ${quoteInput(file)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
      }
      const wanted = parseTenantList(text)
      await withTenantry(command, async (tenantry) => {
        const progress = new Progress(out, { unit: 'tenants', json: options.json })
        progress.start(wanted.length)
        const results = new Map<string, { slug: string; outcome: 'succeeded' | 'skipped' | 'failed'; id?: string; error?: string }>()
        const actor = cliActor()
        await forEachBounded(wanted, options.concurrency ?? 4, async ({ slug, name }) => {
          try {
            const existing = await tenantry.catalog.findTenantBySlug(slug)
            if (existing?.status === 'ready') {
              results.set(slug, { slug, outcome: 'skipped', id: existing.id })
              return progress.done(slug, 'skipped', `  skipped  ${slug}: already exists`)
            }
            const created = await tenantry.tenants.create({ slug, name, isolation: options.isolation, dataSource: options.dataSource, actor })
            results.set(slug, { slug, outcome: 'succeeded', id: created.id })
            progress.done(slug, 'succeeded', `  created  ${slug} (${created.id})`)
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error)
            results.set(slug, { slug, outcome: 'failed', error: message })
            progress.done(slug, 'failed', `  FAILED   ${slug}: ${message}`, message)
          }
        })
        const all = wanted.map((w) => results.get(w.slug)!)
        const count = (outcome: string) => all.filter((r) => r.outcome === outcome).length
        const counts = progress.finish(`Created ${count('succeeded')} tenants; ${count('skipped')} already existed; ${count('failed')} failed.`)
        if (options.json) out.json({ results: all, ...counts })
        if (counts.failed > 0) throw new Error(`${counts.failed} of ${wanted.length} tenants were not created; running the command again retries them`)
      })
    })
}
