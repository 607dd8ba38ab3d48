import { connect, createServer, type Socket } from 'node:net'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { createTenantry, isTenantryError, type Tenantry } from '../index.js'
import { createTestDatabase, findPostgres, tempDir, type TestDatabase } from '../testing/index.js'
import { CHANGE_FEED_APPLICATION_NAME, PostgresChangeFeed, parseChange, type CatalogChange } from './change-feed.js'

// Issue 14: caches of one process follow catalog changes made past them: on a SQLite catalog
// within the process, on a Postgres catalog across processes (here two instances, each with its
// own pool, caches and listening connection; e2e/server-nodes.test.ts runs real separate servers).

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping the Postgres change feed: ${postgres.skip}`)

const dirs: Array<ReturnType<typeof tempDir>> = []
afterAll(() => dirs.forEach((dir) => dir.cleanup()))

/** Polls `check` until it passes; the bound is liveness only, never a timing assertion. */
const eventually = (check: () => unknown, boundMs = 10_000) => vi.waitFor(check, { timeout: boundMs, interval: 50 })

async function refusal(tenantry: Tenantry, slug: string): Promise<string | undefined> {
  try {
    await tenantry.withTenant(slug, () => tenantry.db().selectFrom('items').selectAll().execute())
    return undefined
  } catch (error) {
    if (isTenantryError(error)) return error.code
    throw error
  }
}

const migrations = {
  '0001_items': { up: async (db: any) => db.schema.createTable('items').addColumn('id', 'integer', (c: any) => c.primaryKey()).execute() },
}

describe('change feed, SQLite catalog (in-process)', () => {
  it('announces tenant, settings and token changes, and not a token being used', async () => {
    const home = tempDir('tenantry-feed-')
    dirs.push(home)
    const tenantry = await createTenantry({ home: home.path, migrations: { tenant: migrations } })
    try {
      const tenant = await tenantry.createTenant({ slug: 'acme' })
      const { token, record } = await tenantry.tokens.create('acme', { readOnly: true })
      await new Promise((resolve) => setTimeout(resolve, 10))
      const heard: CatalogChange[] = []
      tenantry.changes.subscribe((change) => heard.push(change))

      expect(await tenantry.tokens.verify(token)).toBeDefined() // writes last_used_at: not a change anyone caches
      await tenantry.quotas.set('acme', { tokens: 5 })
      await tenantry.tokens.revoke(record.id)
      await tenantry.tenants.suspend('acme')
      await new Promise((resolve) => setTimeout(resolve, 10))
      expect(heard).toContainEqual({ kind: 'settings', tenantId: tenant.id })
      expect(heard).toContainEqual({ kind: 'token', tokenId: record.id })
      expect(heard).toContainEqual({ kind: 'tenant', tenantId: tenant.id })
      expect(heard.filter((change) => change.kind === 'token')).toHaveLength(1)
    } finally {
      await tenantry.close()
    }
  })

  it('drops a cached placement that a write past the router made stale', async () => {
    const home = tempDir('tenantry-feed-')
    dirs.push(home)
    const tenantry = await createTenantry({ home: home.path, migrations: { tenant: migrations } })
    try {
      await tenantry.createTenant({ slug: 'acme' })
      expect(await refusal(tenantry, 'acme')).toBeUndefined()
      // As another writer would (an operator's script, a future code path that forgets to invalidate).
      await tenantry.catalog.db.updateTable('tenants').set({ status: 'suspended' }).where('slug', '=', 'acme').execute()
      await eventually(async () => expect(await refusal(tenantry, 'acme')).toBe('TENANT_NOT_READY'))
    } finally {
      await tenantry.close()
    }
  })
})

describe('parseChange', () => {
  it('reads what the triggers send, and counts anything else as a reset', () => {
    expect(parseChange('{"kind":"tenant","tenantId":"t1","tokenId":null}')).toEqual({ kind: 'tenant', tenantId: 't1' })
    expect(parseChange('{"kind":"token","tenantId":"t1","tokenId":"k1"}')).toEqual({ kind: 'token', tokenId: 'k1', tenantId: 't1' })
    expect(parseChange('{"kind":"something-new"}')).toEqual({ kind: 'reset' })
    expect(parseChange('not json')).toEqual({ kind: 'reset' })
  })
})

describe.skipIf('skip' in postgres)('change feed, Postgres catalog (two instances)', () => {
  it('reaches the other instance only on commit, and survives its listening connection being ended', async () => {
    const server = (postgres as { url: string }).url
    const catalog: TestDatabase = await createTestDatabase(server, 'tenantry_feed')
    const home = tempDir('tenantry-feed-')
    dirs.push(home)
    const config = { home: home.path, catalogUrl: catalog.url, migrations: { tenant: migrations } }
    const one = await createTenantry(config)
    const two = await createTenantry(config)
    try {
      const tenant = await two.createTenant({ slug: 'acme' })
      expect(await refusal(one, 'acme')).toBeUndefined()
      expect((await one.quotas.of(tenant.id)).tokens).not.toBe(3)
      const heard: CatalogChange[] = []
      one.changes.subscribe((change) => heard.push(change))

      // A change rolled back is never announced; the one after it is.
      await two.catalog.db
        .transaction()
        .execute(async (trx) => {
          await trx.updateTable('tenants').set({ status: 'suspended' }).where('id', '=', tenant.id).execute()
          throw new Error('roll back')
        })
        .catch(() => undefined)
      await two.quotas.set('acme', { tokens: 3 })
      await eventually(() => expect(heard).toContainEqual({ kind: 'settings', tenantId: tenant.id }))
      expect(heard).not.toContainEqual({ kind: 'tenant', tenantId: tenant.id })
      expect((await one.quotas.of(tenant.id)).tokens).toBe(3)

      await two.tenants.suspend('acme')
      await eventually(async () => expect(await refusal(one, 'acme')).toBe('TENANT_NOT_READY'))
      await two.tenants.resume('acme')
      await eventually(async () => expect(await refusal(one, 'acme')).toBeUndefined())

      // End instance one's listening connection: it hears a reset, reconnects, and keeps following.
      const admin = new pg.Client({ connectionString: catalog.url })
      await admin.connect()
      try {
        const ended = await admin.query(
          'select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and datname = current_database() and pid <> pg_backend_pid()',
          [CHANGE_FEED_APPLICATION_NAME],
        )
        expect(ended.rowCount).toBe(2) // both instances' feeds
      } finally {
        await admin.end()
      }
      await eventually(() => expect(heard).toContainEqual({ kind: 'reset' }))
      await two.tenants.suspend('acme')
      await eventually(async () => expect(await refusal(one, 'acme')).toBe('TENANT_NOT_READY'))
    } finally {
      await one.close()
      await two.close()
      await catalog.drop()
    }
  })
})

describe.skipIf('skip' in postgres)('change feed, a listening connection that goes silent', () => {
  it('is noticed by its heartbeat, dropped and replaced, and everything cached is reset', async () => {
    const target = new URL((postgres as { url: string }).url)
    // A TCP proxy to Postgres that can stop passing bytes on the connections it has, without
    // closing them: a network that went quiet, which neither side hears of.
    const live = new Set<Socket>()
    const all: Socket[] = []
    const proxy = createServer((client) => {
      const server = connect(Number(target.port || 5432), target.hostname)
      client.pipe(server).pipe(client)
      client.on('error', () => server.destroy())
      server.on('error', () => client.destroy())
      live.add(client)
      all.push(client, server)
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    const via = new URL(target)
    via.host = `127.0.0.1:${(proxy.address() as { port: number }).port}`
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: target.toString(), max: 1 }) }) })
    const feed = new PostgresChangeFeed(via.toString(), db, { heartbeatMs: 200, minReconnectMs: 50 })
    const heard: CatalogChange[] = []
    feed.subscribe((change) => heard.push(change))
    try {
      await feed.start()
      await feed.publish({ kind: 'tenant', tenantId: 'before' })
      await eventually(() => expect(heard).toEqual([{ kind: 'tenant', tenantId: 'before' }]))
      for (const socket of live) {
        socket.unpipe()
        socket.pause()
      }
      live.clear()
      await eventually(() => expect(heard).toContainEqual({ kind: 'reset' }))
      // Reconnected through the proxy (new connections pass): changes are heard again.
      await eventually(async () => {
        await feed.publish({ kind: 'tenant', tenantId: 'after' })
        expect(heard).toContainEqual({ kind: 'tenant', tenantId: 'after' })
      })
      expect(heard.filter((change) => change.kind === 'reset').length).toBeGreaterThanOrEqual(2) // lost, then back
    } finally {
      await feed.close()
      await db.destroy()
      proxy.close()
      for (const socket of all) socket.destroy()
    }
  })
})
