import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { SILENT_LOGGER } from '../../logger.js'
import { SecretBox } from '../../secrets/secret-box.js'
import { migrateHandle } from '../../migrations/migration-set.js'
import { runEngineConformance } from '../../testing/engine-conformance.js'
import { FIXTURE_MIGRATIONS } from '../../testing/fixture-migrations.js'
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
/** The advisory lock Kysely's Migrator holds on Postgres while it migrates (its postgres adapter's `LOCK_ID`). */
const KYSELY_MIGRATION_LOCK_ID = '3853314791062309107'
const originalQuery = pg.Client.prototype.query

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
    /** The secret box the data source's role passwords derive from: a second engine on the same data source needs it. */
    const box = new SecretBox(randomBytes(32))
    const config = () => ({ id, engine: 'postgres' as const, url: adminUrl, ...(isolation === 'row' ? {} : { isolations: [isolation] }) })
    /** Runs `fn` on a connection as the data source's admin. */
    const asAdmin = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
      const client = new pg.Client({ connectionString: adminUrl })
      await client.connect()
      try {
        return await fn(client)
      } finally {
        await client.end()
      }
    }
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
        return createEngine({ ...toDataSourceRecord(config(), box), createdAt: '' }, { box, logger: SILENT_LOGGER })
      },
      skip: isolation === 'row' ? ROW_SKIPS : [],
      additionalTests: ({ engine, createTenant, withHandle, migrationsAhead }) => {
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
          it("a tenant behind migrates while another session holds Kysely's database-wide migration lock (regression: one tenant at a time per server)", async () => {
            const placement = await createTenant()
            const ahead = migrationsAhead()
            const holder = new pg.Client({ connectionString: adminUrl })
            await holder.connect()
            // The lock Kysely's Migrator takes for every migrate on this server, held elsewhere.
            await holder.query(`select pg_advisory_lock(${KYSELY_MIGRATION_LOCK_ID})`)
            const sent: string[] = []
            const query = vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function (this: pg.Client, ...args: unknown[]) {
              const [text] = args
              sent.push(typeof text === 'string' ? text : ((text as { text?: string })?.text ?? ''))
              return (originalQuery as (...a: unknown[]) => unknown).apply(this, args)
            } as never)
            try {
              const outcome = await withHandle(placement, 'admin', (_db, handle) => migrateHandle(handle, ahead))
              expect(outcome).toMatchObject({ applied: ['0003_note_pins'], executed: [...FIXTURE_MIGRATIONS, '0003_note_pins'].map((name) => ({ name })) })
              expect(sent.filter((text) => /pg_attribute|pg_advisory/.test(text))).toEqual([])
            } finally {
              query.mockRestore()
              await holder.end()
            }
          })

          it('two runs migrating one tenant at once queue on its lock row: one applies, the other finds nothing to do', async () => {
            const placement = await createTenant()
            const ahead = migrationsAhead()
            const outcomes = await Promise.all([1, 2].map(() => withHandle(placement, 'admin', (_db, handle) => migrateHandle(handle, ahead))))
            expect(outcomes.map((o) => o.error)).toEqual([undefined, undefined])
            expect(outcomes.map((o) => o.applied).sort()).toEqual([[], ['0003_note_pins']])
            expect(outcomes[0]!.executed).toEqual(outcomes[1]!.executed)
          })

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
          const group = `tenantry_rows_${id}`
          const roleOf = (placement: { locator: string }) => `${placement.locator}_app`
          const doctor = (placements: Array<{ tenantId: string; locator: string; isolation: Isolation }>, on = engine()) =>
            on.doctor!({ tenants: placements.map((placement, i) => ({ id: placement.tenantId, slug: `row_${i}`, placement, stored: true, purged: false })) })
          const check = async (placements: Parameters<typeof doctor>[0], name: string, on?: DatabaseEngine) => (await doctor(placements, on)).find((c) => c.name === name)

          it("raw SQL through a row tenant's handle reaches its own rows alone (regression: set_config reached any tenant)", async () => {
            const [a, b] = [await createTenant(), await createTenant()]
            await withHandle(b, 'app', (db) => db.insertInto('notes').values({ id: 1, title: 'b secret' }).execute())
            await withHandle(a, 'app', async (db) => {
              await db.insertInto('notes').values({ id: 1, title: 'a own' }).execute()
              expect((await sql<{ role: string }>`select current_user as role`.execute(db)).rows).toEqual([{ role: roleOf(a) }])
              // The setting the policies used to compare with: set to B, it changes nothing.
              const outcome = await db.transaction().execute(async (trx) => {
                await sql`select set_config('tenantry.tenant_id', ${b.tenantId}, true)`.execute(trx)
                return {
                  seen: (await sql<{ title: string }>`select title from notes`.execute(trx)).rows.map((r) => r.title),
                  ofB: (await sql<{ n: number }>`select count(*)::int as n from notes where tenant_id = ${b.tenantId}`.execute(trx)).rows[0]!.n,
                  updated: (await sql`update notes set title = 'changed by a' where tenant_id = ${b.tenantId}`.execute(trx)).numAffectedRows,
                  deleted: (await sql`delete from notes where tenant_id = ${b.tenantId}`.execute(trx)).numAffectedRows,
                }
              })
              expect(outcome).toEqual({ seen: ['a own'], ofB: 0, updated: 0n, deleted: 0n })
              // Becoming B's role, or the session's authorization, is refused.
              await expect(sql`set role ${sql.id(roleOf(b))}`.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
              await expect(sql`set session authorization ${sql.id(roleOf(b))}`.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
              await expect(sql`set role ${sql.id(`tenantry_app_${id}`)}`.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
              // RESET ROLE goes back to the session's own role: A's.
              const reset = await db.transaction().execute(async (trx) => {
                await sql`reset role`.execute(trx)
                return (await sql<{ role: string }>`select current_user as role`.execute(trx)).rows[0]!.role
              })
              expect(reset).toBe(roleOf(a))
              // The group role, the one role A's is a member of, is no tenant: as it, nothing is visible.
              const asGroup = await db.transaction().execute(async (trx) => {
                await sql`set local role ${sql.id(group)}`.execute(trx)
                await sql`select set_config('tenantry.tenant_id', ${b.tenantId}, true)`.execute(trx)
                return (await sql<{ n: number }>`select count(*)::int as n from notes`.execute(trx)).rows[0]!.n
              })
              expect(asGroup).toBe(0)
              // A row forged with B's tenant_id is refused by WITH CHECK, with or without the setting.
              await expect(sql`insert into notes (id, title, tenant_id) values (2, 'forged', ${b.tenantId})`.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
              await expect(
                db.transaction().execute(async (trx) => {
                  await sql`select set_config('tenantry.tenant_id', ${b.tenantId}, true)`.execute(trx)
                  await sql`insert into notes (id, title) values (3, 'defaulted')`.execute(trx)
                  return (await sql<{ tenant: string }>`select tenant_id as tenant from notes where id = 3`.execute(trx)).rows
                }),
              ).resolves.toEqual([{ tenant: a.tenantId }])
              // A's rows stay A's: moving one to B is refused too.
              expect((await sql`update notes set tenant_id = ${a.tenantId} where id = 1`.execute(db)).numAffectedRows).toBe(1n)
              await expect(sql`update notes set tenant_id = ${b.tenantId} where id = 1`.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
            })
            await withHandle(b, 'app', async (db) => expect((await db.selectFrom('notes').select(['id', 'title']).execute())).toEqual([{ id: 1, title: 'b secret' }]))
            expect(await check([a, b], 'raw SQL boundary')).toMatchObject({ status: 'ok' })
          })

          it('drop deletes the tenant\'s rows and its role', async () => {
            const placement = await createTenant()
            await withHandle(placement, 'app', (db) => db.insertInto('notes').values({ id: 1, title: 'gone soon' }).execute())
            const role = roleOf(placement)
            const roles = () => asAdmin(async (c) => (await c.query('select rolname from pg_roles where rolname = $1', [role])).rowCount)
            expect(await roles()).toBe(1)
            await engine().drop(placement)
            expect(await roles()).toBe(0)
            await engine().drop(placement) // idempotent
          })

          it('doctor fails a policy that no longer keys on the role, and a tenant role in another tenant\'s', async () => {
            const [a, b] = [await createTenant(), await createTenant()]
            expect(await doctor([a, b])).toEqual(expect.arrayContaining([
              expect.objectContaining({ name: 'raw SQL boundary', status: 'ok' }),
              expect.objectContaining({ name: 'tenant role memberships', status: 'ok' }),
              expect.objectContaining({ name: 'tenant roles', status: 'ok' }),
              expect.objectContaining({ name: 'app privileges', status: 'ok' }),
            ]))
            await asAdmin((c) => c.query(`ALTER POLICY tenant_isolation ON tenant_rows.notes USING (true)`))
            try {
              expect(await check([a, b], 'raw SQL boundary')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/tenant_rows\.notes: policy tenant_isolation does not key on the login role/) })
            } finally {
              await asAdmin((c) => c.query(`ALTER POLICY tenant_isolation ON tenant_rows.notes USING (tenant_id = tenant_rows.tenantry_tenant_id())`))
            }
            await asAdmin((c) => c.query(`CREATE POLICY wide_open ON tenant_rows.note_tags FOR SELECT USING (true)`))
            try {
              expect(await check([a, b], 'raw SQL boundary')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/note_tags has other policies: wide_open/) })
            } finally {
              await asAdmin((c) => c.query(`DROP POLICY wide_open ON tenant_rows.note_tags`))
            }
            await asAdmin((c) => c.query(`GRANT ${roleOf(b)} TO ${roleOf(a)}`))
            try {
              expect(await check([a, b], 'tenant role memberships')).toMatchObject({ status: 'fail', detail: expect.stringContaining(`${roleOf(a)} is a member of ${roleOf(b)}`) })
              expect(await check([a, b], 'raw SQL boundary')).toMatchObject({ status: 'fail' })
            } finally {
              await asAdmin((c) => c.query(`REVOKE ${roleOf(b)} FROM ${roleOf(a)}`))
            }
            await asAdmin((c) => c.query(`GRANT TRUNCATE ON tenant_rows.notes TO ${group}`))
            try {
              expect(await check([a, b], 'app privileges')).toMatchObject({ status: 'fail', detail: expect.stringContaining(`${group} has SELECT, INSERT, UPDATE, DELETE, TRUNCATE on tenant_rows.notes`) })
            } finally {
              await asAdmin((c) => c.query(`REVOKE TRUNCATE ON tenant_rows.notes FROM ${group}`))
            }
            expect(await check([a, b], 'raw SQL boundary')).toMatchObject({ status: 'ok' })
          })

          it('a row tenant made before row tenants had their own role gets one when first opened, and the policies key on it', async () => {
            const placement = await createTenant()
            await withHandle(placement, 'app', (db) => db.insertInto('notes').values({ id: 1, title: 'from before' }).execute())
            const appRole = `tenantry_app_${id}`
            // What such a data source looks like: policies and defaults on the setting, the app role with DML, and no tenant role.
            await asAdmin(async (c) => {
              for (const table of ['notes', 'note_tags']) {
                await c.query(`ALTER POLICY tenant_isolation ON tenant_rows.${table} USING (tenant_id = current_setting('tenantry.tenant_id', true)) WITH CHECK (tenant_id = current_setting('tenantry.tenant_id', true))`)
                await c.query(`ALTER TABLE tenant_rows.${table} ALTER COLUMN tenant_id SET DEFAULT current_setting('tenantry.tenant_id', true)`)
              }
              await c.query(`GRANT USAGE ON SCHEMA tenant_rows TO ${appRole}`)
              await c.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tenant_rows TO ${appRole}`)
              await c.query(`DROP OWNED BY ${roleOf(placement)}`)
              await c.query(`DROP ROLE ${roleOf(placement)}`)
            })
            // A process started after the upgrade: the doctor reports what is left to do ...
            const upgraded = createEngine({ ...toDataSourceRecord(config(), box), createdAt: '' }, { box, logger: SILENT_LOGGER })
            try {
              const checks = await doctor([placement], upgraded)
              expect(checks.find((c) => c.name === 'tenant roles')).toMatchObject({ status: 'fail', detail: expect.stringContaining(roleOf(placement)) })
              expect(checks.find((c) => c.name === 'raw SQL boundary')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/does not key on the login role/) })
              expect(checks.find((c) => c.name === 'app role reaches no tenant storage')).toMatchObject({ status: 'fail' })
              // ... and opening the tenant does it.
              const handle = upgraded.open(placement, 'app')
              try {
                expect((await sql<{ role: string; title: string }>`select current_user as role, title from notes`.execute(handle.db)).rows).toEqual([{ role: roleOf(placement), title: 'from before' }])
              } finally {
                await handle.close()
              }
              const after = await doctor([placement], upgraded)
              for (const name of ['tenant roles', 'raw SQL boundary', 'app role reaches no tenant storage', 'tenant role memberships']) {
                expect(after.find((c) => c.name === name), name).toMatchObject({ status: 'ok' })
              }
            } finally {
              await upgraded.close()
            }
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
    engine = createEngine({ ...toDataSourceRecord({ id: `pg_login_only_${process.pid}`, engine: 'postgres', url: url.toString() }, box), createdAt: '' }, { box, logger: SILENT_LOGGER })
    const error = await engine.test!().catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'INVALID_CONFIG' })
    expect((error as Error).message).toMatch(/CREATEROLE/)
    expect((error as Error).message).toMatch(/CREATEDB/)
    expect((error as Error).message).toMatch(/CREATE on the database/)
  })
})
