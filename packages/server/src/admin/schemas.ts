import { isAbsolute } from 'node:path'
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
  externalId: z.string().nullable().describe("The tenant's id in another system (an auth provider's user id, a CRM account id), or null"),
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

export const erasedView = z.object({
  tenantId: z.string(),
  removed: z.record(z.string(), z.unknown()).describe('What went, as counts (no personal data): the same as the tenant.erased audit entry'),
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
      total: z.number().int().nullable().describe('Tenants the run migrates (those behind), once it knows'),
      results: z.array(tenantMigrationResult),
      report: fanOutReport.nullable(),
      error: z.string().nullable(),
      running: z.boolean(),
      done: z.number().int().describe('Tenants finished so far'),
    })
    .nullable()
    .describe('The current or last run started through this server; null before the first'),
})

/** A data source as the admin API shows it: facts and counts, never its credentials. */
export const dataSourceView = z.object({
  id: z.string(),
  engine: z.string(),
  mode: z.string(),
  capacity: z.number().int().nullable(),
  region: z.string().nullable(),
  createdAt: z.string(),
  tenants: z.number().int().describe('Live tenants placed on it'),
  location: z.string().describe("Where it is, as its engine describes it (a directory, user@host:port/database): never a password"),
  hasCredentials: z.boolean().describe('Whether sealed credentials are recorded (they are never answered)'),
  declaredInConfig: z.boolean().describe('Declared in the config file, which is recorded again at every start: change it there'),
})

export const dataSourceList = z.object({ dataSources: z.array(dataSourceView) })

const dataSourceId = z.string().describe('^[a-z][a-z0-9_]{0,62}$ (fewer characters where the engine names database objects after it)')
const dataSourceMode = z.enum(['shared', 'dedicated', 'byod']).describe('shared takes new tenants by placement policy; dedicated and byod only when named')
const capacity = z.number().int().min(1).max(1_000_000_000)
const region = z.string().trim().min(1).max(100)
/**
 * One strict object for both engines (the OpenAPI contract wants strict bodies), each engine's
 * fields checked by `superRefine`: a SQLite source takes a directory, a Postgres one a URL.
 */
export const addDataSourceBody = z
  .strictObject({
    id: dataSourceId,
    engine: z.enum(['sqlite', 'postgres']).describe('The database software'),
    mode: dataSourceMode.optional().describe('Default shared'),
    capacity: capacity.optional().describe('Tenants it should hold at most; placement skips it when full. Default: unlimited'),
    region: region.optional().describe('Where it is, for placement and compliance'),
    directory: z
      .string()
      .min(1)
      .max(4096)
      .refine((d) => isAbsolute(d), 'must be an absolute path on the server')
      .optional()
      .describe("sqlite: the server's directory for tenant files (absolute); default <home>/<id>"),
    url: z
      .string()
      .min(1)
      .max(4096)
      // Never quoted back: the message names the shape only.
      .refine(isPostgresUrl, 'must look like postgres://user:password@host:5432/database')
      .optional()
      .describe('postgres: the admin connection URL, postgres://user:password@host:5432/database; sealed in the catalog, never answered'),
    isolations: z.array(z.enum(['schema', 'database', 'row'])).min(1).optional().describe('postgres: isolations offered; default schema, database and row'),
  })
  .superRefine((body, ctx) => {
    const wrong = (field: string, message: string) => ctx.addIssue({ code: 'custom', path: [field], message })
    if (body.engine === 'postgres') {
      if (body.url === undefined) wrong('url', 'is required for a postgres data source')
      if (body.directory !== undefined) wrong('directory', 'is for sqlite data sources, not postgres')
    } else {
      if (body.url !== undefined) wrong('url', 'is for postgres data sources, not sqlite')
      if (body.isolations !== undefined) wrong('isolations', 'is for postgres data sources, not sqlite')
    }
  })
  .describe('A data source to add: tested before it is recorded')

/** Whether `text` is a postgres:// URL with a host and a database (core checks it again when it seals it). */
function isPostgresUrl(text: string): boolean {
  try {
    const url = new URL(text)
    return /^postgres(ql)?:$/.test(url.protocol) && url.hostname !== '' && url.pathname.length > 1
  } catch {
    return false
  }
}

export const dataSourceParams = z.object({
  id: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'is not a data source id').describe('A data source id').meta({ example: 'local' }),
})

export const patchDataSourceBody = z
  .strictObject({
    capacity: capacity.nullable().optional().describe('null: unlimited'),
    region: region.nullable().optional().describe('null: none'),
    mode: dataSourceMode.optional(),
  })
  .refine((b) => Object.keys(b).length > 0, 'Give capacity, region or mode')
  .describe('What placement reads of a data source; absent fields are kept. Its engine, location and credentials never change')

export const dataSourceTestResult = z.object({
  id: z.string(),
  engine: z.string(),
  detail: z.string().describe('What answered (the server version, the directory)'),
  latencyMs: z.number().describe('How long the connection test took'),
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

/** A tenant backup as the admin API shows it: where its file is stays on the server. */
export const backupView = z.object({
  id: z.string(),
  tenantId: z.string(),
  engine: z.string(),
  isolation: z.enum(['database', 'schema', 'row']),
  dataSource: z.string(),
  method: z.string().describe('sqlite-backup-api, pg_dump, or rows (row isolation: the export codec)'),
  bytes: z.number().int(),
  checksum: z.string().describe('sha256 of the backup file, checked before a restore'),
  migrations: z.array(z.string()).describe("The tenant's migrations when the backup was taken"),
  createdAt: z.string(),
  createdBy: z.string(),
})

const restorableRange = z.object({ from: z.string(), to: z.string() })

export const backupList = z.object({
  backups: z.array(backupView),
  restorable: restorableRange
    .extend({ ranges: z.array(restorableRange).describe('Each continuous stretch of the WAL archive, oldest first') })
    .optional()
    .describe('Point-in-time restore (SQLite, backups.pointInTime): the times `at` accepts. Absent when off or nothing was shipped yet'),
})

export const restoreBody = z
  .strictObject({
    backup: z.string().optional().describe('A backup id of this tenant (GET /api/admin/tenants/:slug/backups). Either this or `at`'),
    at: z.string().optional().describe('Point-in-time restore: the tenant as it was at this ISO time, within `restorable` of the backups list (SQLite, backups.pointInTime). Either this or `backup`'),
    as: z.string().optional().describe('Restore into a new tenant with this slug (platform admins); the original is left as it is. Default: in place'),
  })
  .refine((body) => (body.backup === undefined) !== (body.at === undefined), { message: 'Give either backup or at' })

export const restoredView = z.object({
  tenant: tenantView.describe('The tenant holding the restored data: the same one, or the new one of `as`'),
  backup: backupView,
  migrated: z.array(z.string()).describe('Migrations the backup was behind on, applied after the restore'),
})

/** `POST /api/admin/tenants/:slug/move` (issue 13). */
export const moveTenantBody = z.strictObject({
  dataSource: z.string().min(1).describe('The data source to move the tenant to'),
  isolation: z.enum(['database', 'schema', 'row']).optional().describe("Default: the tenant's own, where the data source offers it"),
})

const placementView = z.object({ isolation: z.string(), dataSourceId: z.string(), locator: z.string() })

export const moveResultView = z.object({
  tenantId: z.string(),
  slug: z.string(),
  from: placementView,
  to: placementView,
  rows: z.record(z.string(), z.number()).describe('Rows per table in the new placement at the flip'),
  pauseMs: z.number().describe("How long the mover held the tenant's writes"),
  totalMs: z.number(),
  verified: z.boolean().describe('Row counts and checksums of every table matched at the flip'),
  oldCopyRemoved: z.boolean().describe('The old copy was removed (only once verified)'),
  resumed: z.boolean().describe('This call finished a move an earlier one started'),
})

/** `POST /api/admin/tenants/:slug/maintenance` (issue 13). */
export const maintenanceBody = z.strictObject({
  readOnly: z.boolean().describe('true: reads served, writes answered 503 TENANT_MAINTENANCE; false: maintenance ends'),
  message: z.string().trim().min(1).max(500).optional().describe('What refused writes say (with readOnly: true)'),
})
