import { Dexie, type Table } from 'dexie'
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
  indexedDB?: { indexedDB: IDBFactory; IDBKeyRange: typeof IDBKeyRange }
}

type Row = Record<string, unknown>

interface Local {
  collection: ResolvedCollection
  schemas: LocalSchemas
  /** An integer primary key set by the database: IndexedDB's key generator numbers it. */
  autoIncrement: boolean
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
export function localBackend<const C extends CollectionsDeclaration>(options: LocalBackendOptions<C>): Backend<C> {
  const locals = new Map<string, Local>()
  const stores: Record<string, string> = {}
  for (const [name, declaration] of Object.entries(options.collections)) {
    const collection = resolveCollection(name, declaration)
    const key = collection.columns[collection.primaryKey]!
    const autoIncrement = key.type === 'integer' && key.generated
    locals.set(name, { collection, schemas: localSchemas(collection), autoIncrement })
    stores[name] = `${autoIncrement ? '++' : ''}${collection.primaryKey}`
  }
  const db = new Dexie(options.name ?? 'tenantry', options.indexedDB ? { indexedDB: options.indexedDB.indexedDB, IDBKeyRange: options.indexedDB.IDBKeyRange } : {})
  db.version(1).stores(stores)

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
      const key = await l.table.add(row).catch(constraint)
      return output(l.collection, { ...row, [l.collection.primaryKey]: key })
    },
    async update(name, id, changes) {
      const l = local(name)
      const key = parse(l.schemas.id, id, 'params.id')
      const values = parse(l.schemas.update, changes, 'body')
      return db.transaction('rw', l.table, async () => {
        const row = await l.table.get(key)
        if (!row) throw notFound(name, id)
        const next = { ...row, ...values }
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
      await db.transaction('rw', l.table, async () => {
        if ((await l.table.get(key)) === undefined) throw notFound(name, id)
        await l.table.delete(key)
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
        .transaction('rw', l.table, async () => {
          const out: Row[] = []
          for (const row of rows) out.push(output(l.collection, { ...row, [l.collection.primaryKey]: await l.table.add(row) }))
          return out
        })
        .catch(constraint)
    },
    async bulkDelete(name, ids) {
      const l = local(name)
      const keys = parse(l.schemas.bulkIds, ids, 'body.ids')
      return db.transaction('rw', l.table, async () => {
        const unique = [...new Set(keys)]
        const found = (await l.table.bulkGet(unique)).filter((row) => row !== undefined).length
        await l.table.bulkDelete(unique)
        return found
      })
    },
    async close() {
      db.close()
    },
  }
}
