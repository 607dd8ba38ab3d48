import { Option, type Command } from 'commander'
import { effectiveLimits, parseServerConfig, type EffectiveLimit } from '@tenantry/server'
import {
  formatBytes,
  parseBytes,
  parseDuration,
  TenantryError,
  type Isolation,
  type QuotaChanges,
  type TenantLimitChanges,
  type TenantQuotas,
  type TenantRecord,
} from 'tenantry'
import { UsageError } from '../errors.js'
import { cliActor, ISOLATIONS, positiveInteger, requireDataSourceId, requireSlug } from '../input.js'
import { requireExternalId } from './tenant-adopt.js'
import { withTenantry } from '../open-tenantry.js'
import { cell, type Column, type Output } from '../output.js'
import { registerTenantLifecycleCommands } from './tenant-lifecycle.js'
import { registerTenantBackupCommands } from './tenant-backup.js'
import { registerTenantMoveCommands } from './tenant-move.js'

/** Audit events `tenant show` includes, newest last. */
export const RECENT_AUDIT_EVENTS = 20

const TENANT_COLUMNS: ReadonlyArray<Column<TenantRecord>> = [
  { header: 'SLUG', value: (t) => t.slug },
  { header: 'STATUS', value: (t) => t.status },
  { header: 'ISOLATION', value: (t) => t.placement.isolation },
  { header: 'DATA SOURCE', value: (t) => t.placement.dataSourceId },
  { header: 'CREATED', value: (t) => t.createdAt },
]

interface JsonOption {
  json?: boolean
}

interface CreateOptions extends JsonOption {
  name?: string
  isolation?: Isolation
  dataSource?: string
  dryRun?: boolean
  externalId?: string
}

interface QuotaOptions extends JsonOption {
  storage?: string
  tokens?: string
  bulkRows?: string
  files?: string
}

/** `unlimited` → null, `default` → follow the config, anything else through `parse`; bad input is a usage error. */
function quotaValue(option: string, text: string, parse: (text: string) => number): number | null | 'default' {
  if (text === 'unlimited') return null
  if (text === 'default') return 'default'
  try {
    return parse(text)
  } catch (error) {
    throw new UsageError(`${option}: ${(error as Error).message}`)
  }
}

function sizeValue(text: string): number {
  return parseBytes(text)
}

function countValue(text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new Error(`expected a whole number, unlimited or default, not ${JSON.stringify(text)}`)
  return Number(text)
}

interface LimitsOptions extends JsonOption {
  plan?: string
  sqlTimeout?: string
  sqlTransactionTimeout?: string
  sqlMaxStreams?: string
  maxStatements?: string
  dataApiTimeout?: string
}

/** `config` (or `default`) → follow the config again; `250ms`, `5s`, `2m` or plain milliseconds → milliseconds. */
function durationValue(option: string, text: string): number | null {
  if (text === 'config' || text === 'default') return null
  const plain = /^(\d{1,9})(ms)?$/.exec(text.trim())
  const ms = plain ? Number(plain[1]) : parseDuration(text)
  if (!ms || ms > 3_600_000) throw new UsageError(`${option}: expected a duration of at most 1h such as 500ms, 5s or 2m, or config, not ${JSON.stringify(text)}`)
  return ms
}

/** `config` (or `default`) → follow the config again; otherwise a whole number from 1. */
function positiveValue(option: string, text: string): number | null {
  if (text === 'config' || text === 'default') return null
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 10_000) throw new UsageError(`${option}: expected a whole number from 1 to 10000, or config, not ${JSON.stringify(text)}`)
  return Number(text)
}

/** `tenantry tenant …`: create, list, show, suspend, resume, delete, quota, limits, usage, read-only-access, export, import, erase. */
export function registerTenantCommands(program: Command, out: Output): void {
  const tenant = program.command('tenant').description('create, list, inspect and change tenants')

  tenant
    .command('create')
    .description('create a tenant: record it, create its database, migrate it, mark it ready')
    .argument('<slug>', 'the tenant slug: 2-63 of a-z, 0-9 and _, starting with a letter')
    .option('--name <name>', 'display name (default: the slug)')
    .addOption(
      new Option('--isolation <isolation>', 'how its rows are kept apart (default: from the config)').choices(ISOLATIONS),
    )
    .option('--data-source <id>', 'the data source to place it on (default: from the config)')
    .option('--dry-run', 'check everything a create needs and change nothing')
    .option('--external-id <id>', "the tenant's id in another system (an auth provider's user id, a CRM account id); withTenant({ externalId }) finds it")
    .option('--json', 'print the tenant as JSON')
    .action(async (slug: string, options: CreateOptions, command: Command) => {
      requireSlug(slug)
      if (options.dataSource !== undefined) requireDataSourceId(options.dataSource)
      if (options.externalId !== undefined) requireExternalId(options.externalId)
      const { name, isolation, dataSource, externalId } = options
      const request = { slug, name, isolation, dataSource, actor: cliActor(), ...(externalId === undefined ? {} : { externalId }) }
      await withTenantry(command, async (tenantry) => {
        if (options.dryRun) {
          const plan = await tenantry.tenants.plan(request)
          if (options.json) return out.json({ dryRun: true, ...plan })
          const what = plan.resumes
            ? `finish the interrupted create of tenant ${plan.slug} (${plan.resumes})`
            : `create tenant ${plan.slug}`
          out.line(
            `Dry run: would ${what}, named ${cell(plan.name)}, with ${plan.isolation} isolation on data source ${plan.dataSource}.`,
          )
          out.line('Nothing was changed.')
          return
        }
        const created = await tenantry.tenants.create(request)
        if (options.json) return out.json(created)
        const { isolation, dataSourceId } = created.placement
        out.line(`Created tenant ${created.slug} (${created.id}): ${isolation} isolation on data source ${dataSourceId}.`)
      })
    })

  tenant
    .command('list')
    .description('list tenants: slug, status, isolation, data source, created')
    .option('--json', 'print the tenants as a JSON array')
    .action(async (options: JsonOption, command: Command) => {
      await withTenantry(command, async (tenantry) => {
        const tenants = await tenantry.catalog.listTenants()
        if (options.json) return out.json(tenants)
        if (tenants.length === 0) return out.line('No tenants yet. Create one with: tenantry tenant create <slug>')
        out.table(tenants, TENANT_COLUMNS)
      })
    })

  tenant
    .command('show')
    .description('show a tenant: its fields, placement, applied migrations and recent audit events')
    .argument('<slug>', 'the tenant slug')
    .option('--json', 'print as JSON: { tenant, ledger, pending, auditLog }')
    .action(async (slug: string, options: JsonOption, command: Command) => {
      requireSlug(slug)
      await withTenantry(command, async (tenantry) => {
        const record = await tenantry.catalog.findTenantBySlug(slug)
        if (!record) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
        const [ledger, audit] = await Promise.all([tenantry.catalog.ledger(record.id), tenantry.catalog.auditLog(record.id)])
        const applied = new Set(ledger.map((entry) => entry.migration))
        const pending = tenantry.migrations.names.filter((name) => !applied.has(name))
        const auditLog = audit.slice(-RECENT_AUDIT_EVENTS)
        if (options.json) return out.json({ tenant: record, ledger, pending, auditLog })

        out.line(`Tenant ${record.slug}`)
        const fields: Array<[string, unknown]> = [
          ['id', record.id],
          ['name', record.name],
          ...(record.externalId !== null ? [['external id', record.externalId] as [string, unknown]] : []),
          ['status', record.status],
          ...(record.statusReason ? [['reason', record.statusReason] as [string, unknown]] : []),
          ['operation', record.operation],
          ['isolation', record.placement.isolation],
          ['data source', record.placement.dataSourceId],
          ['locator', record.placement.locator],
          ['created', record.createdAt],
          ['updated', record.updatedAt],
        ]
        for (const [label, value] of fields) out.line(`  ${label.padEnd(12)}${cell(value)}`)
        out.line()
        const pendingList = pending.length ? ` (${pending.join(', ')})` : ''
        out.line(`Migrations: ${ledger.length} applied, ${pending.length} pending${pendingList}`)
        if (ledger.length) {
          out.table(ledger, [
            { header: 'MIGRATION', value: (m) => m.migration },
            { header: 'APPLIED', value: (m) => m.appliedAt },
          ], '  ')
        }
        out.line()
        out.line(`Recent audit events (${auditLog.length} of ${audit.length})`)
        if (auditLog.length) {
          out.table(auditLog, [
            { header: 'AT', value: (e) => e.at },
            { header: 'ACTION', value: (e) => e.action },
            { header: 'ACTOR', value: (e) => e.actor },
            { header: 'DETAILS', value: (e) => (e.details === null ? '' : e.details) },
          ], '  ')
        }
      })
    })

  const transition = (name: 'suspend' | 'resume', description: string, done: string) =>
    tenant
      .command(name)
      .description(description)
      .argument('<slug>', 'the tenant slug')
      .option('--json', 'print the tenant as JSON')
      .action(async (slug: string, options: JsonOption, command: Command) => {
        requireSlug(slug)
        await withTenantry(command, async (tenantry) => {
          const record = await tenantry.tenants[name](slug, cliActor())
          if (options.json) return out.json(record)
          out.line(`Tenant ${record.slug} ${done}: status ${record.status}.`)
        })
      })
  transition('suspend', 'stop serving a ready tenant; its data is kept', 'suspended')
  transition('resume', 'serve a suspended tenant again', 'resumed')

  tenant
    .command('delete')
    .description('delete a tenant; its data and slug are kept unless --purge')
    .argument('<slug>', 'the tenant slug')
    .option('--purge', 'remove the tenant data for good and free the slug')
    .option('--json', 'print the tenant as JSON')
    .action(async (slug: string, options: { purge?: boolean } & JsonOption, command: Command) => {
      requireSlug(slug)
      await withTenantry(command, async (tenantry) => {
        const record = await tenantry.tenants.delete(slug, { purge: options.purge ?? false, actor: cliActor() })
        if (options.json) return out.json(record)
        out.line(
          options.purge
            ? `Tenant ${record.slug} purged: its data is gone and the slug is free.`
            : `Tenant ${record.slug} deleted: its data is kept and the slug stays taken (use --purge to remove both).`,
        )
      })
    })

  tenant
    .command('quota')
    .description("show a tenant's quotas and what it uses of them; with options, change them (unlimited: no limit, default: the config's)")
    .argument('<slug>', 'the tenant slug')
    .option('--storage <size>', 'storage, e.g. 500MB or 2GB (KB, MB, GB, TB are binary), unlimited or default')
    .option('--tokens <n>', 'live integration tokens, unlimited or default')
    .option('--bulk-rows <n>', 'rows per bulk create or delete request of the data API, unlimited or default')
    .option('--files <size>', "the tenant's files (tenantry.files), e.g. 5GB, unlimited or default")
    .option('--json', 'print JSON: { quotas, overrides, defaults, usage }')
    .action(async (slug: string, options: QuotaOptions, command: Command) => {
      requireSlug(slug)
      // Every value is checked before anything is opened: bad input changes nothing.
      const changes: QuotaChanges = {}
      if (options.storage !== undefined) changes.storageBytes = quotaValue('--storage', options.storage, sizeValue)
      if (options.tokens !== undefined) changes.tokens = quotaValue('--tokens', options.tokens, countValue)
      if (options.bulkRows !== undefined) changes.bulkRows = quotaValue('--bulk-rows', options.bulkRows, countValue)
      if (options.files !== undefined) changes.fileBytes = quotaValue('--files', options.files, sizeValue)
      await withTenantry(command, async (tenantry) => {
        const changed = Object.keys(changes).length > 0
        const view = changed ? await tenantry.quotas.set(slug, changes, { actor: cliActor() }) : await tenantry.quotas.get(slug)
        const record = (await tenantry.catalog.findTenantBySlug(slug))!
        const now = new Date().toISOString()
        const tokens = (await tenantry.tokens.list(slug)).filter((t) => !t.revokedAt && (!t.expiresAt || t.expiresAt > now)).length
        const storageBytes = (await tenantry.storageBytes(record).catch(() => undefined)) ?? null
        const fileBytes = await tenantry.files.driver.usage(record.id)
        const usage = { storageBytes, tokens, fileBytes }
        if (options.json) return out.json({ ...view, usage })
        if (changed) out.note(`Quotas of ${slug} changed.`)
        const show = (name: keyof TenantQuotas, format: (n: number) => string = String) => {
          const value = view.quotas[name]
          return `${value === null ? 'unlimited' : format(value)}${name in view.overrides ? '' : ' (default)'}`
        }
        out.table(
          [
            { quota: 'storage', limit: show('storageBytes', formatBytes), used: storageBytes === null ? 'not measured' : formatBytes(storageBytes) },
            { quota: 'tokens', limit: show('tokens'), used: String(tokens) },
            { quota: 'bulk rows', limit: show('bulkRows'), used: 'per request' },
            { quota: 'files', limit: show('fileBytes', formatBytes), used: formatBytes(fileBytes) },
          ],
          [
            { header: 'QUOTA', value: (r) => r.quota },
            { header: 'LIMIT', value: (r) => r.limit },
            { header: 'USED', value: (r) => r.used },
          ],
        )
      })
    })

  tenant
    .command('limits')
    .description("show a tenant's limits and where each comes from (tenant, config, default); with options, change them (config: follow the server config again)")
    .argument('<slug>', 'the tenant slug')
    .option('--plan <name>', 'rate-limit plan (a name in server.limits.plans, default included), or config')
    .option('--sql-timeout <duration>', 'SQL-over-HTTP statement deadline, e.g. 5s or 500ms, or config')
    .option('--sql-transaction-timeout <duration>', 'SQL-over-HTTP transaction deadline, or config')
    .option('--sql-max-streams <n>', 'SQL-over-HTTP open streams at most, or config')
    .option('--max-statements <n>', 'SQL-over-HTTP statements at once, or config')
    .option('--data-api-timeout <duration>', 'data API statement deadline, e.g. 2s, or config')
    .option('--json', 'print JSON: { limits (value and source of each), overrides, plans }')
    .action(async (slug: string, options: LimitsOptions, command: Command) => {
      requireSlug(slug)
      // Every value is checked before anything is opened: bad input changes nothing.
      const changes: TenantLimitChanges = {}
      if (options.plan !== undefined) changes.plan = options.plan === 'config' ? null : options.plan
      if (options.sqlTimeout !== undefined) changes.sqlStatementTimeoutMs = durationValue('--sql-timeout', options.sqlTimeout)
      if (options.sqlTransactionTimeout !== undefined) changes.sqlTransactionTimeoutMs = durationValue('--sql-transaction-timeout', options.sqlTransactionTimeout)
      if (options.sqlMaxStreams !== undefined) changes.sqlMaxStreams = positiveValue('--sql-max-streams', options.sqlMaxStreams)
      if (options.maxStatements !== undefined) changes.sqlMaxStatements = positiveValue('--max-statements', options.maxStatements)
      if (options.dataApiTimeout !== undefined) changes.dataApiStatementTimeoutMs = durationValue('--data-api-timeout', options.dataApiTimeout)
      await withTenantry(command, async (tenantry) => {
        const config = parseServerConfig(tenantry.config.server)
        const changed = Object.keys(changes).length > 0
        if (changed && typeof changes.plan === 'string' && !tenantry.limits.plans.includes(changes.plan)) {
          throw new UsageError(`--plan: unknown plan ${JSON.stringify(changes.plan)}; the config's server.limits.plans has ${tenantry.limits.plans.join(', ')}`)
        }
        const view = changed ? await tenantry.limits.set(slug, changes, { actor: cliActor() }) : await tenantry.limits.get(slug)
        const limits = effectiveLimits(config, slug, view.overrides)
        if (options.json) return out.json({ tenantId: view.tenantId, slug: view.slug, limits, overrides: view.overrides, plans: [...tenantry.limits.plans] })
        if (changed) out.note(`Limits of ${slug} changed.`)
        const ms = (limit: EffectiveLimit<number | null>) => (limit.value === null ? "data source's" : `${limit.value}ms`)
        const n = (limit: EffectiveLimit<number | null>) => (limit.value === null ? "data source's" : String(limit.value))
        const rows = [
          { limit: 'plan', value: `${limits.plan.value} (${limits.rates.tenant}/tenant, ${limits.rates.token}/token per ${limits.rates.windowMs}ms)`, source: limits.plan.source },
          { limit: 'sql statement timeout', value: ms(limits.sqlStatementTimeoutMs), source: limits.sqlStatementTimeoutMs.source },
          { limit: 'sql transaction timeout', value: ms(limits.sqlTransactionTimeoutMs), source: limits.sqlTransactionTimeoutMs.source },
          { limit: 'sql max streams', value: n(limits.sqlMaxStreams), source: limits.sqlMaxStreams.source },
          { limit: 'sql max statements', value: n(limits.sqlMaxStatements), source: limits.sqlMaxStatements.source },
          { limit: 'data api timeout', value: ms(limits.dataApiStatementTimeoutMs), source: limits.dataApiStatementTimeoutMs.source },
        ]
        out.table(rows, [
          { header: 'LIMIT', value: (r) => r.limit },
          { header: 'VALUE', value: (r) => r.value },
          { header: 'FROM', value: (r) => r.source },
        ])
      })
    })

  tenant
    .command('usage')
    .description("show a tenant's metered usage per UTC day: requests, statements, rows read and written, time, storage")
    .argument('<slug>', 'the tenant slug')
    .option('--days <n>', 'days back, today included (default 30)', positiveInteger)
    .option('--json', 'print JSON: { tenantId, slug, storageBytes, days: [...] }')
    .action(async (slug: string, options: { days?: number } & JsonOption, command: Command) => {
      requireSlug(slug)
      await withTenantry(command, async (tenantry) => {
        const usage = await tenantry.usageOf(slug, options.days ? { days: options.days } : {})
        if (options.json) return out.json(usage)
        out.line(`Usage of ${slug} (${usage.tenantId}); storage now: ${usage.storageBytes === null ? 'not measured' : formatBytes(usage.storageBytes)}`)
        if (usage.days.length === 0) return out.line('No usage recorded in that period.')
        out.table(usage.days, [
          { header: 'DAY', value: (d) => d.day },
          { header: 'REQUESTS', value: (d) => d.requests },
          { header: 'STATEMENTS', value: (d) => d.statements },
          { header: 'ROWS READ', value: (d) => d.rowsRead },
          { header: 'ROWS WRITTEN', value: (d) => d.rowsWritten },
          { header: 'TIME (MS)', value: (d) => d.execMs },
          { header: 'STORAGE', value: (d) => (d.storageBytes === null ? '' : formatBytes(d.storageBytes)) },
        ])
      })
    })

  tenant
    .command('read-only-access')
    .alias('readonly-url')
    .description('read-only access: a Postgres URL that reads this tenant and nothing else (schema and database isolation), for psql or BI tools')
    .argument('<slug>', 'the tenant slug')
    .option('--revoke', 'revoke the read-only access instead')
    .option('--json', 'print JSON: { role, url }, or { revoked: true }')
    .action(async (slug: string, options: { revoke?: boolean } & JsonOption, command: Command) => {
      requireSlug(slug)
      await withTenantry(command, async (tenantry) => {
        const access = await tenantry.readOnlyAccess(slug, { revoke: options.revoke ?? false, actor: cliActor() })
        if (options.json) return out.json(access ?? { revoked: true })
        if (!access) return out.line(`Read-only access to ${slug} revoked.`)
        out.note(`Read-only role ${access.role}: SELECT on ${slug}'s tables only. Keep this URL secret.`)
        out.line(access.url)
      })
    })

  registerTenantLifecycleCommands(tenant, out)
  registerTenantBackupCommands(tenant, out)
  registerTenantMoveCommands(tenant, out)
}
