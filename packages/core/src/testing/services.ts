import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { quoteIdentifier } from '../identifiers.js'
import { appRoleName, assertPostgresDataSourceId, rowGroupRoleName, templateDatabasePrefix, tenantRoleComment } from '../engines/postgres/postgres-names.js'

/** The server tests use. Override with TENANTRY_TEST_POSTGRES_URL. */
export const TEST_POSTGRES_URL = process.env.TENANTRY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

/** The files this process has open whose path starts with `path` (Linux only: /proc/self/fd). */
export function openFilesUnder(path: string): string[] {
  const targets = readdirSync('/proc/self/fd').map((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      return '' // closed since the listing
    }
  })
  return targets.filter((target) => target.startsWith(path))
}

/** A fresh directory under the OS temp dir, removed by the returned `cleanup`. */
export function tempDir(prefix = 'tenantry-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) }
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  try {
    await client.connect()
    await client.query('select 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

/** Starts the machine's Debian Postgres cluster, as the machine notes describe. */
function tryStartLocalPostgres(): void {
  if (!existsSync('/etc/postgresql')) return
  for (const version of readdirSync('/etc/postgresql')) {
    try {
      execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'ignore' })
    } catch {
      // already running, or not startable here: the connection check below decides
    }
  }
}

/**
 * Finds Postgres, starting the local cluster if it is down. Returns a reason string when
 * it is unavailable, for `describe.skipIf`. Under CI (`CI=true`) a missing Postgres throws:
 * a run that needed it must fail, never skip silently.
 */
export async function findPostgres(url = TEST_POSTGRES_URL): Promise<{ url: string } | { skip: string }> {
  if (await canConnect(url)) return { url }
  tryStartLocalPostgres()
  for (let i = 0; i < 20; i++) {
    if (await canConnect(url)) return { url }
    await new Promise((r) => setTimeout(r, 250))
  }
  const reason = `PostgreSQL is not reachable at ${url.replace(/\/\/[^@]*@/, '//')}`
  if (process.env.CI) throw new Error(`${reason}; CI requires it`)
  return { skip: reason }
}

/** A scratch database of `createTestDatabase`. */
export interface TestDatabase {
  /** Its URL: the server's, with the scratch database's name as the path. */
  url: string
  /** Its name. */
  name: string
  /** Drops it, terminating its connections. Idempotent. */
  drop(): Promise<void>
}

/**
 * Creates a scratch database on the test server (`serverUrl`, e.g. `findPostgres().url`),
 * named `<prefix>_<pid>_<random>` so that parallel test files never share one.
 *
 * @example
 * const postgres = await findPostgres()
 * if ('url' in postgres) {
 *   const data = await createTestDatabase(postgres.url, 'my_feature')
 *   afterAll(() => data.drop())
 * }
 */
export async function createTestDatabase(serverUrl: string, prefix = 'tenantry_test'): Promise<TestDatabase> {
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
  const quoted = quoteIdentifier(name)
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${quoted}`)
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    name,
    async drop() {
      const client = new pg.Client({ connectionString: serverUrl })
      await client.connect()
      try {
        await client.query(`DROP DATABASE IF EXISTS ${quoted} WITH (FORCE)`)
      } finally {
        await client.end()
      }
    },
  }
}

/**
 * Removes what Tenantry made on the test server for these Postgres data sources outside their
 * own databases: template databases, tenant roles, the row group role and the app role. Database-isolated
 * tenants' databases are named in the catalog: purge those tenants first (or `dropDatabases`
 * them), and drop the data source's database, before this.
 */
export async function dropAppRoles(serverUrl: string, dataSourceIds: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl })
  await client.connect()
  try {
    for (const id of dataSourceIds) {
      assertPostgresDataSourceId(id)
      const pattern = `${templateDatabasePrefix(id).replace(/_/g, '\\_')}%`
      const templates = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [pattern])
      await dropDatabases(client, templates.rows.map((r) => r.datname))
      const tenantRoles = await client.query<{ rolname: string }>(
        `SELECT r.rolname FROM pg_roles r JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass WHERE d.description = $1`,
        [tenantRoleComment(id)],
      )
      for (const { rolname } of tenantRoles.rows) await client.query(`DROP ROLE IF EXISTS ${quoteIdentifier(rolname)}`)
      await client.query(`DROP ROLE IF EXISTS ${quoteIdentifier(rowGroupRoleName(id))}`)
      await client.query(`DROP ROLE IF EXISTS ${quoteIdentifier(appRoleName(id))}`)
    }
  } finally {
    await client.end()
  }
}

/** Drops databases by name (template databases too), terminating their connections. Missing ones are skipped. */
export async function dropDatabases(server: string | pg.ClientBase, names: readonly string[]): Promise<void> {
  const client = typeof server === 'string' ? new pg.Client({ connectionString: server }) : server
  if (typeof server === 'string') await (client as pg.Client).connect()
  try {
    for (const name of names) {
      const quoted = quoteIdentifier(name)
      const [row] = (await client.query<{ datistemplate: boolean }>('SELECT datistemplate FROM pg_database WHERE datname = $1', [name])).rows
      if (!row) continue
      if (row.datistemplate) await client.query(`ALTER DATABASE ${quoted} WITH IS_TEMPLATE false`)
      await client.query(`DROP DATABASE IF EXISTS ${quoted} WITH (FORCE)`)
    }
  } finally {
    if (typeof server === 'string') await (client as pg.Client).end()
  }
}

/** A managed-Postgres-like admin of `createManagedAdmin`. */
export interface ManagedAdmin {
  /** The admin's URL: its own database, logged in as it. */
  url: string
  /** The role's name (also its database's). */
  role: string
  /** Drops the databases the role owns, then the role. Idempotent. Drop the data sources' roles (`dropAppRoles`) too. */
  drop(): Promise<void>
}

/**
 * Creates an admin as managed Postgres services give one (RDS, Cloud SQL, Supabase, Neon):
 * a role with only `LOGIN CREATEDB CREATEROLE`, not a superuser, and a database it owns.
 * `serverUrl` must log in as a superuser. Use its `url` as a data source URL.
 *
 * @example
 * const admin = await createManagedAdmin(postgres.url)
 * afterAll(async () => { await dropAppRoles(postgres.url, [id]); await admin.drop() })
 */
export async function createManagedAdmin(serverUrl: string, prefix = 'tenantry_managed'): Promise<ManagedAdmin> {
  const role = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
  const password = Math.random().toString(36).slice(2)
  const client = new pg.Client({ connectionString: serverUrl })
  await client.connect()
  try {
    await client.query(`CREATE ROLE ${quoteIdentifier(role)} LOGIN CREATEDB CREATEROLE PASSWORD '${password}'`)
    await client.query(`CREATE DATABASE ${quoteIdentifier(role)} OWNER ${quoteIdentifier(role)}`)
  } finally {
    await client.end()
  }
  const url = new URL(serverUrl)
  url.username = role
  url.password = password
  url.pathname = `/${role}`
  return {
    url: url.toString(),
    role,
    async drop() {
      const admin = new pg.Client({ connectionString: serverUrl })
      await admin.connect()
      try {
        const owned = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = $1)', [role])
        await dropDatabases(admin, owned.rows.map((r) => r.datname))
        if ((await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount) {
          await admin.query(`DROP OWNED BY ${quoteIdentifier(role)}`)
          await admin.query(`DROP ROLE ${quoteIdentifier(role)}`)
        }
      } finally {
        await admin.end()
      }
    },
  }
}
