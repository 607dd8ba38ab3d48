import { z } from 'zod'
import { referenceOrder, type Referencing } from '@tenantry/client/semantics'
import { TenantryError } from '../errors.js'

/**
 * Collection declarations (`server.collections` in `tenantry.config.ts`): the one strict schema
 * for them. Core reads them for `tenantry.collection(name)`, the write ledger and the search
 * indexes; the server's config reuses this schema for its `server.collections`, so the data
 * API and the in-process collections serve exactly the same declarations.
 */

/** Table and column names: validated here so no SQL identifier is ever built from input. */
export const COLLECTION_IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/

const identifier = z.string().regex(COLLECTION_IDENTIFIER, 'use lowercase a-z, 0-9 and "_", starting with a letter or "_"')

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
    /**
     * A declared foreign key: the name of another collection of the same declaration whose
     * primary key this column holds (its type must be that key's type). Used where rows move
     * between places with new ids (a claim remaps them), and to order collections.
     */
    references: identifier.optional(),
    /**
     * The table's `ON DELETE` for that foreign key, declared so the browser's local backend does
     * what the database does: `cascade`, `set null` or `restrict`. Only with `references`.
     * @default 'restrict'
     */
    onDelete: z.enum(['cascade', 'set null', 'restrict']).optional(),
  })
  .strict()

/** A table of the tenant's database served under `/data/:collection` and by `tenantry.collection(name)`. */
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

/** Every collection, by name. */
export const collectionsSchema = z.record(identifier, collectionSchema)

export type ColumnConfig = z.infer<typeof columnSchema>
/** A parsed collection: defaults filled, `table` resolved. */
export type CollectionConfig = z.infer<typeof collectionSchema> & { table: string }
/** What a config may write for one collection. */
export type CollectionConfigInput = z.input<typeof collectionSchema>

/**
 * The checks a schema cannot make alone, on collections `collectionsSchema` parsed: the primary
 * key is a column, the default order is sortable, each `references` names a declared
 * collection whose primary key has the column's type. `where` prefixes each message (the
 * config path). Returns the collections with `table` resolved.
 */
export function resolveCollections(
  parsed: z.infer<typeof collectionsSchema>,
  where = 'server.collections',
): Record<string, CollectionConfig> {
  const collections: Record<string, CollectionConfig> = {}
  for (const [name, collection] of Object.entries(parsed)) {
    const at = `${where}.${name}`
    if (!collection.columns[collection.primaryKey]) {
      throw new TenantryError('INVALID_CONFIG', `${at}: primary key "${collection.primaryKey}" is not among its columns`)
    }
    const order = collection.defaultOrder?.replace(/^-/, '')
    if (order && !collection.columns[order]?.sortable && order !== collection.primaryKey) {
      throw new TenantryError('INVALID_CONFIG', `${at}.defaultOrder: "${order}" is not a sortable column`)
    }
    collections[name] = { ...collection, table: collection.table ?? name }
  }
  for (const [name, collection] of Object.entries(collections)) {
    for (const [column, def] of Object.entries(collection.columns)) {
      if (def.references === undefined) {
        if (def.onDelete !== undefined) throw new TenantryError('INVALID_CONFIG', `${where}.${name}.columns.${column}.onDelete: only a column with references has one`)
        continue
      }
      const at = `${where}.${name}.columns.${column}.references`
      const target = collections[def.references]
      if (!target) throw new TenantryError('INVALID_CONFIG', `${at}: no collection "${def.references}" is declared`)
      const keyType = target.columns[target.primaryKey]!.type
      if (keyType !== def.type) {
        throw new TenantryError('INVALID_CONFIG', `${at}: the column is ${def.type} but ${def.references}.${target.primaryKey} (its primary key) is ${keyType}`)
      }
    }
  }
  collectionsInReferenceOrder(collections, where)
  return collections
}

/**
 * Validates collection declarations strictly (a misspelt key is refused), as `INVALID_CONFIG`
 * naming the path, e.g. `server.collections.jobs.columns.title.type: …`.
 */
export function parseCollections(raw: unknown, where = 'server.collections'): Record<string, CollectionConfig> {
  const result = collectionsSchema.safeParse(raw ?? {})
  if (!result.success) {
    const issue = result.error.issues[0]!
    throw new TenantryError('INVALID_CONFIG', [where, ...issue.path.map(String)].join('.') + `: ${issue.message}`)
  }
  return resolveCollections(result.data, where)
}

/**
 * The names of `declarations` with every referenced collection before the collections that
 * reference it (so rows can be written, or copied, in this order), otherwise in declaration
 * order: the client's `referenceOrder`, one definition for both. A collection referencing itself
 * is allowed (a tree); a cycle through others is an `INVALID_CONFIG` naming it, e.g. `a → b → a`.
 */
export function collectionsInReferenceOrder(declarations: Readonly<Record<string, Referencing>>, where = 'server.collections'): string[] {
  const { order, cycle } = referenceOrder(declarations)
  if (cycle) throw new TenantryError('INVALID_CONFIG', `${where}: the references form a cycle: ${cycle.join(' → ')}`, { details: { cycle } })
  return order
}
