import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sql, type Generated } from 'kysely'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { collections } from '../../../../examples/cv-builder/collections.js'
import { Collection } from '../collections/collection.js'
import { createTenantry, type Tenantry } from '../tenantry.js'
import type { TenantryConfig } from '../config.js'
import type { TenantDb } from './router.js'
import { setMaintenance } from '../lifecycle/write-gate.js'
import { createManagedAdmin, dropAppRoles, findPostgres, openFilesUnder, tempDir, type ManagedAdmin } from '../testing/services.js'

const migrations = fileURLToPath(new URL('../../../../examples/cv-builder/migrations', import.meta.url))

interface Jobs {
  jobs: { id: Generated<number>; company: string; title: string; start_date: string }
}

const job = (company: string) => ({ company, title: 'x', start_date: '2020-01-01' })

describe('tenantry.prepare on SQLite', () => {
  let dir: ReturnType<typeof tempDir>
  let config: TenantryConfig
  let tenantry: Tenantry

  const open = (router?: TenantryConfig['router']) => createTenantry({ ...config, ...(router ? { router } : {}) })

  beforeEach(async () => {
    dir = tempDir()
    config = { home: dir.path, migrations: { tenant: migrations } }
    const setup = await createTenantry(config)
    for (const slug of ['t_a', 't_b']) {
      await setup.createTenant({ slug })
      await setup.withTenant(slug, () => setup.db<Jobs>().insertInto('jobs').values([job(`${slug} one`), job(`${slug} two`)]).execute())
    }
    await setup.close()
  })

  afterEach(async () => {
    await tenantry?.close()
    dir.cleanup()
  })

  it("reads each tenant's own rows, never another's, for any order of tenants", async () => {
    tenantry = await open()
    const byId = tenantry.prepare((db: TenantDb<Jobs>, p: { id: number }) => db.selectFrom('jobs').select(['id', 'company']).where('id', '=', p.id))
    const all = tenantry.prepare((db: TenantDb<Jobs>, p: { like: string }) => db.selectFrom('jobs').select('company').where('company', 'like', p.like).orderBy('id'))
    for (const slug of ['t_a', 't_b', 't_a', 't_b']) {
      await tenantry.withTenant(slug, async () => {
        expect(await byId.executeTakeFirst({ id: 2 })).toEqual({ id: 2, company: `${slug} two` })
        expect(await byId.executeTakeFirst({ id: 3 })).toBeUndefined()
        expect((await all.execute({ like: '%' })).map((r) => r.company)).toEqual([`${slug} one`, `${slug} two`])
        expect(await all.execute({ like: 't_%' })).toHaveLength(2)
      })
    }
    // Concurrent calls for both tenants interleave on one prepared query.
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const slug = i % 2 ? 't_a' : 't_b'
        return tenantry.withTenant(slug, async () => ({ slug, row: await byId.executeTakeFirst({ id: 1 }) }))
      }),
    )
    for (const { slug, row } of results) expect(row).toEqual({ id: 1, company: `${slug} one` })
  })

  it('refuses outside withTenant, a missing parameter, and a parameter written into the SQL text', async () => {
    tenantry = await open()
    const byId = tenantry.prepare((db: TenantDb<Jobs>, p: { id: number }) => db.selectFrom('jobs').selectAll().where('id', '=', p.id))
    await expect(byId.execute({ id: 1 })).rejects.toMatchObject({ code: 'NO_TENANT' })
    await expect(tenantry.withTenant('t_a', () => byId.execute({} as { id: number }))).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    const literal = tenantry.prepare((db: TenantDb<Jobs>, p: { id: number }) => db.selectFrom('jobs').selectAll().where('id', '=', sql.lit(p.id)))
    await expect(tenantry.withTenant('t_a', () => literal.execute({ id: 1 }))).rejects.toMatchObject({ code: 'INVALID_OPTION' })
  })

  it("writes pass the tenant's write gate: maintenance refuses them, reads go on", async () => {
    tenantry = await open()
    const insert = tenantry.prepare((db: TenantDb<Jobs>, p: { company: string }) => db.insertInto('jobs').values({ ...job('x'), company: p.company }))
    const count = tenantry.prepare((db: TenantDb<Jobs>, _p: Record<string, never>) => db.selectFrom('jobs').select((eb) => eb.fn.countAll<number>().as('n')))
    const a = (await tenantry.catalog.findTenantBySlug('t_a'))!
    await tenantry.withTenant('t_a', () => insert.execute({ company: 'before' }))
    setMaintenance(a.id, 'upgrading')
    try {
      await expect(tenantry.withTenant('t_a', () => insert.execute({ company: 'during' }))).rejects.toMatchObject({ code: 'TENANT_MAINTENANCE' })
      expect(await tenantry.withTenant('t_a', () => count.executeTakeFirst({}))).toEqual({ n: 3 })
      // Another tenant is not gated.
      await tenantry.withTenant('t_b', () => insert.execute({ company: 'b during' }))
    } finally {
      setMaintenance(a.id, undefined)
    }
    await tenantry.withTenant('t_a', () => insert.execute({ company: 'after' }))
    expect(await tenantry.withTenant('t_a', () => count.executeTakeFirst({}))).toEqual({ n: 4 })
  })

  it("waits for a transaction holding the tenant's connection instead of joining it", async () => {
    tenantry = await open()
    const count = tenantry.prepare((db: TenantDb<Jobs>, _p: Record<string, never>) => db.selectFrom('jobs').select((eb) => eb.fn.countAll<number>().as('n')))
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    let inserted!: () => void
    const didInsert = new Promise<void>((r) => (inserted = r))
    const transaction = tenantry.withTenant('t_a', () =>
      tenantry
        .db<Jobs>()
        .transaction()
        .execute(async (trx) => {
          await trx.insertInto('jobs').values(job('uncommitted')).execute()
          inserted()
          await held
          throw new Error('roll back')
        }),
    )
    await didInsert
    let read: { n: number } | undefined
    const reading = tenantry.withTenant('t_a', () => count.executeTakeFirst({})).then((row) => (read = row))
    await new Promise((r) => setTimeout(r, 20))
    expect(read).toBeUndefined() // still waiting for the connection
    release()
    await expect(transaction).rejects.toThrow('roll back')
    await reading
    expect(read).toEqual({ n: 2 }) // never saw the rolled-back row
  })

  it("drops a handle's compiled queries and statements when the handle closes, and compiles again on the next", async () => {
    tenantry = await open({ maxOpenHandles: 1 })
    const byId = tenantry.prepare((db: TenantDb<Jobs>, p: { id: number }) => db.selectFrom('jobs').select('company').where('id', '=', p.id))
    const entryA = await tenantry.withTenant('t_a', async () => {
      expect(await byId.executeTakeFirst({ id: 1 })).toEqual({ company: 't_a one' })
      return tenantry.router.current()
    })
    expect(entryA.prepared.size).toBe(1)
    await tenantry.withTenant('t_b', async () => expect(await byId.executeTakeFirst({ id: 1 })).toEqual({ company: 't_b one' }))
    expect(tenantry.router.stats()).toMatchObject({ evictions: 1, openHandles: 1 })
    expect(entryA.prepared.size).toBe(0)
    // The evicted handle's connection is closed, though it never ran a query through Kysely:
    // no file of the tenant's is open, and closing checkpointed and removed its log.
    const fileA = join(dir.path, 'tenants', (await tenantry.catalog.findTenantBySlug('t_a'))!.placement.locator)
    expect(existsSync(`${fileA}-wal`)).toBe(false)
    if (process.platform === 'linux') expect(openFilesUnder(fileA)).toEqual([])
    // The next call opens a new one and prepares there.
    await tenantry.withTenant('t_a', async () => {
      expect(await byId.executeTakeFirst({ id: 1 })).toEqual({ company: 't_a one' })
      expect(tenantry.router.current()).not.toBe(entryA)
    })
    // An invalidated tenant (moved, suspended) is reopened the same way.
    const a = (await tenantry.catalog.findTenantBySlug('t_a'))!
    const entry = await tenantry.withTenant('t_a', async () => tenantry.router.current())
    tenantry.router.invalidate(a.id)
    await tenantry.withTenant('t_a', async () => expect(await byId.executeTakeFirst({ id: 2 })).toEqual({ company: 't_a two' }))
    expect(entry.prepared.size).toBe(0)
  })

  it('compiles once per handle for one build function, however many times it is prepared (once per request, say)', async () => {
    tenantry = await open()
    let builds = 0
    const build = (db: TenantDb<Jobs>, p: { id: number }) => {
      builds++
      return db.selectFrom('jobs').select('company').where('id', '=', p.id)
    }
    for (const id of [1, 2, 1]) {
      await tenantry.withTenant('t_a', async () => expect(await tenantry.prepare(build).executeTakeFirst({ id })).toEqual({ company: `t_a ${id === 1 ? 'one' : 'two'}` }))
    }
    expect(builds).toBe(1)
    // Another tenant's handle compiles its own (its own connection, its own scope).
    await tenantry.withTenant('t_b', async () => expect(await tenantry.prepare(build).executeTakeFirst({ id: 2 })).toEqual({ company: 't_b two' }))
    expect(builds).toBe(2)
  })

  it("a collection's point read by id is built once per tenant handle, not on every call", async () => {
    tenantry = await createTenantry({ ...config, server: { collections } })
    await tenantry.migrate()
    const selects = vi.spyOn(Collection.prototype, 'select')
    try {
      for (const slug of ['t_a', 't_b']) {
        await tenantry.withTenant(slug, async () => {
          const jobs = tenantry.collection('jobs')
          expect(await jobs.findById(1)).toMatchObject({ id: 1, company: `${slug} one` })
          expect(await jobs.findById(2)).toMatchObject({ id: 2, company: `${slug} two` })
          expect(await jobs.findById(99)).toBeUndefined()
        })
      }
      expect(selects).toHaveBeenCalledTimes(2)
    } finally {
      selects.mockRestore()
    }
  })

  it("ad-hoc db() queries reuse the handle's statements and see schema changes", async () => {
    tenantry = await open()
    await tenantry.withTenant('t_a', async () => {
      const db = tenantry.db<Jobs>()
      const before = await db.selectFrom('jobs').selectAll().where('id', '=', 1).executeTakeFirstOrThrow()
      expect(before).not.toHaveProperty('extra')
      await sql`alter table jobs add column extra text default 'new'`.execute(db)
      // The same SQL text, prepared before the change: SQLite re-prepares it.
      const after = await db.selectFrom('jobs').selectAll().where('id', '=', 1).executeTakeFirstOrThrow()
      expect(after).toMatchObject({ id: 1, extra: 'new' })
      // Streaming does not take a cached statement (it stays busy while iterating).
      const streamed: unknown[] = []
      for (let round = 0; round < 2; round++) {
        for await (const row of db.selectFrom('jobs').select('id').stream()) streamed.push(row)
      }
      expect(streamed).toHaveLength(4)
    })
  })
})

const postgres = await findPostgres()

describe.skipIf('skip' in postgres)(`tenantry.prepare on Postgres${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
  const dir = tempDir('tenantry-pg-prepare-')
  const dataSource = `pg_prepare_${process.pid}`
  let admin: ManagedAdmin
  let tenantry: Tenantry
  const slugs = { row: ['r_a', 'r_b'], schema: ['s_a', 's_b'] } as const

  beforeAll(async () => {
    if ('skip' in postgres) return
    admin = await createManagedAdmin(postgres.url)
    tenantry = await createTenantry({
      home: dir.path,
      dataSources: [{ id: dataSource, engine: 'postgres', url: admin.url, isolations: ['row', 'schema'] }],
      defaults: { isolation: 'row', dataSource },
      migrations: { tenant: migrations },
    })
    for (const isolation of ['row', 'schema'] as const) {
      for (const slug of slugs[isolation]) {
        await tenantry.createTenant({ slug, isolation })
        await tenantry.withTenant(slug, () => tenantry.db<Jobs>().insertInto('jobs').values([job(`${slug} one`), job(`${slug} two`)]).execute())
      }
    }
  })

  afterAll(async () => {
    if ('skip' in postgres) return
    await tenantry?.close()
    await dropAppRoles(postgres.url, [dataSource]).catch(() => {})
    await admin?.drop()
    dir.cleanup()
  })

  it.each(['row', 'schema'] as const)("%s isolation: each tenant reads its own rows, and maintenance refuses writes", async (isolation) => {
    const all = tenantry.prepare((db: TenantDb<Jobs>, p: { like: string }) => db.selectFrom('jobs').select('company').where('company', 'like', p.like).orderBy('company'))
    const insert = tenantry.prepare((db: TenantDb<Jobs>, p: { company: string }) => db.insertInto('jobs').values({ ...job('x'), company: p.company }))
    // Past Postgres' fifth run, when a named statement's generic plan takes over: still each tenant's own rows.
    for (const slug of Array.from({ length: 8 }, () => slugs[isolation]).flat()) {
      await tenantry.withTenant(slug, async () => {
        expect((await all.execute({ like: '%' })).map((r) => r.company)).toEqual([`${slug} one`, `${slug} two`])
      })
    }
    const [first, second] = slugs[isolation]
    const tenant = (await tenantry.catalog.findTenantBySlug(first))!
    setMaintenance(tenant.id, 'upgrading')
    try {
      await expect(tenantry.withTenant(first, () => insert.execute({ company: `${first} during` }))).rejects.toMatchObject({ code: 'TENANT_MAINTENANCE' })
      await tenantry.withTenant(second, () => insert.execute({ company: `${second} three` }))
    } finally {
      setMaintenance(tenant.id, undefined)
    }
    expect(await tenantry.withTenant(first, () => all.execute({ like: '%' }))).toHaveLength(2)
    expect((await tenantry.withTenant(second, () => all.execute({ like: '%' }))).map((r) => r.company)).toEqual([`${second} one`, `${second} three`, `${second} two`])
  })

  it.each(['row', 'schema'] as const)("%s isolation: a handle that served only prepared reads ends its tenant's pool when it closes", async (isolation) => {
    const byId = tenantry.prepare((db: TenantDb<Jobs>, p: { id: number }) => db.selectFrom('jobs').select('company').where('id', '=', p.id))
    const [slug] = slugs[isolation]
    const tenant = (await tenantry.catalog.findTenantBySlug(slug))!
    tenantry.router.invalidate(tenant.id) // the next call opens a new handle
    const handle = await tenantry.withTenant(slug, async () => {
      expect(await byId.executeTakeFirst({ id: 1 })).toEqual({ company: `${slug} one` })
      return tenantry.router.current().handle
    })
    const end = vi.spyOn(pg.Pool.prototype, 'end')
    try {
      await handle.close()
      // Only the tenant's own pool, the one the named statement ran on, is ended.
      expect(end).toHaveBeenCalledTimes(1)
      expect((end.mock.contexts[0] as pg.Pool).ended).toBe(true)
    } finally {
      end.mockRestore()
      tenantry.router.invalidate(tenant.id)
    }
  })

  /** The names of the statements pg.Client sent while `fn` ran (a named statement is prepared once per connection). */
  async function statementNames(fn: () => Promise<unknown>): Promise<Array<string | undefined>> {
    const query = vi.spyOn(pg.Client.prototype, 'query')
    try {
      await fn()
      return query.mock.calls.map(([config]) => (typeof config === 'object' && config !== null ? (config as { name?: string }).name : undefined))
    } finally {
      query.mockRestore()
    }
  }

  it.each(['row', 'schema'] as const)('%s isolation: reads run as one named statement; writes and ad-hoc queries do not', async (isolation) => {
    const byCompany = tenantry.prepare((db: TenantDb<Jobs>, p: { company: string }) => db.selectFrom('jobs').select('id').where('company', '=', p.company))
    const rename = tenantry.prepare((db: TenantDb<Jobs>, p: { from: string; to: string }) => db.updateTable('jobs').set({ title: p.to }).where('title', '=', p.from))
    const [slug] = slugs[isolation]
    const names = await statementNames(() =>
      tenantry.withTenant(slug, async () => {
        for (let i = 0; i < 3; i++) expect(await byCompany.execute({ company: `${slug} one` })).toHaveLength(1)
        await rename.execute({ from: 'nothing', to: 'never' })
        await tenantry.db<Jobs>().selectFrom('jobs').select('id').execute()
      }),
    )
    const named = names.filter((name) => name !== undefined)
    expect(named).toHaveLength(3)
    expect(new Set(named).size).toBe(1)
    expect(named[0]).toMatch(/^tenantry_/)
  })

  it("a migration that changes a named statement's columns: the read after it returns the new columns", async () => {
    const everything = tenantry.prepare((db: TenantDb<Jobs>, p: { company: string }) => db.selectFrom('jobs').selectAll().where('company', '=', p.company))
    const [rowTenant] = slugs.row
    const [schemaTenant] = slugs.schema
    const read = (slug: string) => tenantry.withTenant(slug, () => everything.execute({ company: `${slug} one` }))
    // Both of each tenant's connections hold the statement, with a generic plan.
    for (let i = 0; i < 6; i++) for (const slug of [rowTenant, schemaTenant]) await Promise.all([read(slug), read(slug)])
    const schema = (await tenantry.catalog.findTenantBySlug(schemaTenant))!.placement.locator
    const client = new pg.Client({ connectionString: admin.url })
    await client.connect()
    try {
      await client.query('ALTER TABLE tenant_rows.jobs ADD COLUMN note text')
      await client.query(`ALTER TABLE "${schema}".jobs ADD COLUMN note text`)
    } finally {
      await client.end()
    }
    for (let i = 0; i < 3; i++) {
      for (const slug of [rowTenant, schemaTenant]) {
        const rows = await Promise.all([read(slug), read(slug)])
        for (const [row] of rows) expect(row).toMatchObject({ company: `${slug} one`, note: null })
      }
    }
  })

  it('preparedStatements: false sends no named statements', async () => {
    const plain = await createTenantry({
      home: tempDir('tenantry-pg-unnamed-').path,
      dataSources: [{ id: dataSource, engine: 'postgres', url: admin.url, isolations: ['row', 'schema'], preparedStatements: false }],
      defaults: { isolation: 'row', dataSource },
      migrations: { tenant: migrations },
    })
    try {
      await plain.createTenant({ slug: 'r_plain', isolation: 'row' })
      const ids = plain.prepare((db: TenantDb<Jobs>, p: { company: string }) => db.selectFrom('jobs').select('id').where('company', '=', p.company))
      const names = await statementNames(() => plain.withTenant('r_plain', () => ids.execute({ company: 'none' })))
      expect(names.length).toBeGreaterThan(0)
      expect(names.filter((name) => name !== undefined)).toEqual([])
    } finally {
      await plain.close()
    }
  })
})
