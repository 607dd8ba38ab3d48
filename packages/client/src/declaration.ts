/**
 * Collection declarations: the same objects the server's config takes in `server.collections`
 * (see packages/server/src/server-config.ts), written once and imported by both the server's
 * config and the browser app, so row types and validation never drift apart.
 *
 * @example
 * export const collections = defineCollections({
 *   jobs: { columns: { id: { type: 'integer', generated: true }, company: { type: 'text', required: true } } },
 * })
 */

export type ColumnType = 'text' | 'integer' | 'number' | 'boolean' | 'date'

/** One column, as in the server config (every flag defaults to false). */
export interface ColumnDeclaration {
  readonly type: ColumnType
  readonly required?: boolean
  readonly nullable?: boolean
  readonly generated?: boolean
  readonly filterable?: boolean
  readonly sortable?: boolean
  readonly searchable?: boolean
  readonly maxLength?: number
  /**
   * A declared foreign key: the name of another collection of the same declaration whose
   * primary key this column holds (same type). The server's config checks both.
   */
  readonly references?: string
  /**
   * What deleting the referenced row does to rows that refer to it: the table's own `ON DELETE`
   * (the server's database applies it; the local backend does the same). Only with `references`.
   * @default 'restrict' (the delete is refused while rows refer to it)
   */
  readonly onDelete?: 'cascade' | 'set null' | 'restrict'
}

/** One collection, as in the server config. */
export interface CollectionDeclaration {
  readonly table?: string
  /** @default 'id' */
  readonly primaryKey?: string
  readonly columns: Readonly<Record<string, ColumnDeclaration>>
  /** @default the primary key */
  readonly defaultOrder?: string
  /** @default 100 */
  readonly maxLimit?: number
}

export type CollectionsDeclaration = Readonly<Record<string, CollectionDeclaration>>

/** Returns `collections` as given, typed to the letter (a `const` type parameter: no `as const` needed). */
export function defineCollections<const C extends CollectionsDeclaration>(collections: C): C {
  return collections
}

type ValueOf<T extends ColumnType> = T extends 'integer' | 'number' ? number : T extends 'boolean' ? boolean : string

/** A column's value in a row the API answers: `null` where the column is nullable or may be left unset. */
type RowValue<C extends ColumnDeclaration> = C['nullable'] extends true
  ? ValueOf<C['type']> | null
  : C['required'] extends true
    ? ValueOf<C['type']>
    : C['generated'] extends true
      ? ValueOf<C['type']>
      : ValueOf<C['type']> | null

type Simplify<T> = { [K in keyof T]: T[K] } & {}

/** A row of collection `D`, as `get` and `list` answer it. */
export type RowOf<D extends CollectionDeclaration> = Simplify<{ -readonly [K in keyof D['columns']]: RowValue<D['columns'][K]> }>

type Writable<D extends CollectionDeclaration> = {
  [K in keyof D['columns'] as D['columns'][K]['generated'] extends true ? never : K]: D['columns'][K]
}
type InputValue<C extends ColumnDeclaration> = C['nullable'] extends true ? ValueOf<C['type']> | null : ValueOf<C['type']>

/** What `create` takes: the writable columns, the required ones required. */
export type CreateOf<D extends CollectionDeclaration> = Simplify<
  { -readonly [K in keyof Writable<D> as Writable<D>[K]['required'] extends true ? K : never]: InputValue<Writable<D>[K]> } & {
    -readonly [K in keyof Writable<D> as Writable<D>[K]['required'] extends true ? never : K]?: InputValue<Writable<D>[K]>
  }
>

/** What `update` takes: any writable columns. */
export type UpdateOf<D extends CollectionDeclaration> = Simplify<{ -readonly [K in keyof Writable<D>]?: InputValue<Writable<D>[K]> }>

type PrimaryKeyOf<D extends CollectionDeclaration> = D['primaryKey'] extends string ? D['primaryKey'] : 'id'

/** The primary key's type of collection `D`. */
export type IdOf<D extends CollectionDeclaration> = PrimaryKeyOf<D> extends keyof D['columns']
  ? ValueOf<D['columns'][PrimaryKeyOf<D>]['type']>
  : string | number

/** Comparison operators of a filter; a bare value is `eq`. The server's `FILTER_OPERATORS`. */
export const FILTER_OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte'] as const
export type FilterOperator = (typeof FILTER_OPERATORS)[number]

type FilterValue<C extends ColumnDeclaration> = C['nullable'] extends true ? ValueOf<C['type']> | null : ValueOf<C['type']>

/** `where` of `list` and `count`: filterable columns, each a value (equals) or operators. */
export type WhereOf<D extends CollectionDeclaration> = {
  [K in keyof D['columns'] as D['columns'][K]['filterable'] extends true ? K : never]?:
    | FilterValue<D['columns'][K]>
    | { [O in FilterOperator]?: FilterValue<D['columns'][K]> }
}

type Sortable<D extends CollectionDeclaration> = Extract<
  PrimaryKeyOf<D> | { [K in keyof D['columns']]: D['columns'][K]['sortable'] extends true ? K : never }[keyof D['columns']],
  string
>

/** `order` of `list`: a sortable column (or the primary key), `-` for descending. */
export type OrderOf<D extends CollectionDeclaration> = Sortable<D> | `-${Sortable<D>}`

/** A declaration with the server's defaults filled in. */
export interface ResolvedCollection {
  name: string
  table: string
  primaryKey: string
  columns: Record<string, Required<Omit<ColumnDeclaration, 'maxLength' | 'references' | 'onDelete'>> & { maxLength?: number; references?: string; onDelete?: 'cascade' | 'set null' | 'restrict' }>
  defaultOrder: string
  maxLimit: number
}

/** Fills in the defaults the server's config schema applies. */
export function resolveCollection(name: string, declaration: CollectionDeclaration): ResolvedCollection {
  const primaryKey = declaration.primaryKey ?? 'id'
  const columns: ResolvedCollection['columns'] = {}
  for (const [column, c] of Object.entries(declaration.columns)) {
    columns[column] = {
      type: c.type,
      required: c.required ?? false,
      nullable: c.nullable ?? false,
      generated: c.generated ?? false,
      filterable: c.filterable ?? false,
      sortable: c.sortable ?? false,
      searchable: c.searchable ?? false,
      ...(c.maxLength !== undefined ? { maxLength: c.maxLength } : {}),
      ...(c.references !== undefined ? { references: c.references, onDelete: c.onDelete ?? 'restrict' } : {}),
    }
  }
  if (!columns[primaryKey]) throw new Error(`collection ${name}: primary key "${primaryKey}" is not among its columns`)
  return {
    name,
    table: declaration.table ?? name,
    primaryKey,
    columns,
    defaultOrder: declaration.defaultOrder ?? primaryKey,
    maxLimit: declaration.maxLimit ?? 100,
  }
}

/** What `referenceOrder` reads of a declaration: its columns' `references`. */
export interface Referencing {
  readonly columns: Readonly<Record<string, { readonly type: string; readonly references?: string | undefined }>>
}

/**
 * The names of `declarations` with every referenced collection before those that reference it
 * (so rows can be written, or copied, in this order), otherwise in declaration order. A
 * collection referencing itself (a tree) is no cycle; a cycle through others is answered as
 * `cycle` (e.g. `['a', 'b', 'a']`), and `order` is then incomplete. The server's config refuses
 * a cycle (`collectionsInReferenceOrder` in `tenantry`), so a client never meets one.
 */
export function referenceOrder(declarations: Readonly<Record<string, Referencing>>): { order: string[]; cycle?: string[] } {
  const order: string[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string, path: string[]): string[] | undefined => {
    const seen = state.get(name)
    if (seen === 'done') return undefined
    if (seen === 'visiting') return [...path.slice(path.indexOf(name)), name]
    state.set(name, 'visiting')
    for (const column of Object.values(declarations[name]?.columns ?? {})) {
      const target = column.references
      if (target === undefined || target === name || !(target in declarations)) continue
      const cycle = visit(target, [...path, name])
      if (cycle) return cycle
    }
    state.set(name, 'done')
    order.push(name)
    return undefined
  }
  for (const name of Object.keys(declarations)) {
    const cycle = visit(name, [])
    if (cycle) return { order, cycle }
  }
  return { order }
}
