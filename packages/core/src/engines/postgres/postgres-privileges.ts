import type pg from 'pg'
import { quoteIdentifier, quoteLiteral } from '../../identifiers.js'

/** The lock name that serialises changes to one role (its creation, attributes and grants). */
export function roleLock(role: string): string {
  return `tenantry-role:${role}`
}

/** The app role's attributes: it logs in, and can do nothing that widens its reach. */
export const APP_ROLE_ATTRIBUTES = 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS'

/** A read-only role's attributes: the app role's, and it inherits nothing granted to roles it is a member of. */
export const READ_ONLY_ROLE_ATTRIBUTES = `${APP_ROLE_ATTRIBUTES} NOINHERIT`

/**
 * Creates login role `name`, or brings an existing one's attributes and password back to
 * what they must be. Run it under `roleLock(name)`.
 */
export async function upsertLoginRole(client: pg.ClientBase, name: string, attributes: string, password: string): Promise<void> {
  const exists = (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rowCount
  await client.query(`${exists ? 'ALTER' : 'CREATE'} ROLE ${quoteIdentifier(name)} WITH ${attributes} PASSWORD ${quoteLiteral(password)}`)
}

/**
 * Lets the app role read and write the tables (and use the sequences) that migrations will
 * make in `schema`, which the admin owns: the app role may use them but never alter them.
 * Default privileges live in each database, and a template database passes them on to its copies.
 */
export async function grantAppRoleOnSchema(client: pg.ClientBase, schema: string, appRole: string): Promise<void> {
  const [on, app] = [quoteIdentifier(schema), quoteIdentifier(appRole)]
  await client.query(`GRANT USAGE ON SCHEMA ${on} TO ${app}`)
  await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${on} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${app}`)
  await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${on} GRANT USAGE, SELECT ON SEQUENCES TO ${app}`)
}

/** Lets `role` read every table of `schema`, now and after later migrations, and nothing else. */
export async function grantReadOnSchema(client: pg.ClientBase, schema: string, role: string): Promise<void> {
  const [on, to] = [quoteIdentifier(schema), quoteIdentifier(role)]
  await client.query(`GRANT USAGE ON SCHEMA ${on} TO ${to}`)
  await client.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${on} TO ${to}`)
  await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${on} GRANT SELECT ON TABLES TO ${to}`)
}
