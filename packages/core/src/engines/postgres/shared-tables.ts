import type pg from 'pg'
import { TenantryError } from '../../errors.js'
import { quoteIdentifier, quoteReportedName } from '../../identifiers.js'
import type { SharedTables } from '../engine.js'
import type { PostgresContext } from './isolation-kind.js'
import { openPostgresHandle } from './postgres-handle.js'
import { rowGroupRoleName } from './postgres-names.js'

/**
 * The schema of the app's shared tables (seed 002's `public`): in the data source's own
 * database, where schema tenants' and row tenants' connections are too. Database tenants are
 * in databases of their own, which Postgres cannot query across.
 */
export const SHARED_SCHEMA = 'public'

/** Serialises changing what tenants may read with making a tenant role that must be given the same. */
function sharedLock(dataSourceId: string): string {
  return `tenantry-shared:${dataSourceId}`
}

/** Relation kinds a role can `SELECT` from. */
const READABLE_KINDS = `('r', 'p', 'v', 'm', 'f')`

/** Roles per GRANT statement: one statement per 1,000 tenants, not one per tenant. */
const ROLES_PER_STATEMENT = 1000

/**
 * Shared tables on a Postgres data source. The app role is the record of what tenants may read:
 * `grantReadable` gives it (and every tenant role there is) `SELECT` on the declared tables, and a
 * tenant role made later is given what the app role may read (`grantSharedReads`). No role but
 * the admin may write a shared table or create in the schema.
 */
export function postgresSharedTables(context: PostgresContext, ensureAppRole: () => Promise<void>): SharedTables {
  const { connection, logger } = context
  return {
    location: `schema ${SHARED_SCHEMA} of data source ${context.dataSourceId}`,

    open() {
      return openPostgresHandle({ pool: connection.admin, ownsPool: false, schema: SHARED_SCHEMA, logger })
    },

    async grantReadable(tables: readonly string[]) {
      await ensureAppRole()
      await connection.transaction(async (client) => {
        const found = await client.query<{ relname: string }>(
          `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = $1 and c.relkind in ${READABLE_KINDS} and c.relname = any($2)`,
          [SHARED_SCHEMA, [...tables]],
        )
        const missing = tables.filter((t) => !found.rows.some((r) => r.relname === t))
        if (missing.length) {
          throw new TenantryError(
            'INVALID_CONFIG',
            `migrations.shared.readable names ${missing.map((t) => `${SHARED_SCHEMA}.${t}`).join(', ')}, which the shared migrations did not make`,
          )
        }
        const roles = await readers(client, context)
        for (let i = 0; i < roles.length; i += ROLES_PER_STATEMENT) {
          const to = roles.slice(i, i + ROLES_PER_STATEMENT).map(quoteReportedName).join(', ')
          // Everything back first, so that a table left out of `readable` is taken back, then SELECT on the declared ones.
          await client.query(`REVOKE ALL ON ALL TABLES IN SCHEMA ${quoteIdentifier(SHARED_SCHEMA)} FROM ${to}`)
          await client.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${quoteIdentifier(SHARED_SCHEMA)} FROM ${to}`)
          if (tables.length === 0) continue
          await client.query(`GRANT USAGE ON SCHEMA ${quoteIdentifier(SHARED_SCHEMA)} TO ${to}`)
          await client.query(`GRANT SELECT ON ${tables.map((t) => `${quoteIdentifier(SHARED_SCHEMA)}.${quoteIdentifier(t)}`).join(', ')} TO ${to}`)
        }
      }, sharedLock(context.dataSourceId))
    },
  }
}

/**
 * The roles whose connections run app code or raw SQL in the data source's database, and so
 * read shared tables: the app role, the row group role (row tenants' roles inherit from it),
 * and each schema tenant's own and read-only roles (those with `USAGE` on their `t_<id>` schema).
 */
async function readers(client: pg.ClientBase, context: PostgresContext): Promise<string[]> {
  const rows = await client.query<{ rolname: string }>(
    `select r.rolname from pg_roles r
      where r.rolname in ($1, $2)
         or exists (select 1 from pg_namespace n
                     where n.nspname = substring(r.rolname from '^(t_t[a-z2-7]{19})_(?:app|ro)$')
                       and has_schema_privilege(r.oid, n.oid, 'USAGE'))
      order by r.rolname`,
    [context.appRole, rowGroupRoleName(context.dataSourceId)],
  )
  return rows.rows.map((r) => r.rolname)
}

/**
 * Gives `role` (a schema tenant's own or read-only role, or the row group role, just made)
 * `SELECT` on the shared tables the app role may read: what `grantReadable` last declared.
 * Runs inside the caller's transaction, after the shared lock, so a concurrent `grantReadable`
 * either sees the role or has finished.
 */
export async function grantSharedReads(client: pg.ClientBase, context: PostgresContext, role: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [sharedLock(context.dataSourceId)])
  if (!(await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [context.appRole])).rowCount) return
  const rows = await client.query<{ relname: string }>(
    `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ${READABLE_KINDS} and has_table_privilege($2, c.oid, 'SELECT')`,
    [SHARED_SCHEMA, context.appRole],
  )
  if (rows.rows.length === 0) return
  const tables = rows.rows.map((r) => `${quoteIdentifier(SHARED_SCHEMA)}.${quoteReportedName(r.relname)}`).join(', ')
  await client.query(`GRANT USAGE ON SCHEMA ${quoteIdentifier(SHARED_SCHEMA)} TO ${quoteIdentifier(role)}`)
  await client.query(`GRANT SELECT ON ${tables} TO ${quoteIdentifier(role)}`)
}
