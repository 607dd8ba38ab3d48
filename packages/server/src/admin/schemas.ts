import { z } from 'zod'
import { slugParam } from '../schemas.js'

export const slugParams = z.object({ slug: slugParam })

export const createTenantBody = z.strictObject({
  slug: z.string().describe('^[a-z][a-z0-9_]{1,62}$, not a reserved word'),
  name: z.string().min(1).max(200).optional().describe('Default: the slug'),
  isolation: z.enum(['database', 'schema', 'row']).optional().describe("Default: the config's defaults.isolation"),
  dataSource: z.string().optional().describe("A data source id; default: the config's defaults.dataSource"),
  ownerEmail: z.email().optional().describe("An existing user who becomes the tenant's owner (its organization's first member)"),
})

/** A tenant as the admin API shows it. */
export const tenantView = z.object({
  id: z.string(),
  slug: z.string(),
  name: z.string(),
  status: z.string().describe('provisioning, ready, suspended, deleting, deleted or failed'),
  statusReason: z.string().nullable(),
  placement: z.object({ isolation: z.string(), dataSourceId: z.string(), locator: z.string() }),
  createdAt: z.string(),
  updatedAt: z.string(),
})

export const tenantList = z.object({ tenants: z.array(tenantView) })

export const tenantWithAuditLog = tenantView.extend({
  auditLog: z.array(
    z.object({ at: z.string(), tenantId: z.string().nullable(), action: z.string(), actor: z.string(), details: z.unknown() }),
  ),
})

export const deleteTenantQuery = z.strictObject({
  purge: z
    .enum(['true', 'false'])
    .optional()
    .transform((v) => v === 'true')
    .describe('true: remove its data and free its slug; default false (the data is kept, the slug stays taken)'),
})

export const migrationStatus = z.object({
  migrations: z.array(z.object({ name: z.string(), appliedTenants: z.number().int(), pendingTenants: z.number().int() })),
  tenants: z.number().int(),
  behind: z.array(z.object({ tenantId: z.string(), slug: z.string(), status: z.string(), pending: z.array(z.string()) })),
  lock: z.object({ pid: z.number().int(), host: z.string(), since: z.string() }).optional().describe('The runner holding the migration lock, if any'),
})

export const runMigrationsBody = z
  .strictObject({ concurrency: z.number().int().min(1).max(64).optional().describe('Tenants migrated at once') })
  .optional()

const tenantMigrationResult = z.object({
  tenantId: z.string(),
  slug: z.string(),
  status: z.enum(['success', 'error', 'skipped']),
  applied: z.array(z.string()),
  error: z.string().optional(),
})

export const fanOutReport = z.object({
  migrations: z.array(z.string()).readonly(),
  dryRun: z.boolean(),
  total: z.number().int(),
  upToDate: z.number().int(),
  results: z.array(tenantMigrationResult),
  succeeded: z.number().int(),
  failed: z.number().int(),
  durationMs: z.number(),
})

export const migrationRun = z.object({
  run: z
    .object({
      id: z.string(),
      startedAt: z.string(),
      finishedAt: z.string().nullable(),
      results: z.array(tenantMigrationResult),
      report: fanOutReport.nullable(),
      error: z.string().nullable(),
      running: z.boolean(),
      done: z.number().int().describe('Tenants finished so far'),
    })
    .nullable()
    .describe('The current or last run started through this server; null before the first'),
})

export const dataSourceList = z.object({
  dataSources: z.array(
    z.object({
      id: z.string(),
      engine: z.string(),
      mode: z.string(),
      capacity: z.number().int().nullable(),
      region: z.string().nullable(),
      createdAt: z.string(),
    }),
  ),
})

const quotaValue = z.number().int().min(0).nullable()

/** A tenant's quotas; `null` is unlimited. */
const tenantQuotas = z.object({
  storageBytes: quotaValue.describe('Bytes of storage (SQLite: enforced by the database; Postgres: checked before data API writes)'),
  tokens: quotaValue.describe('Live integration tokens'),
  bulkRows: quotaValue.describe('Rows in one bulk create or bulk delete request'),
  fileBytes: quotaValue.describe("Bytes of the tenant's files"),
})

export const quotasView = z.object({
  tenantId: z.string(),
  slug: z.string(),
  quotas: tenantQuotas.describe('What applies: the overrides over the defaults'),
  overrides: tenantQuotas.partial().describe("The tenant's own values; absent ones follow the defaults"),
  defaults: tenantQuotas.describe("The config's quotas"),
  usage: z.object({
    storageBytes: z.number().int().nullable().describe('Measured now; null where the engine does not measure it'),
    tokens: z.number().int().describe('Live tokens'),
    fileBytes: z.number().int().describe("Bytes the tenant's files take"),
  }),
})

export const putQuotasBody = z
  .strictObject({
    storageBytes: quotaValue.optional(),
    tokens: quotaValue.optional(),
    bulkRows: quotaValue.optional(),
    fileBytes: quotaValue.optional(),
  })
  .describe("The tenant's own quotas, replacing the previous ones: an absent quota follows the config's default, null is unlimited")

const limitSource = z.enum(['tenant', 'config', 'default']).describe("Where the value comes from: the tenant's own settings, the server config by slug, or the default")
const effective = <T extends z.ZodTypeAny>(value: T) => z.object({ value, source: limitSource })
const millis = z.number().int().positive().max(3_600_000)
const count = z.number().int().positive().max(10_000)

/** A tenant's own limits, as stored; an absent one follows the config. */
const limitOverrides = z.object({
  plan: z.string().optional(),
  sqlStatementTimeoutMs: z.number().int().optional(),
  sqlTransactionTimeoutMs: z.number().int().optional(),
  sqlMaxStreams: z.number().int().optional(),
  sqlMaxStatements: z.number().int().optional(),
  dataApiStatementTimeoutMs: z.number().int().optional(),
})

export const limitsView = z.object({
  tenantId: z.string(),
  slug: z.string(),
  limits: z
    .object({
      plan: effective(z.string()).describe('Rate-limit plan (server.limits.plans)'),
      rates: z
        .object({
          tenant: z.number().int().describe("Requests per window of all the tenant's callers"),
          token: z.number().int().describe('Requests per window of one token'),
          windowMs: z.number().int(),
        })
        .describe("The plan's request rates"),
      sqlStatementTimeoutMs: effective(z.number().int().nullable()).describe("SQL-over-HTTP statement deadline; null: the data source's rawSql default"),
      sqlTransactionTimeoutMs: effective(z.number().int().nullable()).describe("SQL-over-HTTP transaction deadline; null: the data source's rawSql default"),
      sqlMaxStreams: effective(z.number().int()).describe('SQL-over-HTTP open streams at most'),
      sqlMaxStatements: effective(z.number().int().nullable()).describe("SQL-over-HTTP statements at once; null: the data source's rawSql default"),
      dataApiStatementTimeoutMs: effective(z.number().int().nullable()).describe("Data API statement deadline; null: the data source's bounded default"),
    })
    .describe('What applies, and where each value comes from (tenant over config over default)'),
  overrides: limitOverrides.describe("The tenant's own values; absent ones follow the config"),
  plans: z.array(z.string()).describe('Plans a tenant may be put on'),
})

export const putLimitsBody = z
  .strictObject({
    plan: z.string().describe('A plan in server.limits.plans; an unknown one is 400 INVALID_OPTION').optional(),
    sqlStatementTimeoutMs: millis.optional(),
    sqlTransactionTimeoutMs: millis.optional(),
    sqlMaxStreams: count.optional(),
    sqlMaxStatements: count.optional(),
    dataApiStatementTimeoutMs: millis.optional(),
  })
  .describe("The tenant's own limits, replacing the previous ones: an absent limit follows the server config (by slug, then the default)")

export const usageQuery = z.strictObject({
  days: z.coerce.number().int().min(1).max(3660).optional().describe('UTC days back, today included; default 30'),
})

export const usageView = z.object({
  tenantId: z.string(),
  slug: z.string(),
  storageBytes: z.number().int().nullable().describe('Measured now; null where the engine does not measure it'),
  days: z.array(
    z.object({
      day: z.string().describe('YYYY-MM-DD, UTC'),
      requests: z.number().int(),
      statements: z.number().int(),
      rowsRead: z.number().int(),
      rowsWritten: z.number().int(),
      execMs: z.number().int().describe('Time spent running statements, in milliseconds'),
      storageBytes: z.number().int().nullable().describe('Storage as last measured that day'),
    }),
  ),
})
