import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'

/** The server tests use. Override with TENANTRY_TEST_POSTGRES_URL. */
export const TEST_POSTGRES_URL = process.env.TENANTRY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

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

/** Creates a scratch database on the test server; `drop()` removes it (terminating its connections). */
export async function createTestDatabase(serverUrl: string, prefix = 'tenantry_test'): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE "${name}"`)
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: serverUrl })
      await client.connect()
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      } finally {
        await client.end()
      }
    },
  }
}

/**
 * Removes what Tenantry made on the test server for these Postgres data sources outside their
 * own databases: template databases (`tpl_<id>_…`) and the app role. Database-isolated tenants'
 * databases are named in the catalog: purge those tenants first.
 */
export async function dropAppRoles(serverUrl: string, dataSourceIds: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl })
  await client.connect()
  try {
    for (const id of dataSourceIds) {
      if (!/^[a-z][a-z0-9_]{0,48}$/.test(id)) throw new Error(`Invalid data source id ${id}`)
      const templates = await client.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`tpl\\_${id}\\_%`])
      for (const { datname } of templates.rows) {
        await client.query(`ALTER DATABASE "${datname}" WITH IS_TEMPLATE false`)
        await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`)
      }
      await client.query(`DROP ROLE IF EXISTS "tenantry_app_${id}"`)
    }
  } finally {
    await client.end()
  }
}
