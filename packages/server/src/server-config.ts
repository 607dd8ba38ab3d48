import { z } from 'zod'
import { TenantryError } from 'tenantry'

/** Table and column names: validated here so the data API never builds an identifier from input. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/

const identifier = z.string().regex(IDENTIFIER, 'use lowercase a-z, 0-9 and "_", starting with a letter or "_"')

/** One column of a collection. */
export const columnSchema = z
  .object({
    /** How values are validated and stored (`boolean` is stored as 0/1, `date` as `YYYY-MM-DD` text). */
    type: z.enum(['text', 'integer', 'number', 'boolean', 'date']),
    /** Must be given on create. @default false */
    required: z.boolean().default(false),
    /** Accepts `null`. @default false */
    nullable: z.boolean().default(false),
    /** Set by the database (ids, timestamps): readable, never written through the API. @default false */
    generated: z.boolean().default(false),
    /** Usable in `?column=value` and `?column[op]=value`. @default false */
    filterable: z.boolean().default(false),
    /** Usable in `?order=column` / `?order=-column`. @default false */
    sortable: z.boolean().default(false),
    /** Matched by `?q=` (case-insensitive substring). @default false */
    searchable: z.boolean().default(false),
    /** Longest accepted text. @default 10000 */
    maxLength: z.number().int().positive().optional(),
  })
  .strict()

/** A table of the tenant's database served under `/data/:collection`. */
export const collectionSchema = z
  .object({
    /** @default the collection's name */
    table: identifier.optional(),
    /** @default 'id' */
    primaryKey: identifier.default('id'),
    columns: z.record(identifier, columnSchema),
    /** Default order when `?order` is absent (a sortable column, `-` prefix for descending). @default the primary key */
    defaultOrder: z.string().optional(),
    /** Largest `?limit`. @default 100 */
    maxLimit: z.number().int().positive().max(1000).default(100),
  })
  .strict()

/** The `server` section of `tenantry.config.ts`. */
export const serverConfigSchema = z
  .object({
    /** Public URL of the server (OAuth redirects, trusted origin). @default process.env.BETTER_AUTH_URL ?? `http://${host}:${port}` */
    baseURL: z.string().url().optional(),
    /** Collections served by the data API, by URL name. */
    collections: z.record(identifier, collectionSchema).default({}),
    /** Emails of platform admins, besides `TENANTRY_PLATFORM_ADMINS`. */
    platformAdmins: z.array(z.string().email()).default([]),
    metrics: z
      .object({
        /** Tenants labelled by slug in metrics; the rest are `other`. @default 20 */
        topTenants: z.number().int().min(0).max(1000).default(20),
      })
      .strict()
      .default({ topTenants: 20 }),
  })
  .strict()

export type ColumnConfig = z.infer<typeof columnSchema>
export type CollectionConfig = z.infer<typeof collectionSchema> & { table: string }
export type ServerConfig = Omit<z.infer<typeof serverConfigSchema>, 'collections'> & {
  collections: Record<string, CollectionConfig>
}
/** What a config file may write in its `server` section. */
export type ServerConfigInput = z.input<typeof serverConfigSchema>

/** Validates the config's `server` section; a mistake is `INVALID_CONFIG` naming the path. */
export function parseServerConfig(section: Record<string, unknown> = {}): ServerConfig {
  const result = serverConfigSchema.safeParse(section)
  if (!result.success) {
    const issue = result.error.issues[0]!
    throw new TenantryError('INVALID_CONFIG', `server.${issue.path.join('.')}: ${issue.message}`)
  }
  const collections: Record<string, CollectionConfig> = {}
  for (const [name, collection] of Object.entries(result.data.collections)) {
    const where = `server.collections.${name}`
    const table = collection.table ?? name
    if (!collection.columns[collection.primaryKey]) {
      throw new TenantryError('INVALID_CONFIG', `${where}: primary key "${collection.primaryKey}" is not among its columns`)
    }
    const order = collection.defaultOrder?.replace(/^-/, '')
    if (order && !collection.columns[order]?.sortable && order !== collection.primaryKey) {
      throw new TenantryError('INVALID_CONFIG', `${where}.defaultOrder: "${order}" is not a sortable column`)
    }
    collections[name] = { ...collection, table }
  }
  return { ...result.data, collections }
}
