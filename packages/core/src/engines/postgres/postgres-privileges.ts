import { CompiledQuery, type Kysely } from 'kysely'
import type pg from 'pg'
import { quoteIdentifier, quoteLiteral, quoteReportedName } from '../../identifiers.js'
import type { PostgresLogin } from './postgres-connection.js'
import { TENANT_MIGRATION_TABLES, tenantRoleComment } from './postgres-names.js'

/** The lock name that serialises changes to one role (its creation, attributes and grants). */
export function roleLock(role: string): string {
  return `tenantry-role:${role}`
}

/** The app role's attributes: it logs in, and can do nothing that widens its reach. */
export const APP_ROLE_ATTRIBUTES = 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS'

/** A read-only role's attributes: the app role's, and it inherits nothing granted to roles it is a member of. */
export const READ_ONLY_ROLE_ATTRIBUTES = `${APP_ROLE_ATTRIBUTES} NOINHERIT`

/** A tenant's own login role (schema and database isolation): the app role's attributes, inheriting nothing. */
export const TENANT_ROLE_ATTRIBUTES = `${APP_ROLE_ATTRIBUTES} NOINHERIT`

/**
 * A row tenant's own login role: the app role's attributes, inheriting the privileges of the
 * row group role, the one role it is a member of (RLS keys on the login role itself).
 */
export const ROW_TENANT_ROLE_ATTRIBUTES = `${APP_ROLE_ATTRIBUTES} INHERIT`

/**
 * The row group role's attributes: it holds table privileges and nothing else; no one logs
 * in as it, and it inherits nothing (it is a member of no role).
 */
export const ROW_GROUP_ROLE_ATTRIBUTES = 'NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT'

/** The DML privileges an app or tenant role may be given on tenant tables (the data source's `appPrivileges`). */
export const APP_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const
export type AppPrivilege = (typeof APP_PRIVILEGES)[number]

/** The privileges in a fixed order, without repeats: `SELECT, INSERT` whatever order the config named them in. */
export function privilegeList(privileges: readonly AppPrivilege[]): string {
  return APP_PRIVILEGES.filter((p) => privileges.includes(p)).join(', ')
}

/**
 * Attributes only a superuser may name in `ALTER ROLE`, even to turn them off (Postgres
 * answers "must be superuser to alter superuser roles"), mapped to the `pg_roles` column
 * that says whether they are on.
 */
const SUPERUSER_ONLY: Record<string, 'rolsuper' | 'rolreplication' | 'rolbypassrls'> = {
  NOSUPERUSER: 'rolsuper',
  NOREPLICATION: 'rolreplication',
  NOBYPASSRLS: 'rolbypassrls',
}

/**
 * Creates login role `name`, or brings an existing one's attributes and password back to
 * what they must be, as an admin that need not be a superuser (`CREATEROLE` is enough, as on
 * managed Postgres). The admin is made a member of the role: `DROP OWNED BY`, and ending the
 * role's sessions in `DROP DATABASE … WITH (FORCE)`, need that where it is not a superuser.
 * (On Postgres 16+ the creator holds ADMIN OPTION on the role, which lets it grant that.)
 * Run it under `roleLock(name)`.
 */
export async function upsertLoginRole(client: pg.ClientBase, name: string, attributes: string, password: string | undefined): Promise<void> {
  const role = quoteIdentifier(name)
  const [existing] = (
    await client.query<{ rolsuper: boolean; rolreplication: boolean; rolbypassrls: boolean; member: boolean }>(
      `SELECT rolsuper, rolreplication, rolbypassrls, pg_has_role(current_user, oid, 'USAGE') AS member FROM pg_roles WHERE rolname = $1`,
      [name],
    )
  ).rows
  const secret = password === undefined ? '' : ` PASSWORD ${quoteLiteral(password)}`
  if (!existing) {
    await client.query(`CREATE ROLE ${role} WITH ${attributes}${secret}`)
  } else {
    // Name a superuser-only attribute only when it is on and must go: that needs a superuser, and the error then says so.
    const alterable = attributes.split(' ').filter((a) => !(a in SUPERUSER_ONLY) || existing[SUPERUSER_ONLY[a]!])
    await client.query(`ALTER ROLE ${role} WITH ${alterable.join(' ')}${secret}`)
  }
  if (!existing?.member) await client.query(`GRANT ${role} TO CURRENT_USER`)
}

/**
 * Creates (or brings back in step) a tenant's own role, marked with its data source. Run it
 * under `roleLock(name)`. Row tenants' roles inherit (from the row group role, their only membership).
 */
export async function upsertTenantRole(
  client: pg.ClientBase,
  dataSourceId: string,
  login: PostgresLogin,
  attributes: string = TENANT_ROLE_ATTRIBUTES,
): Promise<void> {
  await upsertLoginRole(client, login.name, attributes, login.password)
  await client.query(`COMMENT ON ROLE ${quoteIdentifier(login.name)} IS ${quoteLiteral(tenantRoleComment(dataSourceId))}`)
}

/**
 * Drops login role `name` and what was granted to it in the current database, if it exists.
 * Privileges in other databases must be gone already (their database dropped, or `DROP OWNED` there).
 */
export async function dropLoginRole(client: pg.ClientBase, name: string): Promise<void> {
  if (!(await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rowCount) return
  await client.query(`DROP OWNED BY ${quoteIdentifier(name)}`)
  await client.query(`DROP ROLE ${quoteIdentifier(name)}`)
}

/**
 * Lets `role` (a tenant's own role, or the app role for the shared row schema) read and write
 * the tables (and use the sequences) that migrations will make in `schema`, which the admin
 * owns: the role may use them but never alter them. Default
 * privileges live in each database, and a template database passes them on to its copies.
 */
export async function grantAppAccessOnSchema(client: pg.ClientBase, schema: string, role: string, privileges: readonly AppPrivilege[]): Promise<void> {
  const [on, app] = [quoteIdentifier(schema), quoteIdentifier(role)]
  await client.query(`GRANT USAGE ON SCHEMA ${on} TO ${app}`)
  await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${on} GRANT ${privilegeList(privileges)} ON TABLES TO ${app}`)
  await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${on} GRANT USAGE, SELECT ON SEQUENCES TO ${app}`)
}

/**
 * `grantAppAccessOnSchema` for a schema that already holds tables (a copy of a template
 * database): the same rights on what is there now, and on what later migrations add, with
 * Tenantry's migration tables readable only.
 */
export async function grantAppAccessOnMigratedSchema(client: pg.ClientBase, schema: string, role: string, privileges: readonly AppPrivilege[]): Promise<void> {
  await grantAppAccessOnSchema(client, schema, role, privileges)
  await syncTablePrivileges(async <R>(text: string, values: unknown[] = []) => (await client.query(text, values)).rows as R[], schema, role, privileges)
}

/**
 * Brings `role`'s privileges on every table and sequence now in `schema` to exactly
 * `privileges` (the data source's `appPrivileges`: one left out of the config is taken back,
 * now and in the default privileges), with Tenantry's migration tables readable only. Run after
 * each migration, inside its transaction, so that a new table and a changed setting both apply.
 */
async function syncTablePrivileges(run: RunQuery, schema: string, role: string, privileges: readonly AppPrivilege[]): Promise<void> {
  const [on, app] = [quoteIdentifier(schema), quoteIdentifier(role)]
  const withheld = APP_PRIVILEGES.filter((p) => !privileges.includes(p))
  if (withheld.length) {
    await run(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${on} REVOKE ${withheld.join(', ')} ON TABLES FROM ${app}`)
    await run(`REVOKE ${withheld.join(', ')} ON ALL TABLES IN SCHEMA ${on} FROM ${app}`)
  }
  await run(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${on} GRANT ${privilegeList(privileges)} ON TABLES TO ${app}`)
  await run(`GRANT ${privilegeList(privileges)} ON ALL TABLES IN SCHEMA ${on} TO ${app}`)
  await run(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${on} TO ${app}`)
  await revokeMigrationWrites(run, schema)
}

/**
 * `syncTablePrivileges` for an admin handle's `afterEachMigration` (on the migration's own
 * connection and transaction). A role that does not exist (a tenant made before tenants had
 * their own, or a template database that names none) is skipped: it gets its grants when made.
 */
export async function syncAppPrivilegesAfterMigration(db: Kysely<any>, schema: string, role: string | undefined, privileges: readonly AppPrivilege[]): Promise<void> {
  const run = kyselyRun(db)
  if (role !== undefined && (await run('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).length > 0) {
    await syncTablePrivileges(run, schema, role, privileges)
  } else {
    await revokeMigrationWrites(run, schema)
  }
}

/**
 * Takes from the shared app role what it was granted on a schema- or database-isolated
 * tenant's `schema` before tenants had roles of their own. Idempotent.
 */
export async function revokeAppRoleFromSchema(client: pg.ClientBase, schema: string, appRole: string): Promise<void> {
  const [on, app] = [quoteIdentifier(schema), quoteIdentifier(appRole)]
  if (!(await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [appRole])).rowCount) return
  await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${on} REVOKE ALL ON TABLES FROM ${app}`)
  await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${on} REVOKE ALL ON SEQUENCES FROM ${app}`)
  await client.query(`REVOKE ALL ON ALL TABLES IN SCHEMA ${on} FROM ${app}`)
  await client.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${on} FROM ${app}`)
  await client.query(`REVOKE ALL ON SCHEMA ${on} FROM ${app}`)
}

/** Lets `role` read every table of `schema`, now and after later migrations, and nothing else. */
export async function grantReadOnSchema(client: pg.ClientBase, schema: string, role: string): Promise<void> {
  const [on, to] = [quoteIdentifier(schema), quoteIdentifier(role)]
  await client.query(`GRANT USAGE ON SCHEMA ${on} TO ${to}`)
  await client.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${on} TO ${to}`)
  await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${on} GRANT SELECT ON TABLES TO ${to}`)
}

/** Runs one statement with `$n` parameters and returns its rows: a pg client's or a Kysely connection's. */
type RunQuery = <R>(text: string, values?: unknown[]) => Promise<R[]>

/**
 * Takes every write on Tenantry's migration tables in `schema` from everyone but their owner
 * (the admin): the app role, tenant roles, PUBLIC. The migration records are the admin's to
 * keep; a role that could delete them would make the tenant's next migration fail. Tables
 * not made yet are skipped.
 */
async function revokeMigrationWrites(run: RunQuery, schema: string): Promise<void> {
  const rows = await run<{ grantee: string | null }>(
    `select distinct case when a.grantee = 0 then null else pg_get_userbyid(a.grantee) end as grantee
     from pg_class c join pg_namespace n on n.oid = c.relnamespace, aclexplode(c.relacl) a
     where n.nspname = $1 and c.relname = any($2) and a.grantee <> c.relowner
       and a.privilege_type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')`,
    [schema, [...TENANT_MIGRATION_TABLES]],
  )
  if (rows.length === 0) return
  const grantees = rows.map((r) => (r.grantee === null ? 'PUBLIC' : quoteReportedName(r.grantee))).join(', ')
  const existing = await run<{ relname: string }>(
    `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = any($2)`,
    [schema, [...TENANT_MIGRATION_TABLES]],
  )
  const tables = existing.map((t) => `${quoteIdentifier(schema)}.${quoteReportedName(t.relname)}`).join(', ')
  await run(`REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ${tables} FROM ${grantees}`)
}

/**
 * `revokeMigrationWrites` for an admin handle's `afterEachMigration`: it runs inside each
 * migration's transaction, when Kysely has made the tables, so no tenant is ever migrated
 * with its records writable by the app.
 */
export function protectMigrationTables(db: Kysely<any>, schema: string): Promise<void> {
  return revokeMigrationWrites(kyselyRun(db), schema)
}

function kyselyRun(db: Kysely<any>): RunQuery {
  return async <R>(text: string, values: unknown[] = []) => {
    const compiled = CompiledQuery.raw(text, values)
    return (await db.executeQuery<R>(compiled)).rows as R[]
  }
}
