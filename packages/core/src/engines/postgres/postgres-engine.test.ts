import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SecretBox } from '../../secrets/secret-box.js'
import { runEngineConformance } from '../../testing/engine-conformance.js'
import { createManagedAdmin, createTestDatabase, dropAppRoles, findPostgres, type ManagedAdmin, type TestDatabase } from '../../testing/services.js'
import type { DatabaseEngine, Isolation } from '../engine.js'
import { createEngine, toDataSourceRecord } from '../registry.js'

const postgres = await findPostgres()

const ROW_SKIPS = [
  {
    reason: 'row tenants share one schema: a tenant has no storage of its own to create, find or miss',
    tests: ['create, exists and drop' as const, 'doctor passes, and fails a tenant whose storage is missing' as const],
  },
]

/** Postgres's "insufficient_privilege". */
const INSUFFICIENT_PRIVILEGE = '42501'
/** Postgres's "undefined_table". */
const UNDEFINED_TABLE = '42P01'

// Every isolation twice: with a superuser admin, and with an admin as managed Postgres gives
// one (`LOGIN CREATEDB CREATEROLE` only), which used to fail from the second tenant on.
for (const admin of ['superuser', 'managed'] as const) {
  for (const isolation of ['schema', 'database', 'row'] as const satisfies readonly Isolation[]) {
    if ('skip' in postgres) {
      describe.skip(`engine conformance: postgres × ${isolation} (skipped: ${postgres.skip})`, () => it('needs Postgres', () => {}))
      continue
    }
    const id = `pg_engine_${admin === 'managed' ? 'm' : 's'}_${isolation}_${process.pid}`
    let data: TestDatabase | undefined
    let managed: ManagedAdmin | undefined
    /** The data source's admin URL. */
    let adminUrl = ''
    runEngineConformance({
      name: `postgres (${admin} admin)`,
      isolation,
      // Built as Tenantry builds it, through the registry. Row isolation is tested on a data source
      // offering all three, so that read-only access is there to refuse it.
      engine: async () => {
        let url: string
        if (admin === 'managed') {
          managed = await createManagedAdmin(postgres.url)
          url = managed.url
        } else {
          data = await createTestDatabase(postgres.url, `tenantry_engine_${isolation}`)
          url = data.url
        }
        adminUrl = url
        const box = new SecretBox(randomBytes(32))
        const config = { id, engine: 'postgres' as const, url, ...(isolation === 'row' ? {} : { isolations: [isolation] }) }
        return createEngine({ ...toDataSourceRecord(config, box), createdAt: '' }, { box, logger: console })
      },
      skip: isolation === 'row' ? ROW_SKIPS : [],
      additionalTests: ({ engine, createTenant, withHandle }) => {
        it('the app cannot write migration records (regression: `delete from tenantry_migration` broke the next migration)', async () => {
          const placement = await createTenant()
          await withHandle(placement, 'app', async (db) => {
            expect((await sql<{ n: number }>`select count(*)::int as n from tenantry_migration`.execute(db)).rows[0]!.n).toBeGreaterThan(0)
            for (const statement of [sql`delete from tenantry_migration`, sql`update tenantry_migration set name = 'x'`, sql`delete from tenantry_migration_lock`]) {
              await expect(statement.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
            }
          })
        })

        if (isolation === 'schema') {
          it("raw SQL naming another tenant's schema is refused by Postgres (regression: schema tenants shared one role)", async () => {
            const [a, b] = [await createTenant(), await createTenant()]
            await withHandle(b, 'app', (db) => db.insertInto('notes').values({ id: 1, title: 'b secret' }).execute())
            await withHandle(a, 'app', async (db) => {
              for (const statement of [
                sql`select * from ${sql.id(b.locator)}.notes`,
                sql`insert into ${sql.id(b.locator)}.notes (id, title) values (2, 'from a')`,
              ]) {
                await expect(statement.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
              }
              // Nor a transaction that moves search_path itself: a schema without USAGE is skipped, so `notes` is not found.
              await expect(
                db.transaction().execute(async (trx) => {
                  await sql`select set_config('search_path', ${b.locator}, true)`.execute(trx)
                  return sql`select * from notes`.execute(trx)
                }),
              ).rejects.toMatchObject({ code: UNDEFINED_TABLE })
            })
            await withHandle(b, 'app', async (db) => expect((await db.selectFrom('notes').select('title').execute()).map((r) => r.title)).toEqual(['b secret']))
          })
        }

        if (isolation !== 'row') {
          it('a tenant made before tenants had their own role gets one when first opened', async () => {
            const placement = await createTenant()
            const role = `${placement.locator}_app`
            // What such a tenant looks like: no role of its own (its privileges dropped where they live).
            const where = new URL(adminUrl)
            if (isolation === 'database') where.pathname = `/${placement.locator}`
            const client = new pg.Client({ connectionString: where.toString() })
            await client.connect()
            const appRole = `tenantry_app_${id}`
            const schema = isolation === 'schema' ? placement.locator : 'public'
            const reach = `select has_schema_privilege('${appRole}', '${schema}', 'USAGE') as usage,
                                  has_table_privilege('${appRole}', '${schema}.notes', 'SELECT') as reads,
                                  has_database_privilege('${appRole}', current_database(), 'CONNECT') as connects`
            try {
              await client.query(`DROP OWNED BY "${role}"`)
              await client.query(`DROP ROLE "${role}"`)
              // ... and the shared app role's rights on its storage.
              await client.query(`GRANT USAGE ON SCHEMA "${schema}" TO "${appRole}"`)
              await client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "${schema}" TO "${appRole}"`)
              if (isolation === 'database') await client.query(`GRANT CONNECT ON DATABASE "${placement.locator}" TO "${appRole}"`)
              expect((await client.query(reach)).rows).toEqual([{ usage: true, reads: true, connects: true }])

              await withHandle(placement, 'app', async (db) => {
                await db.insertInto('notes').values({ id: 1, title: 'after the upgrade' }).execute()
                expect((await sql<{ role: string }>`select current_user as role`.execute(db)).rows).toEqual([{ role }])
                await expect(sql`delete from tenantry_migration`.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
              })
              // What PUBLIC has stays (USAGE on a database's `public` schema, CONNECT on the data source's own database).
              expect((await client.query(reach)).rows).toEqual([{ usage: isolation === 'database', reads: false, connects: isolation === 'schema' }])
            } finally {
              await client.end()
            }
          })
        }

        if (isolation === 'database') {
          it("a tenant's app login reaches its own database alone", async () => {
            const [a, b] = [await createTenant(), await createTenant()]
            await withHandle(a, 'app', async (db) => {
              const { rows } = await sql<{ role: string; own: boolean; other: boolean }>`
                select current_user as role, has_database_privilege(current_database(), 'CONNECT') as own,
                       has_database_privilege(${b.locator}, 'CONNECT') as other`.execute(db)
              expect(rows[0]).toEqual({ role: `${a.locator}_app`, own: true, other: false })
            })
          })
        }

        if (isolation === 'row') {
          it('doctor warns that raw SQL can change the tenant setting under row isolation (a documented limit)', async () => {
            const placement = await createTenant()
            const checks = await engine().doctor!({
              tenants: [{ id: placement.tenantId, slug: 'row_one', placement, stored: true, purged: false }],
            })
            expect(checks.find((c) => c.name === 'raw SQL boundary')).toMatchObject({ status: 'warn', detail: expect.stringMatching(/tenantry\.tenant_id/) })
          })
          return
        }

        it('the read-only URL reads its tenant, writes nothing, and stops working when revoked', async () => {
          const placement = await createTenant()
          const access = engine().readOnlyAccess!
          const { url } = await access.grant(placement)
          const client = new pg.Client({ connectionString: url })
          await client.connect()
          try {
            expect((await client.query('select count(*)::int as n from notes')).rows).toEqual([{ n: 0 }])
            await expect(client.query("insert into notes (id, title) values (1, 'no')")).rejects.toThrow(/read-only|permission denied/)
          } finally {
            await client.end()
          }
          await access.revoke(placement)
          await expect(new pg.Client({ connectionString: url }).connect()).rejects.toThrow(/role .* does not exist|authentication/)
        })
      },
      teardown: async () => {
        // The databases go first: the roles' privileges live in them.
        await data?.drop()
        await managed?.drop()
        await dropAppRoles(postgres.url, [id])
      },
    })
  }
}

describe.skipIf('skip' in postgres)('postgres connection test', () => {
  const serverUrl = 'url' in postgres ? postgres.url : ''
  const role = `tenantry_login_only_${process.pid}`
  let data: TestDatabase
  let engine: DatabaseEngine | undefined

  beforeAll(async () => {
    data = await createTestDatabase(serverUrl, 'tenantry_login_only')
    const client = new pg.Client({ connectionString: serverUrl })
    await client.connect()
    await client.query(`CREATE ROLE ${role} LOGIN PASSWORD 'x'`)
    await client.end()
  })

  afterAll(async () => {
    await engine?.close()
    await data.drop()
    const client = new pg.Client({ connectionString: serverUrl })
    await client.connect()
    await client.query(`DROP ROLE IF EXISTS ${role}`)
    await client.end()
  })

  it('names each privilege an admin that can only log in lacks', async () => {
    const url = new URL(data.url)
    url.username = role
    url.password = 'x'
    const box = new SecretBox(randomBytes(32))
    engine = createEngine({ ...toDataSourceRecord({ id: `pg_login_only_${process.pid}`, engine: 'postgres', url: url.toString() }, box), createdAt: '' }, { box, logger: console })
    const error = await engine.test!().catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'INVALID_CONFIG' })
    expect((error as Error).message).toMatch(/CREATEROLE/)
    expect((error as Error).message).toMatch(/CREATEDB/)
    expect((error as Error).message).toMatch(/CREATE on the database/)
  })
})
