import { sql, type DatabaseIntrospector, type DatabaseMetadata, type Kysely, type SchemaMetadata, type TableMetadata } from 'kysely'

/**
 * Introspection of one schema only. Kysely's Migrator looks for its tables through
 * `getSchemas()` and `getTables()` on every run, and Postgres's introspector lists every table
 * of every schema: with a schema per tenant, each tenant's migrate would cost more the more
 * tenants there are, and a fan-out would grow with their square.
 */
export class SchemaIntrospector implements DatabaseIntrospector {
  readonly #db: Kysely<any>
  readonly #schema: string

  constructor(db: Kysely<any>, schema: string) {
    this.#db = db
    this.#schema = schema
  }

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string }>`select nspname as name from pg_namespace where nspname = ${this.#schema}`.execute(this.#db)
    return rows
  }

  async getTables(): Promise<TableMetadata[]> {
    const { rows } = await sql<{
      table: string
      is_view: boolean
      column: string | null
      data_type: string | null
      nullable: boolean | null
      has_default: boolean | null
      identity: boolean | null
    }>`
      select c.relname as table, c.relkind in ('v', 'm') as is_view, a.attname as column,
        format_type(a.atttypid, a.atttypmod) as data_type, not a.attnotnull as nullable,
        a.atthasdef as has_default, a.attidentity <> '' as identity
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where n.nspname = ${this.#schema} and c.relkind in ('r', 'p', 'v', 'm')
      order by c.relname, a.attnum`.execute(this.#db)
    const tables = new Map<string, TableMetadata & { columns: TableMetadata['columns'][number][] }>()
    for (const row of rows) {
      let table = tables.get(row.table)
      if (!table) {
        table = { name: row.table, schema: this.#schema, isView: row.is_view, columns: [] }
        tables.set(row.table, table)
      }
      if (row.column !== null) {
        table.columns.push({
          name: row.column,
          dataType: row.data_type!,
          isNullable: row.nullable!,
          hasDefaultValue: row.has_default! || row.identity!,
          isAutoIncrementing: row.identity!,
        })
      }
    }
    return [...tables.values()]
  }

  async getMetadata(): Promise<DatabaseMetadata> {
    return { tables: await this.getTables() }
  }
}
