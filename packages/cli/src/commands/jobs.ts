import type { Command } from 'commander'
import { TenantryError, type DeadLetter, type Tenantry } from 'tenantry'
import { UsageError } from '../errors.js'
import { positiveInteger, requireSlug } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import { quoteInput, type Column, type Output } from '../output.js'

const DEAD_LETTER_COLUMNS: ReadonlyArray<Column<DeadLetter>> = [
  { header: 'ID', value: (d) => d.id },
  { header: 'NAME', value: (d) => d.name },
  { header: 'ATTEMPTS', value: (d) => d.attempts },
  { header: 'FAILED', value: (d) => d.failedAt },
  { header: 'ERROR', value: (d) => (d.error.length > 80 ? `${d.error.slice(0, 79)}…` : d.error) },
]

/** Job ids are the UUIDs `tenantry.jobs.enqueue` returns. */
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A job id from the command line, checked before anything is opened. */
function requireJobId(id: string): string {
  if (!JOB_ID.test(id)) throw new UsageError(`Invalid job id ${quoteInput(id)}: expected the UUID that enqueue returned (see tenantry jobs dead-letters <slug>)`)
  return id
}

/** Without `services.jobs` there is nothing to look at: said plainly, before any Redis is tried. */
function requireJobs(tenantry: Tenantry): Tenantry['jobs'] {
  if (!tenantry.jobs.configured) throw new TenantryError('INVALID_CONFIG', 'Background jobs are not configured: set services.jobs.url (a Redis URL) in tenantry.config')
  return tenantry.jobs
}

/**
 * `tenantry jobs …`: what an operator needs of a tenant's background jobs from a shell: counts
 * by state, the dead letters (jobs out of attempts), and retrying or discarding one. Enqueuing
 * and running jobs is the app's code (`tenantry.jobs`); none of these needs the job defined.
 */
export function registerJobsCommands(program: Command, out: Output): void {
  const jobs = program.command('jobs').description("a tenant's background jobs: counts by state, dead letters, retry and discard")

  jobs
    .command('counts')
    .description("count a tenant's jobs by state: waiting, delayed, active (running), failed (dead letters)")
    .argument('<slug>', 'the tenant slug')
    .option('--json', 'print the counts as JSON')
    .action(async (slug: string, options: { json?: boolean }, command: Command) => {
      requireSlug(slug)
      await withTenantry(command, async (tenantry) => {
        const counts = await tenantry.withTenant(slug, () => requireJobs(tenantry).counts())
        if (options.json) return out.json(counts)
        out.table([counts], [
          { header: 'WAITING', value: (c) => c.waiting },
          { header: 'DELAYED', value: (c) => c.delayed },
          { header: 'ACTIVE', value: (c) => c.active },
          { header: 'FAILED', value: (c) => c.failed },
        ])
      })
    })

  jobs
    .command('dead-letters')
    .description("list a tenant's dead letters (jobs out of attempts), newest first")
    .argument('<slug>', 'the tenant slug')
    .option('--limit <n>', 'at most this many (1-1000; default 100)', positiveInteger)
    .option('--json', 'print them as a JSON array, payloads included')
    .action(async (slug: string, options: { json?: boolean; limit?: number }, command: Command) => {
      requireSlug(slug)
      if (options.limit !== undefined && options.limit > 1000) throw new UsageError('--limit is at most 1000')
      await withTenantry(command, async (tenantry) => {
        const dead = await tenantry.withTenant(slug, () => requireJobs(tenantry).deadLetters({ limit: options.limit ?? 100 }))
        if (options.json) return out.json(dead)
        if (dead.length === 0) return out.line(`No dead letters for ${slug}.`)
        out.table(dead, DEAD_LETTER_COLUMNS)
      })
    })

  jobs
    .command('retry')
    .description('put a dead letter back in its queue (its attempts start again)')
    .argument('<slug>', 'the tenant slug')
    .argument('<id>', 'the job id (from jobs dead-letters)')
    .option('--json', 'print { retried } as JSON')
    .action(async (slug: string, id: string, options: { json?: boolean }, command: Command) => {
      requireSlug(slug)
      requireJobId(id)
      await withTenantry(command, async (tenantry) => {
        const retried = await tenantry.withTenant(slug, () => requireJobs(tenantry).retryDeadLetter(id))
        if (!retried) throw new TenantryError('NOT_FOUND', `Tenant ${slug} has no dead letter with id ${id}`)
        if (options.json) return out.json({ retried: id })
        out.line(`Job ${id} of tenant ${slug} is back in its queue.`)
      })
    })

  jobs
    .command('discard')
    .description('remove a dead letter for good')
    .argument('<slug>', 'the tenant slug')
    .argument('<id>', 'the job id (from jobs dead-letters)')
    .option('--json', 'print { discarded } as JSON')
    .action(async (slug: string, id: string, options: { json?: boolean }, command: Command) => {
      requireSlug(slug)
      requireJobId(id)
      await withTenantry(command, async (tenantry) => {
        const removed = await tenantry.withTenant(slug, () => requireJobs(tenantry).deleteDeadLetter(id))
        if (!removed) throw new TenantryError('NOT_FOUND', `Tenant ${slug} has no dead letter with id ${id}`)
        if (options.json) return out.json({ discarded: id })
        out.line(`Job ${id} of tenant ${slug} discarded.`)
      })
    })
}
