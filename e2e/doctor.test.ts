import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, runDoctor, type DoctorCheck, type Tenantry, type TenantRecord } from 'tenantry'
import { createManagedAdmin, createTestDatabase, dropAppRoles, findPostgres, tempDir } from 'tenantry/testing'
import { runCliCaptured } from '@tenantry/cli/testing'

// `tenantry doctor` passes a healthy setup and reports each way the isolation guarantees can
// be broken behind Tenantry's back (by hand, by a migration, by a careless grant) as `fail`.

const migrations = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))
const postgres = await findPostgres()

// With a superuser admin and with one as managed Postgres gives it (LOGIN CREATEDB CREATEROLE
// only); the test breaks things as the server's superuser in both cases.
for (const adminKind of ['superuser', 'managed'] as const)
  describe.skipIf('skip' in postgres)(`tenantry doctor, ${adminKind} admin`, () => {
    const serverUrl = 'url' in postgres ? postgres.url : ''
    const home = tempDir('tenantry-doctor-')
    const source = `doctor_${adminKind === 'managed' ? 'm' : 's'}_${process.pid}`
    const role = `tenantry_app_${source}`
    const files = join(home.path, 'files')
    let data: { url: string; drop(): Promise<void> }
    let admin: pg.Client
    let tenantry: Tenantry
    let alpha: TenantRecord
    let beta: TenantRecord
    let local: TenantRecord

    const byName = (checks: DoctorCheck[], name: string) => checks.find((c) => c.name.endsWith(`: ${name}`) && c.dataSource === source)
    const fileCheck = (checks: DoctorCheck[], name: string) => checks.find((c) => c.name === `files: ${name}`)
    const failures = async () => (await runDoctor(tenantry)).filter((c) => c.status === 'fail')

    /** Breaks something, expects exactly `names` to fail (saying `detail`), then repairs it and expects all clear again. */
    async function expectCaught(breakIt: string, repair: string, names: string[], detail: RegExp): Promise<void> {
      await admin.query(breakIt)
      try {
        const failed = await failures()
        expect(failed.map((c) => c.name.replace(`${source}: `, '')).sort()).toEqual([...names].sort())
        for (const check of failed) expect(check.detail).toMatch(detail)
      } finally {
        await admin.query(repair)
      }
      expect(await failures()).toEqual([])
    }

    beforeAll(async () => {
      data = adminKind === 'managed' ? await createManagedAdmin(serverUrl) : await createTestDatabase(serverUrl, 'tenantry_doctor')
      // The superuser, on the data source's database.
      const superuser = new URL(serverUrl)
      superuser.pathname = new URL(data.url).pathname
      admin = new pg.Client({ connectionString: superuser.toString() })
      await admin.connect()
      const config = {
        home: home.path,
        catalogUrl: join(home.path, 'catalog.db'),
        migrations: { tenant: migrations },
        dataSources: [
          { id: source, engine: 'postgres' as const, url: data.url, isolations: ['schema' as const], poolSize: 2 },
          { id: 'files', engine: 'sqlite' as const, directory: files },
        ],
        defaults: { isolation: 'schema' as const, dataSource: source },
      }
      writeFileSync(join(home.path, 'tenantry.config.mjs'), `export default ${JSON.stringify(config)}\n`)
      tenantry = await createTenantry(config)
      alpha = await tenantry.createTenant({ slug: 'alpha' })
      beta = await tenantry.createTenant({ slug: 'beta' })
      local = await tenantry.createTenant({ slug: 'local_one', isolation: 'database', dataSource: 'files' })
    })

    afterAll(async () => {
      await tenantry?.close()
      await admin?.end().catch(() => {})
      await data?.drop()
      try {
        // The app role and the tenants' own roles.
        await dropAppRoles(serverUrl, [source])
      } finally {
        home.cleanup()
      }
    })

    it('passes a healthy setup', async () => {
      const checks = await runDoctor(tenantry)
      expect(checks.filter((c) => c.status !== 'ok')).toEqual([])
      expect(byName(checks, 'app role attributes')?.status).toBe('ok')
      expect(byName(checks, 'tenant storage')?.detail).toMatch(/2 tenant/)
      expect(byName(checks, 'row isolation')?.detail).toBe('no row-isolated tables')
      expect(fileCheck(checks, 'tenant files')?.detail).toMatch(/1 tenant file/)

      const out = await runCliCaptured(['--config', join(home.path, 'tenantry.config.mjs'), 'doctor', '--json'])
      expect(out.code, out.stderr).toBe(0)
      expect(JSON.parse(out.stdout)).toMatchObject({ ok: true })
    })

    it('fails on CREATE granted on a tenant schema or on public', async () => {
      const schema = alpha.placement.locator
      await expectCaught(`GRANT CREATE ON SCHEMA "${schema}" TO "${role}"`, `REVOKE CREATE ON SCHEMA "${schema}" FROM "${role}"`, ['app role cannot create'], new RegExp(schema))
      await expectCaught(`GRANT CREATE ON SCHEMA public TO "${role}"`, `REVOKE CREATE ON SCHEMA public FROM "${role}"`, ['app role cannot create'], /schema public/)
    })

    it('fails on BYPASSRLS, SUPERUSER-like attributes of the app role', async () => {
      await expectCaught(`ALTER ROLE "${role}" BYPASSRLS`, `ALTER ROLE "${role}" NOBYPASSRLS`, ['app role attributes'], /BYPASSRLS/)
      await expectCaught(`ALTER ROLE "${role}" CREATEROLE`, `ALTER ROLE "${role}" NOCREATEROLE`, ['app role attributes'], /CREATEROLE/)
    })

    it('fails on a SECURITY DEFINER function owned by the app role', async () => {
      const fn = `"${beta.placement.locator}".peek()`
      await admin.query(`CREATE FUNCTION ${fn} RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'select 1::bigint'`)
      await expectCaught(
        `ALTER FUNCTION ${fn} OWNER TO "${role}"`,
        `DROP FUNCTION ${fn}`,
        ['app role owns nothing', 'views and definer functions'],
        /peek/,
      )
    })

    it('fails on a view in a tenant schema owned by another role', async () => {
      const view = `"${alpha.placement.locator}".all_jobs`
      await admin.query(`CREATE VIEW ${view} AS SELECT 1 AS one`)
      await expectCaught(`ALTER VIEW ${view} OWNER TO "${role}"`, `DROP VIEW ${view}`, ['app role owns nothing', 'views and definer functions'], /all_jobs/)
    })

    it('fails on a tenant table handed to the app role', async () => {
      const table = `"${alpha.placement.locator}".jobs`
      await expectCaught(`ALTER TABLE ${table} OWNER TO "${role}"`, `ALTER TABLE ${table} OWNER TO CURRENT_USER`, ['app role owns nothing'], /table .*jobs/)
    })

    it('fails on a missing tenant schema', async () => {
      const schema = beta.placement.locator
      await expectCaught(`ALTER SCHEMA "${schema}" RENAME TO away`, `ALTER SCHEMA away RENAME TO "${schema}"`, ['tenant storage'], /missing/)
    })

    it('checks row-isolated tables: RLS enabled and forced', async () => {
      await admin.query(`CREATE TABLE public.shared_notes (tenant_id text NOT NULL, body text); GRANT SELECT ON public.shared_notes TO "${role}"`)
      const failed = await failures()
      expect(failed.map((c) => c.name)).toEqual([`${source}: row isolation`])
      expect(failed[0]!.detail).toMatch(/shared_notes \(RLS off\)/)
      await admin.query('ALTER TABLE public.shared_notes ENABLE ROW LEVEL SECURITY')
      expect(byName(await runDoctor(tenantry), 'row isolation')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/enabled, not forced/) })
      await admin.query('ALTER TABLE public.shared_notes FORCE ROW LEVEL SECURITY')
      expect(byName(await runDoctor(tenantry), 'row isolation')).toMatchObject({ status: 'ok', detail: '1 row-isolated table(s): RLS enabled and forced' })
      await admin.query('DROP TABLE public.shared_notes')
    })

    it('checks SQLite directories: missing tenant files fail, stray ones warn', async () => {
      const file = join(files, local.placement.locator)
      renameSync(file, `${file}.away`)
      try {
        expect(fileCheck(await runDoctor(tenantry), 'tenant files')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/local_one/) })
      } finally {
        renameSync(`${file}.away`, file)
      }
      const stray = `t${'a'.repeat(19)}.db`
      writeFileSync(join(files, stray), '')
      const checks = await runDoctor(tenantry)
      expect(fileCheck(checks, 'stray files')).toMatchObject({ status: 'warn', detail: expect.stringMatching(stray) })
      expect(checks.filter((c) => c.status === 'fail')).toEqual([])
    })

    it('`tenantry doctor` exits 1 and prints the failing check', async () => {
      await admin.query(`ALTER ROLE "${role}" BYPASSRLS`)
      try {
        const out = await runCliCaptured(['--config', join(home.path, 'tenantry.config.mjs'), 'doctor'])
        expect(out.code).toBe(1)
        expect(out.stdout).toMatch(new RegExp(`FAIL\\s+${source}: app role attributes\\s+${role} has BYPASSRLS`))
        expect(out.stderr).toMatch(/1 check failed/)
      } finally {
        await admin.query(`ALTER ROLE "${role}" NOBYPASSRLS`)
      }
    })
  })
