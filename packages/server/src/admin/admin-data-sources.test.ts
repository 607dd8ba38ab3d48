import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir, type TestDatabase } from 'tenantry/testing'
import { signUp, startTestServer, verifyEmail, type Client, type TestServer } from '@tenantry/server/testing'

/**
 * `/api/admin/data-sources`: add (tested first), test, change capacity, list with tenants and
 * location. Platform admins only; a Postgres URL goes in and never comes out, not even in a
 * failed test's message. On Postgres, a tenant placed on the added source gets a read-only URL
 * that reads its table and cannot write (what the console's Settings page shows).
 */
const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))
const postgres = await findPostgres()
const PG_ID = `admin_ds_${process.pid}`

let server: TestServer
let root: Client
let user: Client
const dir = tempDir('tenantry-admin-ds-')
let database: TestDatabase | undefined

beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG, env: { TENANTRY_PLATFORM_ADMINS: 'root@example.com' } })
  root = await signUp(server, 'root@example.com')
  await verifyEmail(server, 'root@example.com')
  user = await signUp(server, 'user@example.com')
})
afterAll(async () => {
  if (server) {
    // Tenants on the Postgres source first: their schemas and roles live there.
    for (const t of await server.tenantry.catalog.listTenants()) {
      if (t.placement.dataSourceId === PG_ID) await server.tenantry.deleteTenant(t.slug, { purge: true }).catch(() => {})
    }
    await server.stop()
  }
  await database?.drop()
  if ('url' in postgres) await dropAppRoles(postgres.url, [PG_ID])
  dir.cleanup()
})

describe('admin API: data sources', () => {
  it('is for platform admins only: others get 403 on every route, before anything is tested or recorded', async () => {
    const body = { id: 'sneaky', engine: 'sqlite', directory: join(dir.path, 'sneaky') }
    for (const [method, path, payload] of [
      ['GET', '/api/admin/data-sources', undefined],
      ['POST', '/api/admin/data-sources', body],
      ['POST', '/api/admin/data-sources/local/test', undefined],
      ['PATCH', '/api/admin/data-sources/local', { capacity: 1 }],
    ] as const) {
      const reply = await user.request(method, path, payload)
      expect(reply.status, `${method} ${path}`).toBe(403)
      expect(reply.body.error.code).toBe('FORBIDDEN')
    }
    expect(await server.tenantry.catalog.findDataSource('sneaky')).toBeUndefined()
  })

  it('read-only database access: a SQLite tenant is told to use SQL-over-HTTP (not an error); strangers may not ask', async () => {
    const slug = (await user.get('/api/me')).body.activeTenant.slug as string
    const offer = await user.get(`/api/t/${slug}/read-only-access`)
    expect(offer.status).toBe(200)
    expect(offer.body).toMatchObject({ available: false, engine: 'sqlite', isolation: 'database', reason: expect.stringMatching(/SQL-over-HTTP/) })
    // Not a member: the tenant does not exist for them.
    const stranger = await signUp(server, 'stranger@example.com')
    expect((await stranger.get(`/api/t/${slug}/read-only-access`)).status).toBe(404)
  })

  it('refuses bad input with a clear 4xx', async () => {
    const cases: Array<[unknown, number, string, RegExp?]> = [
      [{ id: 'Bad Id', engine: 'sqlite', directory: join(dir.path, 'x') }, 400, 'INVALID_IDENTIFIER'],
      [{ id: 'ok', engine: 'sqlite', directory: join(dir.path, 'x'), colour: 'red' }, 400, 'VALIDATION_FAILED', /colour/],
      [{ id: 'ok', engine: 'sqlite', directory: 'relative/dir' }, 400, 'VALIDATION_FAILED', /absolute/],
      [{ id: 'ok', engine: 'postgres' }, 400, 'VALIDATION_FAILED', /url/],
      [{ id: 'ok', engine: 'postgres', url: 'not a url' }, 400, 'VALIDATION_FAILED', /url/],
      [{ id: 'ok', engine: 'mysql', url: 'mysql://x@y/z' }, 400, 'VALIDATION_FAILED'],
      [{ id: 'ok', engine: 'sqlite', url: 'postgres://u@h/d' }, 400, 'VALIDATION_FAILED', /url/],
      [{ id: 'ok', engine: 'postgres', url: 'postgres://u@h/d', directory: '/srv' }, 400, 'VALIDATION_FAILED', /directory/],
      [{ id: 'ok', engine: 'sqlite', directory: join(dir.path, 'x'), capacity: 0 }, 400, 'VALIDATION_FAILED', /capacity/],
      [{ id: 'local', engine: 'sqlite', directory: join(dir.path, 'x') }, 409, 'DATA_SOURCE_EXISTS'],
      // An id too long for the roles Postgres sources name after it: refused before any connection.
      [{ id: `p${'x'.repeat(50)}`, engine: 'postgres', url: 'postgres://u:pw@127.0.0.1:1/d' }, 400, 'INVALID_IDENTIFIER', /at most/],
    ]
    for (const [body, status, code, message] of cases) {
      const reply = await root.post('/api/admin/data-sources', body)
      expect(reply.status, JSON.stringify(body)).toBe(status)
      expect(reply.body.error.code, JSON.stringify(body)).toBe(code)
      if (message) expect(reply.body.error.message).toMatch(message)
    }
    // A directory that cannot be made (under a file): its test fails, nothing is recorded.
    writeFileSync(join(dir.path, 'a-file'), '')
    const blocked = await root.post('/api/admin/data-sources', { id: 'blocked', engine: 'sqlite', directory: join(dir.path, 'a-file', 'tenants') })
    expect(blocked.status).toBe(422)
    expect(blocked.body.error).toMatchObject({ code: 'DATA_SOURCE_TEST_FAILED', message: expect.stringMatching(/blocked/) })
    expect(await server.tenantry.catalog.findDataSource('blocked')).toBeUndefined()

    expect((await root.post('/api/admin/data-sources/nope/test')).status).toBe(404)
    expect((await root.post('/api/admin/data-sources/Bad%20Id/test')).status).toBe(400)
    expect((await root.request('PATCH', '/api/admin/data-sources/nope', { capacity: 3 })).status).toBe(404)
    expect((await root.request('PATCH', '/api/admin/data-sources/local', {})).body.error.code).toBe('VALIDATION_FAILED')
    expect((await root.request('PATCH', '/api/admin/data-sources/local', { capacity: -1 })).body.error.code).toBe('VALIDATION_FAILED')
    expect((await root.request('PATCH', '/api/admin/data-sources/local', { engine: 'postgres' })).body.error.code).toBe('VALIDATION_FAILED')
    // The config's own source is changed in the config (it is recorded again at every start).
    const inConfig = await root.request('PATCH', '/api/admin/data-sources/local', { capacity: 3 })
    expect(inConfig.status).toBe(409)
    expect(inConfig.body.error.code).toBe('DATA_SOURCE_IN_CONFIG')
  })

  it('adds a SQLite source (tested first), tests it, changes its capacity, and lists it with its tenants', async () => {
    const directory = join(dir.path, 'eu_files')
    const added = await root.post('/api/admin/data-sources', { id: 'eu_files', engine: 'sqlite', directory, capacity: 2, region: 'eu-west' })
    expect(added.status).toBe(201)
    expect(added.body).toMatchObject({ id: 'eu_files', engine: 'sqlite', mode: 'shared', capacity: 2, region: 'eu-west', tenants: 0, location: directory, hasCredentials: false, declaredInConfig: false })

    const tested = await root.post('/api/admin/data-sources/eu_files/test')
    expect(tested.status).toBe(200)
    expect(tested.body).toMatchObject({ id: 'eu_files', engine: 'sqlite', detail: expect.stringContaining(directory) })
    expect(tested.body.latencyMs).toBeTypeOf('number')

    const changed = await root.request('PATCH', '/api/admin/data-sources/eu_files', { capacity: 5, mode: 'dedicated' })
    expect(changed.status).toBe(200)
    expect(changed.body).toMatchObject({ id: 'eu_files', capacity: 5, mode: 'dedicated', region: 'eu-west' })
    expect(await server.tenantry.catalog.findDataSource('eu_files')).toMatchObject({ capacity: 5, mode: 'dedicated' })

    // A tenant placed there is counted.
    expect((await root.post('/api/admin/tenants', { slug: 'on_eu', dataSource: 'eu_files' })).status).toBe(201)
    // Without a directory: under Tenantry's home, as a config file's SQLite source.
    expect((await root.post('/api/admin/data-sources', { id: 'homed', engine: 'sqlite' })).body).toMatchObject({ location: join(server.home, 'homed') })
    const list = (await root.get('/api/admin/data-sources')).body.dataSources as Array<Record<string, unknown>>
    expect(list.find((s) => s.id === 'eu_files')).toMatchObject({ tenants: 1, capacity: 5 })
    // Every user's personal tenant is on the config's local source.
    expect(list.find((s) => s.id === 'local')).toMatchObject({ engine: 'sqlite', declaredInConfig: true, hasCredentials: false, tenants: expect.any(Number) })
    expect((list.find((s) => s.id === 'local')!.tenants as number) >= 2).toBe(true)

    const audit = await server.tenantry.catalog.auditLog()
    expect(audit.map((e) => e.action)).toEqual(expect.arrayContaining(['data_source.added', 'data_source.updated']))
    expect(audit.find((e) => e.action === 'data_source.added')?.actor).toMatch(/^user:/)
  })

  describe.skipIf('skip' in postgres)(`Postgres${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
    /** The URL with a password in it (Postgres on trust ignores it), so that its absence from answers means something. */
    const withPassword = (url: string) => {
      const u = new URL(url)
      if (!u.password) u.password = 'not-shown-pw-7f3a'
      return u
    }

    it('an unreachable or wrong server is a 422 with the engine’s message and no credentials', async () => {
      if (!('url' in postgres)) return
      const wrong = withPassword(postgres.url)
      wrong.pathname = '/tenantry_no_such_db'
      const reply = await root.post('/api/admin/data-sources', { id: 'pg_wrong', engine: 'postgres', url: wrong.toString() })
      expect(reply.status).toBe(422)
      expect(reply.body.error.code).toBe('DATA_SOURCE_TEST_FAILED')
      expect(reply.body.error.message).toMatch(/tenantry_no_such_db/)
      expect(reply.text).not.toContain(decodeURIComponent(wrong.password))
      expect(reply.text).not.toContain(wrong.toString())
      expect(await server.tenantry.catalog.findDataSource('pg_wrong')).toBeUndefined()

      const closed = withPassword(postgres.url)
      closed.port = '1' // nothing listens there
      const refused = await root.post('/api/admin/data-sources', { id: 'pg_closed', engine: 'postgres', url: closed.toString() })
      expect(refused.status).toBe(422)
      expect(refused.text).not.toContain(decodeURIComponent(closed.password))
    })

    it('adds a Postgres source whose URL is sealed and never answered; a tenant there gets a read-only URL that reads and cannot write', async () => {
      if (!('url' in postgres)) return
      database = await createTestDatabase(postgres.url, 'tenantry_admin_ds')
      const url = withPassword(database.url)
      const password = decodeURIComponent(url.password)
      const added = await root.post('/api/admin/data-sources', { id: PG_ID, engine: 'postgres', url: url.toString(), isolations: ['schema'], region: 'local' })
      expect(added.status).toBe(201)
      expect(added.body).toMatchObject({ id: PG_ID, engine: 'postgres', hasCredentials: true, tenants: 0, location: `${decodeURIComponent(url.username)}@${url.hostname}:${url.port || 5432}/${database.name}` })
      expect(added.text).not.toContain(password)
      expect((await root.get('/api/admin/data-sources')).text).not.toContain(password)
      const tested = await root.post(`/api/admin/data-sources/${PG_ID}/test`)
      expect(tested.status).toBe(200)
      expect(tested.body).toMatchObject({ id: PG_ID, engine: 'postgres' })
      expect(tested.text).not.toContain(password)
      expect(JSON.stringify(await server.tenantry.catalog.auditLog())).not.toContain(password)
      // Recorded sealed: the catalog's row holds no plain password either.
      expect(JSON.stringify(await server.tenantry.catalog.findDataSource(PG_ID))).not.toContain(password)

      // A tenant on it (schema isolation), with an owner who grants read-only access.
      const owner = await signUp(server, 'pgowner@example.com')
      const tenant = await root.post('/api/admin/tenants', { slug: 'acme_pg', isolation: 'schema', dataSource: PG_ID, ownerEmail: 'pgowner@example.com' })
      expect(tenant.status, tenant.text).toBe(201)
      expect((await owner.post('/api/t/acme_pg/data/jobs', { company: 'Acme', title: 'Engineer', start_date: '2020-01-01' })).status).toBe(201)
      expect((await root.get('/api/admin/data-sources')).body.dataSources.find((s: { id: string }) => s.id === PG_ID).tenants).toBe(1)

      // What the Settings page asks first: offered here, without granting anything.
      expect((await owner.get('/api/t/acme_pg/read-only-access')).body).toEqual({ available: true, engine: 'postgres', isolation: 'schema' })
      const grant = await owner.post('/api/t/acme_pg/read-only-access', {})
      expect(grant.status).toBe(200)
      const client = new pg.Client({ connectionString: grant.body.url })
      await client.connect()
      try {
        expect((await client.query('select company from jobs')).rows).toEqual([{ company: 'Acme' }])
        await expect(client.query("insert into jobs (company, title, start_date) values ('X', 'Y', '2021-01-01')")).rejects.toThrow(/permission denied|read-only/)
      } finally {
        await client.end()
      }
      expect((await owner.delete('/api/t/acme_pg/read-only-access')).status).toBe(204)
      const revoked = new pg.Client({ connectionString: grant.body.url })
      await expect(revoked.connect()).rejects.toThrow()
      await revoked.end().catch(() => {})
    })
  })
})
