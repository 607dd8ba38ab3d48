import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { LEDGER_TABLE, type TenantryConfig, type TenantMigrationContext } from 'tenantry'
import { createTestDatabase, dropAppRoles, findPostgres, type TestDatabase } from 'tenantry/testing'
import { Client, startTestServer, type TestServer } from '@tenantry/server/testing'

// Issue 10: every data API write takes an `Idempotency-Key`. The write and its ledger entry
// commit in one transaction; the same key and request again answers the first answer and writes
// nothing; the same key with another request is 422; a failed write records nothing.

const migration = {
  up: async (db: Kysely<any>, { engine }: TenantMigrationContext) => {
    await db.schema
      .createTable('items')
      .addColumn('id', 'integer', (c) => (engine === 'postgres' ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('note', 'text')
      .execute()
  },
}
const collections = {
  items: {
    columns: {
      id: { type: 'integer', generated: true },
      name: { type: 'text', required: true, filterable: true },
      note: { type: 'text', nullable: true },
    },
  },
}

async function tokenClient(server: TestServer, slug: string): Promise<Client> {
  const { token } = await server.tenantry.tokens.create(slug, { readOnly: false, createdBy: 'test' })
  return new Client(server.url, { authorization: `Bearer ${token}` })
}

interface Setup {
  server: TestServer
  /** Two tenants of the isolation under test. */
  slugs: [string, string]
}

/** The behaviour every isolation must show. */
function idempotencyBehaviour(get: () => Setup, options: { canDropLedger: boolean }) {
  let a: Client
  let b: Client
  const base = '/api/tenant/data/items'
  const key = (name: string) => ({ 'idempotency-key': `${name}-${process.pid}` })
  const count = async (client: Client) => (await client.get(`${base}/count`)).body.count as number

  beforeAll(async () => {
    const { server, slugs } = get()
    a = await tokenClient(server, slugs[0])
    b = await tokenClient(server, slugs[1])
  })

  it('the same key and request again answers the same status and body, replayed, and writes once', async ({ expect }) => {
    const before = await count(a)
    const first = await a.post(base, { name: 'one', note: 'x' }, key('create'))
    expect(first.status, first.text).toBe(201)
    expect(first.headers.get('idempotent-replayed')).toBeNull()
    const again = await a.post(base, { note: 'x', name: 'one' }, key('create'))
    expect(again.status).toBe(201)
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    expect(again.body).toEqual(first.body)
    expect(await count(a)).toBe(before + 1)
  })

  it('the same key with a different request is 422 IDEMPOTENCY_KEY_REUSED, and writes nothing', async ({ expect }) => {
    const before = await count(a)
    const other = await a.post(base, { name: 'two' }, key('create'))
    expect(other.status).toBe(422)
    expect(other.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED')
    // Another route with the key is another request too.
    const patch = await a.request('PATCH', `${base}/1`, { note: 'y' }, key('create'))
    expect(patch.body.error?.code).toBe('IDEMPOTENCY_KEY_REUSED')
    expect(await count(a)).toBe(before)
    expect((await a.get(`${base}?name=two`)).body.items).toEqual([])
  })

  it('an invalid key is 400 VALIDATION_FAILED, and nothing is written', async ({ expect }) => {
    const before = await count(a)
    const long = await a.post(base, { name: 'long key' }, { 'idempotency-key': 'k'.repeat(256) })
    expect(long.status).toBe(400)
    expect(long.body.error).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('idempotency-key') })
    expect(await count(a)).toBe(before)
  })

  it('a key is the tenant’s own: another tenant writes with it as new', async ({ expect }) => {
    const mine = await b.post(base, { name: 'one', note: 'x' }, key('create'))
    expect(mine.status).toBe(201)
    expect(mine.headers.get('idempotent-replayed')).toBeNull()
  })

  it('PATCH, DELETE, bulk and bulk-delete replay too', async ({ expect }) => {
    const row = (await a.post(base, { name: 'to change' })).body as { id: number }
    const patched = await a.request('PATCH', `${base}/${row.id}`, { note: 'first' }, key('patch'))
    expect(patched.status).toBe(200)
    await a.request('PATCH', `${base}/${row.id}`, { note: 'changed meanwhile' })
    const patchedAgain = await a.request('PATCH', `${base}/${row.id}`, { note: 'first' }, key('patch'))
    expect([patchedAgain.status, patchedAgain.headers.get('idempotent-replayed')]).toEqual([200, 'true'])
    expect(patchedAgain.body).toEqual(patched.body)
    // The replay wrote nothing: the change made meanwhile stands.
    expect((await a.get(`${base}/${row.id}`)).body.note).toBe('changed meanwhile')

    const deleted = await a.request('DELETE', `${base}/${row.id}`, undefined, key('delete'))
    expect(deleted.status).toBe(204)
    const deletedAgain = await a.request('DELETE', `${base}/${row.id}`, undefined, key('delete'))
    expect([deletedAgain.status, deletedAgain.headers.get('idempotent-replayed')]).toEqual([204, 'true'])
    // Without the key, the same delete is a new one: 404.
    expect((await a.request('DELETE', `${base}/${row.id}`)).status).toBe(404)

    const before = await count(a)
    const items = [{ name: 'bulk 1' }, { name: 'bulk 2' }, { name: 'bulk 3' }]
    const bulk = await a.post(`${base}/bulk`, { items }, key('bulk'))
    expect(bulk.status).toBe(201)
    const bulkAgain = await a.post(`${base}/bulk`, { items }, key('bulk'))
    expect([bulkAgain.status, bulkAgain.headers.get('idempotent-replayed')]).toEqual([201, 'true'])
    expect(bulkAgain.body).toEqual(bulk.body)
    expect(await count(a)).toBe(before + 3)

    const ids = (bulk.body.items as Array<{ id: number }>).map((r) => r.id)
    const removed = await a.post(`${base}/bulk-delete`, { ids }, key('bulk-delete'))
    expect(removed.body).toEqual({ deleted: 3 })
    const removedAgain = await a.post(`${base}/bulk-delete`, { ids }, key('bulk-delete'))
    expect([removedAgain.status, removedAgain.headers.get('idempotent-replayed'), removedAgain.body]).toEqual([200, 'true', { deleted: 3 }])
    expect(await count(a)).toBe(before)
  })

  it('a write that fails is not recorded: the key is free for the corrected request', async ({ expect }) => {
    const refused = await a.post(base, { name: 'one' }, key('retry'))
    expect(refused.status).toBe(409)
    expect(refused.body.error.code).toBe('CONSTRAINT_VIOLATION')
    const missing = await a.request('PATCH', `${base}/999999`, { note: 'x' }, key('missing'))
    expect(missing.status).toBe(404)
    const corrected = await a.post(base, { name: 'one, corrected' }, key('retry'))
    expect(corrected.status).toBe(201)
    expect(corrected.headers.get('idempotent-replayed')).toBeNull()
    expect(await get().server.tenantry.withTenant(get().slugs[0], () => get().server.tenantry.db().selectFrom(LEDGER_TABLE).select('key').where('key', '=', key('missing')['idempotency-key']).execute())).toEqual([])
  })

  it('concurrent requests with one key: one writes, the others answer its replay', async ({ expect }) => {
    const before = await count(a)
    const replies = await Promise.all(Array.from({ length: 4 }, () => a.post(base, { name: 'raced' }, key('race'))))
    expect(replies.map((r) => r.status)).toEqual([201, 201, 201, 201])
    expect(replies.filter((r) => r.headers.get('idempotent-replayed') === null)).toHaveLength(1)
    for (const r of replies) expect(r.body).toEqual(replies[0]!.body)
    expect(await count(a)).toBe(before + 1)
    // A delete raced with itself: the losers find no row, and answer the winner's 204.
    const id = (replies[0]!.body as { id: number }).id
    const deletes = await Promise.all(Array.from({ length: 3 }, () => a.request('DELETE', `${base}/${id}`, undefined, key('race-delete'))))
    expect(deletes.map((r) => r.status)).toEqual([204, 204, 204])
    expect(deletes.filter((r) => r.headers.get('idempotent-replayed') === null)).toHaveLength(1)
  })

  it('in-process writes with the same key answer the HTTP write, and write nothing', async ({ expect }) => {
    const { server, slugs } = get()
    const first = await a.post(base, { name: 'both faces' }, key('faces'))
    const before = await count(a)
    const inProcess = await server.tenantry.withTenant(slugs[0], () =>
      server.tenantry.collection('items').create({ name: 'both faces' }, { idempotencyKey: key('faces')['idempotency-key'] }),
    )
    expect(inProcess).toEqual(first.body)
    expect(await count(a)).toBe(before)
    await expect(
      server.tenantry.withTenant(slugs[0], () => server.tenantry.collection('items').create({ name: 'other' }, { idempotencyKey: key('faces')['idempotency-key'] })),
    ).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' })
    await expect(server.tenantry.withTenant(slugs[0], () => server.tenantry.collection('items').create({ name: 'bad key' }, { idempotencyKey: '' }))).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
    })
    await expect(
      server.tenantry.withTenant(slugs[0], () => server.tenantry.collection('items').delete(1, { idempotencyKey: 'tab\there' })),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
  })

  if (options.canDropLedger) {
    it('a ledger entry that cannot be written rolls its write back', async ({ expect }) => {
      const { server, slugs } = get()
      // The tenant's ledger table is gone (raw SQL can do that): a keyed write fails whole.
      await server.tenantry.withTenant(slugs[1], () => sql`drop table ${sql.id(LEDGER_TABLE)}`.execute(server.tenantry.db()))
      const before = await count(b)
      const failed = await b.post(base, { name: 'lost?' }, key('no-ledger'))
      expect(failed.status, failed.text).toBe(500)
      expect(await count(b)).toBe(before)
      expect((await b.get(`${base}?name=${encodeURIComponent('lost?')}`)).body.items).toEqual([])
      // Without a key the write needs no ledger.
      const unkeyed = await b.post(base, { name: 'unkeyed' })
      expect(unkeyed.status, unkeyed.text).toBe(201)
    })
  }
}

describe('data API idempotency keys on SQLite', () => {
  let setup: Setup
  beforeAll(async () => {
    const server = await startTestServer({ config: { migrations: { tenant: { '0001_items': migration } }, server: { collections } } as TenantryConfig })
    await server.tenantry.createTenant({ slug: 'acme' })
    await server.tenantry.createTenant({ slug: 'beta' })
    setup = { server, slugs: ['acme', 'beta'] }
  })
  afterAll(async () => {
    await setup?.server.stop()
  })
  idempotencyBehaviour(() => setup, { canDropLedger: true })

  it('the OpenAPI document declares the header on every write, and its 409 and 422 answers', async ({ expect }) => {
    const doc = (await new Client(setup.server.url).get('/openapi.json')).body as {
      paths: Record<string, Record<string, { parameters?: Array<{ in: string; name: string; required?: boolean }>; responses: Record<string, unknown> }>>
    }
    const writes = [
      ['post', '/api/tenant/data/items'],
      ['patch', '/api/tenant/data/items/{id}'],
      ['delete', '/api/t/{slug}/data/items/{id}'],
      ['post', '/api/t/{slug}/data/items/bulk'],
      ['post', '/api/tenant/data/items/bulk-delete'],
    ] as const
    for (const [method, path] of writes) {
      const op = doc.paths[path]![method]!
      expect(op.parameters?.find((p) => p.in === 'header' && p.name === 'idempotency-key'), `${method} ${path}`).toMatchObject({ required: false })
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['409', '422']))
    }
    expect(doc.paths['/api/tenant/data/items']!.get!.parameters?.some((p) => p.in === 'header')).toBe(false)
  })

  it('entries older than 24 hours are pruned on a sample of writes', async ({ expect }) => {
    const { server } = setup
    const client = await tokenClient(server, 'acme')
    const old = new Date(Date.now() - 25 * 60 * 60 * 1000).toISOString()
    await server.tenantry.withTenant('acme', () => server.tenantry.db().updateTable(LEDGER_TABLE).set({ created_at: old }).execute())
    const entries = () => server.tenantry.withTenant('acme', () => server.tenantry.db().selectFrom(LEDGER_TABLE).select('key').execute())
    expect((await entries()).length).toBeGreaterThan(3)
    // Every 32nd keyed write of a process prunes: 32 writes include one.
    for (let i = 0; i < 32; i++) expect((await client.post('/api/tenant/data/items', { name: `prune ${i}` }, { 'idempotency-key': `prune-${i}` })).status).toBe(201)
    const left = (await entries()).map((e) => e.key as string)
    expect(left.every((k) => k.startsWith('prune-'))).toBe(true)
    expect(left.length).toBeGreaterThan(0)
  })
})

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping data API idempotency keys on Postgres: ${postgres.skip}`)

for (const isolation of ['schema', 'row'] as const) {
  describe.skipIf('skip' in postgres)(`data API idempotency keys on Postgres, ${isolation} isolation`, () => {
    const dataSourceId = `idem_${isolation}_${process.pid}`
    let data: TestDatabase
    let setup: Setup
    beforeAll(async () => {
      if (!('url' in postgres)) return
      data = await createTestDatabase(postgres.url, `tenantry_idem_${isolation}`)
      const server = await startTestServer({
        config: {
          migrations: { tenant: { '0001_items': migration } },
          dataSources: [
            { id: 'local', engine: 'sqlite' },
            { id: dataSourceId, engine: 'postgres', url: data.url, isolations: [isolation] },
          ],
          server: { collections },
        } as TenantryConfig,
      })
      for (const slug of ['pga', 'pgb']) await server.tenantry.createTenant({ slug, isolation, dataSource: dataSourceId })
      setup = { server, slugs: ['pga', 'pgb'] }
    })
    afterAll(async () => {
      for (const slug of setup?.slugs ?? []) await setup.server.tenantry.deleteTenant(slug, { purge: true }).catch(() => {})
      await setup?.server.stop()
      await data?.drop()
      if ('url' in postgres) await dropAppRoles(postgres.url, [dataSourceId])
    })
    // A Postgres tenant's role may not drop the ledger (nor, under row isolation, is it the
    // tenant's alone): core's ledger tests prove the same transaction on schema and row isolation.
    idempotencyBehaviour(() => setup, { canDropLedger: false })
  })
}
