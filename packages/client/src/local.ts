import { Dexie, type DexieOptions, type Table } from 'dexie'
import type { Backend } from './backend.js'
import { resolveCollection, type CollectionsDeclaration, type ResolvedCollection } from './declaration.js'
import { TenantryClientError } from './errors.js'
import { comparator, cursorAfter, listQuery, passes } from './query.js'
import { localSchemas, parse, BULK_MAX, type LocalSchemas } from './schemas.js'
import { matchesSearch } from './search.js'

export interface LocalBackendOptions<C extends CollectionsDeclaration> {
  /** The same declarations as the server's `server.collections`. */
  collections: C
  /** The IndexedDB database's name. @default 'tenantry' */
  name?: string
  /**
   * Values of columns a create leaves out, by collection, where the server's table has a
   * default the declaration cannot tell (e.g. `{ highlights: { position: 0, hidden: false } }`).
   * A column left out with no default here is `null`.
   */
  defaults?: { [K in keyof C]?: Record<string, unknown> }
  /** Another IndexedDB (e.g. `fake-indexeddb`), as Dexie's `indexedDB` and `IDBKeyRange` options. */
  indexedDB?: { indexedDB: NonNullable<DexieOptions['indexedDB']>; IDBKeyRange: NonNullable<DexieOptions['IDBKeyRange']> }
}

type Row = Record<string, unknown>

/** The local backend: a `Backend` whose IndexedDB database the claim (claim.ts) also keeps its record in. */
export interface LocalBackend<C extends CollectionsDeclaration = CollectionsDeclaration> extends Backend<C> {
  readonly kind: 'local'
  /** The IndexedDB database's name. */
  readonly name: string
  /** The Dexie database: one store per collection, and `CLAIMS_STORE`. */
  readonly dexie: Dexie
}

/** The store of claim records (claim.ts): not a collection name, which is an identifier. */
export const CLAIMS_STORE = 'tenantry:claims'

interface Local {
  collection: ResolvedCollection
  schemas: LocalSchemas
  /** An integer primary key set by the database: IndexedDB's key generator numbers it. */
  autoIncrement: boolean
  /** Reference columns (`references` in the declaration): column → referenced collection. */
  references: Record<string, string>
}

/**
 * Collections in the browser's IndexedDB through Dexie, with the server's semantics: the same
 * validation (strict bodies, maxLength, required, nullable), the same order (nulls first
 * ascending, last descending, primary key to break ties), the same cursor format, filters,
 * search fold, error codes and all-or-none bulk writes; integer primary keys numbered from 1.
 *
 * Lists read the collection's rows and filter them in memory: right for an anonymous user's
 * own data (hundreds to a few thousand rows), not for a large data set.
 */
export function localBackend<const C extends CollectionsDeclaration>(options: LocalBackendOptions<C>): LocalBackend<C> {
  const locals = new Map<string, Local>()
  const stores: Record<string, string> = {}
  for (const [name, declaration] of Object.entries(options.collections)) {
    const collection = resolveCollection(name, declaration)
    const key = collection.columns[collection.primaryKey]!
    const autoIncrement = key.type === 'integer' && key.generated
    const references: Record<string, string> = {}
    for (const [column, c] of Object.entries(declaration.columns)) {
      const target = (c as { references?: string }).references
      if (target) references[column] = target
    }
    locals.set(name, { collection, schemas: localSchemas(collection), autoIncrement, references })
    stores[name] = `${autoIncrement ? '++' : ''}${collection.primaryKey}`
  }
  const dbName = options.name ?? 'tenantry'
  const db = new Dexie(dbName, options.indexedDB ? { indexedDB: options.indexedDB.indexedDB, IDBKeyRange: options.indexedDB.IDBKeyRange } : {})
  db.version(1).stores(stores)
  // Version 2 adds the claim records beside the collections.
  db.version(2).stores({ ...stores, [CLAIMS_STORE]: 'id' })
  const allTables = () => Object.keys(stores).map((name) => db.table(name))
  /**
   * Refuses a reference to a row that does not exist, as the server's foreign key does (409
   * CONSTRAINT_VIOLATION): a claim could not remap it. Null references pass.
   */
  const assertReferences = async (l: Local, row: Row) => {
    for (const [column, target] of Object.entries(l.references)) {
      const value = row[column]
      if (value === null || value === undefined) continue
      if ((await db.table(target).get(value as string | number)) === undefined) {
        throw referenceRefused()
      }
    }
  }

  /** For each collection, the columns elsewhere that refer to it, with their declared `onDelete`. */
  const referencedBy = new Map<string, Array<{ collection: string; column: string; onDelete: 'cascade' | 'set null' | 'restrict' }>>()
  for (const [name, declaration] of Object.entries(options.collections)) {
    for (const [column, c] of Object.entries(declaration.columns)) {
      if (!c.references) continue
      const list = referencedBy.get(c.references) ?? []
      list.push({ collection: name, column, onDelete: c.onDelete ?? 'restrict' })
      referencedBy.set(c.references, list)
    }
  }
  /**
   * Deletes rows `keys` of collection `name` as the server's database does, inside the caller's
   * transaction over every table: rows referring to them are deleted too (`cascade`), set to
   * null (`set null`), or refuse the delete (`restrict`, 409 CONSTRAINT_VIOLATION). Scans the
   * referring tables: right for a browser's own data.
   */
  const deleteRows = async (name: string, keys: Array<string | number>, deleting = new Set<string>()): Promise<void> => {
    const fresh = keys.filter((key) => !deleting.has(`${name}\u0000${key}`))
    if (fresh.length === 0) return
    for (const key of fresh) deleting.add(`${name}\u0000${key}`)
    const gone = new Set<unknown>(fresh)
    for (const ref of referencedBy.get(name) ?? []) {
      const table = db.table(ref.collection)
      const pk = locals.get(ref.collection)!.collection.primaryKey
      const referring = (await table.filter((row: Row) => gone.has(row[ref.column])).toArray()) as Row[]
      const others = referring.filter((row) => !deleting.has(`${ref.collection}\u0000${String(row[pk])}`))
      if (others.length === 0) continue
      if (ref.onDelete === 'restrict') throw referenceRefused()
      if (ref.onDelete === 'set null') await table.bulkPut(others.map((row) => ({ ...row, [ref.column]: null })))
      else await deleteRows(ref.collection, others.map((row) => row[pk] as string | number), deleting)
    }
    await db.table(name).bulkDelete(fresh)
  }

  const local = (name: string) => {
    const found = locals.get(name)
    if (!found) throw new TenantryClientError('NOT_FOUND', `No collection ${JSON.stringify(name)}`, 404)
    return { ...found, table: db.table(name) as Table<Row, string | number> }
  }
  const notFound = (name: string, id: unknown) => new TenantryClientError('NOT_FOUND', `No ${name} with id ${JSON.stringify(id)}`)
  const output = (collection: ResolvedCollection, row: Row): Row => {
    const out: Row = {}
    for (const name of Object.keys(collection.columns)) out[name] = row[name] ?? null
    return out
  }
  /** A new row: the given values, then defaults, then what the database would set for generated columns. */
  const newRow = ({ collection, autoIncrement }: Local, values: Row): Row => {
    const row: Row = {}
    const defaults = (options.defaults as Record<string, Row | undefined> | undefined)?.[collection.name] ?? {}
    const now = new Date().toISOString().replace('T', ' ').slice(0, 19)
    for (const [name, column] of Object.entries(collection.columns)) {
      if (name === collection.primaryKey && autoIncrement) continue
      if (values[name] !== undefined) row[name] = values[name]
      else if (defaults[name] !== undefined) row[name] = defaults[name]
      // Like the server's tables' CURRENT_TIMESTAMP: `YYYY-MM-DD HH:MM:SS`, UTC.
      else if (column.generated && column.type === 'text') row[name] = now
      else row[name] = null
    }
    return row
  }
  const constraint = (error: unknown): never => {
    const name = (error as { name?: string; inner?: { name?: string } })?.name
    const inner = (error as { inner?: { name?: string } })?.inner?.name
    if (name === 'ConstraintError' || inner === 'ConstraintError') {
      throw new TenantryClientError('CONSTRAINT_VIOLATION', 'The database refused the change: a value that must be unique is already taken', 409, { cause: error })
    }
    throw error
  }
  const filtered = async (l: ReturnType<typeof local>, query: ReturnType<typeof listQuery>) => {
    const searchable = Object.entries(l.collection.columns).filter(([, c]) => c.searchable).map(([n]) => n)
    const rows = await l.table.toArray()
    return rows.filter(
      (row) => query.filters.every((f) => passes(row[f.column], f)) && (query.q === undefined || matchesSearch(searchable.map((c) => row[c]), query.q)),
    )
  }

  return {
    kind: 'local',
    collections: options.collections,
    name: dbName,
    dexie: db,
    async list(name, listOptions) {
      const l = local(name)
      const query = listQuery(l.collection, listOptions)
      const order = comparator(query, l.collection.primaryKey)
      let rows = (await filtered(l, query)).sort(order)
      if (query.cursor) {
        const at = { [query.order.column]: query.cursor.value, [l.collection.primaryKey]: query.cursor.key }
        rows = rows.filter((row) => order(row, at) > 0)
      }
      const page = rows.slice(0, query.limit)
      const nextCursor = rows.length > query.limit ? cursorAfter(page.at(-1)!, query, l.collection.primaryKey) : null
      return { items: page.map((row) => output(l.collection, row)), nextCursor }
    },
    async count(name, countOptions) {
      const l = local(name)
      return (await filtered(l, listQuery(l.collection, countOptions, 'count'))).length
    },
    async get(name, id) {
      const l = local(name)
      const key = parse(l.schemas.id, id, 'params.id')
      const row = await l.table.get(key)
      if (!row) throw notFound(name, id)
      return output(l.collection, row)
    },
    async create(name, values) {
      const l = local(name)
      const row = newRow(l, parse(l.schemas.create, values, 'body'))
      const key = await db
        .transaction('rw', allTables(), async () => {
          await assertReferences(l, row)
          return l.table.add(row)
        })
        .catch(constraint)
      return output(l.collection, { ...row, [l.collection.primaryKey]: key })
    },
    async update(name, id, changes) {
      const l = local(name)
      const key = parse(l.schemas.id, id, 'params.id')
      const values = parse(l.schemas.update, changes, 'body')
      return db.transaction('rw', allTables(), async () => {
        const row = await l.table.get(key)
        if (!row) throw notFound(name, id)
        const next = { ...row, ...values }
        await assertReferences(l, next)
        const pk = l.collection.primaryKey
        if (next[pk] !== key) {
          // A new primary key moves the row, as SQL's UPDATE does; a key already taken is refused.
          await l.table.add(next).catch(constraint)
          await l.table.delete(key)
        } else await l.table.put(next)
        return output(l.collection, next)
      })
    },
    async delete(name, id) {
      const l = local(name)
      const key = parse(l.schemas.id, id, 'params.id')
      await db.transaction('rw', allTables(), async () => {
        if ((await l.table.get(key)) === undefined) throw notFound(name, id)
        await deleteRows(name, [key])
      })
    },
    async bulkCreate(name, items) {
      const l = local(name)
      if (!Array.isArray(items) || items.length < 1 || items.length > BULK_MAX) {
        throw new TenantryClientError('VALIDATION_FAILED', `body.items: 1 to ${BULK_MAX} new rows`)
      }
      // Every item is validated before anything is written, and the writes are one transaction: all or none.
      const rows = items.map((item, i) => newRow(l, parse(l.schemas.create, item, `body.items.${i}`)))
      return db
        .transaction('rw', allTables(), async () => {
          const out: Row[] = []
          for (const row of rows) {
            await assertReferences(l, row)
            out.push(output(l.collection, { ...row, [l.collection.primaryKey]: await l.table.add(row) }))
          }
          return out
        })
        .catch(constraint)
    },
    async bulkDelete(name, ids) {
      const l = local(name)
      const keys = parse(l.schemas.bulkIds, ids, 'body.ids')
      return db.transaction('rw', allTables(), async () => {
        const found = (await l.table.bulkGet([...new Set(keys)])).filter((row): row is Row => row !== undefined)
        await deleteRows(name, found.map((row) => row[l.collection.primaryKey] as string | number))
        return found.length
      })
    },
    async close() {
      db.close()
    },
  }
}

/** The server's answer to a write its foreign keys refuse: the same code, status and message. */
function referenceRefused(): TenantryClientError {
  return new TenantryClientError('CONSTRAINT_VIOLATION', 'The database refused the change: a referenced row does not exist, or rows still refer to this one', 409)
}
