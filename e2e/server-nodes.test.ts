import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { CHANGE_FEED_APPLICATION_NAME, createTenantry, type Tenantry } from 'tenantry'
import { createTestDatabase, findPostgres, tempDir, type TestDatabase } from 'tenantry/testing'
import { nodeConfig } from './fixtures/nodes-setup.js'

// Issue 14: stateless server nodes over one Postgres catalog. Node one is a real server in its
// own process; node two is this test process, changing the catalog as an operator's CLI or
// another server would. Whatever node two changes (suspend, revoke, maintenance, quota, move,
// delete and purge), node one follows without waiting out its caches' TTLs (30 s for
// placements, 5 s for quotas), also after its LISTEN connection is cut.

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))
const CHILD = fileURLToPath(new URL('./fixtures/node-child.ts', import.meta.url))
/** Liveness bound for "node one follows": generous for a busy machine, far below the placement TTL. */
const FOLLOWS_MS = 10_000
/** The quota cache's TTL is 5 s: following sooner than that is the feed's doing. */
const QUOTA_FOLLOWS_MS = 4_000

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping several server nodes: ${postgres.skip}`)

type Outcome = { ok: true; value: any } | { ok: false; code: string }

let catalog: TestDatabase
let home: ReturnType<typeof tempDir>
let two: Tenantry
let one: { child: ChildProcess; url: string; output: () => string }

async function startNode(): Promise<typeof one> {
  // tsconfig.test.json's paths: the child runs the packages' source, as the tests do.
  const env: NodeJS.ProcessEnv = { ...process.env, TSX_TSCONFIG_PATH: 'tsconfig.test.json', BETTER_AUTH_SECRET: 'x'.repeat(32) }
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, home.path, catalog.url], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /^listening (\S+)$/m.exec(output)
      if (match) resolve(match[1]!)
    })
    child.on('close', () => reject(new Error(`node one exited before listening:\n${output}`)))
  })
  return { child, url, output: () => output }
}

async function probe(path: string, body?: unknown): Promise<Outcome> {
  const response = await fetch(`${one.url}/probe/acme/${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  expect(response.status, one.output()).toBe(200)
  return (await response.json()) as Outcome
}

/** Node one's answer to a Hrana pipeline with `token` (SQL-over-HTTP, as libSQL's clients send it). */
async function pipeline(token: string, query = 'select count(*) from items'): Promise<{ status: number; value?: unknown }> {
  const response = await fetch(`${one.url}/v2/pipeline`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: query } }, { type: 'close' }] }),
  })
  const body = (await response.json()) as any
  return { status: response.status, value: body?.results?.[0]?.response?.result?.rows?.[0]?.[0]?.value }
}

/** Polls `check` until it passes or `boundMs` ran out (liveness, not a timing assertion). */
const eventually = (check: () => unknown, boundMs = FOLLOWS_MS) => vi.waitFor(check, { timeout: boundMs, interval: 100 })

describe.skipIf('skip' in postgres)('several server nodes over one Postgres catalog', () => {
  beforeAll(async () => {
    catalog = await createTestDatabase((postgres as { url: string }).url, 'tenantry_nodes')
    home = tempDir('tenantry-nodes-')
    // Node two's own router trusts placements briefly, so that a move it makes removes the old
    // copy soon; node one keeps the default 30 s.
    two = await createTenantry({ ...nodeConfig(home.path, catalog.url), router: { placementTtlMs: 1_000 } })
    await two.createTenant({ slug: 'acme', dataSource: 'local' })
    await two.withTenant('acme', () => two.db().insertInto('items').values({ id: 1, label: 'first' }).execute())
    one = await startNode()
  })
  afterAll(async () => {
    one?.child.kill('SIGKILL')
    await two?.close()
    await catalog?.drop()
    home?.cleanup()
  })

  it('a suspend on node two is refused by node one; a resume serves again', async () => {
    expect(await probe('items')).toEqual({ ok: true, value: [{ id: 1, label: 'first' }] })
    await two.tenants.suspend('acme')
    await eventually(async () => expect(await probe('items')).toEqual({ ok: false, code: 'TENANT_NOT_READY' }))
    await two.tenants.resume('acme')
    await eventually(async () => expect(await probe('items')).toMatchObject({ ok: true }))
  })

  it('a token revoked on node two is refused by node one', async () => {
    const { token, record } = await two.tokens.create('acme', { readOnly: true })
    expect((await pipeline(token)).status).toBe(200)
    await two.tokens.revoke(record.id)
    await eventually(async () => expect((await pipeline(token)).status).toBe(401))
  })

  it('maintenance on node two refuses writes on node one; off lets them through', async () => {
    expect(await probe('items', { id: 2, label: 'before' })).toEqual({ ok: true, value: 'written' })
    await two.tenants.maintenance('acme', { readOnly: true })
    await eventually(async () => expect(await probe('items', { id: 3, label: 'during' })).toEqual({ ok: false, code: 'TENANT_MAINTENANCE' }))
    expect(await probe('items')).toMatchObject({ ok: true })
    await two.tenants.maintenance('acme', { readOnly: false })
    await eventually(async () => expect(await probe('items', { id: 3, label: 'after' })).toEqual({ ok: true, value: 'written' }))
  })

  it('a quota changed on node two applies on node one', async () => {
    const before = await probe('quotas')
    expect(before).toMatchObject({ ok: true })
    expect(before.ok && before.value.bulkRows).not.toBe(7)
    await two.quotas.set('acme', { bulkRows: 7 })
    await eventually(async () => expect(await probe('quotas')).toMatchObject({ ok: true, value: { bulkRows: 7 } }), QUOTA_FOLLOWS_MS)
  })

  it('node one follows a move made on node two to its new placement', async () => {
    expect(await probe('items')).toMatchObject({ ok: true })
    const { token } = await two.tokens.create('acme', { readOnly: true })
    expect(await pipeline(token, 'select count(*) from items where id = 10')).toEqual({ status: 200, value: '0' })
    const moved = await two.tenants.move('acme', { dataSource: 'other' })
    expect(moved).toMatchObject({ verified: true, oldCopyRemoved: true })
    await two.withTenant('acme', () => two.db().insertInto('items').values({ id: 10, label: 'moved' }).execute())
    // Only the new placement has item 10: a node still on the old copy never shows it.
    await eventually(async () => expect(await probe('items')).toMatchObject({ ok: true, value: expect.arrayContaining([{ id: 10, label: 'moved' }]) }))
    // SQL-over-HTTP on node one reaches the new placement too.
    expect(await pipeline(token, 'select count(*) from items where id = 10')).toEqual({ status: 200, value: '1' })
  })

  it('node one still follows after its LISTEN connection is cut', async () => {
    expect(await probe('items')).toMatchObject({ ok: true })
    const admin = new pg.Client({ connectionString: catalog.url })
    await admin.connect()
    try {
      // Every node's listening connection, node one's among them.
      const cut = await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and datname = current_database()', [
        CHANGE_FEED_APPLICATION_NAME,
      ])
      expect(cut.rowCount).toBeGreaterThanOrEqual(2)
    } finally {
      await admin.end()
    }
    await two.tenants.suspend('acme')
    await eventually(async () => expect(await probe('items')).toEqual({ ok: false, code: 'TENANT_NOT_READY' }))
    await two.tenants.resume('acme')
    await eventually(async () => expect(await probe('items')).toMatchObject({ ok: true }))
  })

  it('a tenant deleted and purged on node two is gone on node one', async () => {
    expect(await probe('items')).toMatchObject({ ok: true })
    await two.deleteTenant('acme', { purge: true })
    await eventually(async () => expect(await probe('items')).toEqual({ ok: false, code: 'TENANT_NOT_FOUND' }))
  })
})
