import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TenantryConfig } from 'tenantry'
import { openFilesUnder } from 'tenantry/testing'
import { Client, startTestServer, type TestServer } from '@tenantry/server/testing'

/**
 * The router keeps at most `maxOpenHandles` tenant handles open and closes the least recently
 * used. The data API's read by id runs as a prepared statement, never through Kysely's driver:
 * an evicted handle must still close its connection, or a server reading many tenants' rows
 * would hold every tenant file it ever read open (three descriptors each) until garbage
 * collection, and run out of file descriptors for all of them.
 */
const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url))
const BUDGET = 2
const TENANTS = 8

let server: TestServer
const readers: Array<{ slug: string; client: Client }> = []

beforeAll(async () => {
  const base = (await import(`${REPO_ROOT}tenantry.config.ts`)).default as TenantryConfig
  server = await startTestServer({ config: { ...base, router: { maxOpenHandles: BUDGET } }, root: REPO_ROOT })
  const { tenantry } = server
  for (let i = 0; i < TENANTS; i++) {
    const slug = `reader_${i}`
    const tenant = await tenantry.createTenant({ slug })
    await tenantry.withTenant(slug, () => tenantry.db().insertInto('jobs').values({ company: `Company ${i}`, title: 'Engineer', start_date: '2020-01-01' }).execute())
    // The next request opens a new handle, used by the data API alone.
    tenantry.router.invalidate(tenant.id)
    const { token } = await tenantry.tokens.create(slug, { readOnly: true, name: 'reader' })
    readers.push({ slug, client: new Client(server.url, { authorization: `Bearer ${token}` }) })
  }
})
afterAll(async () => server?.stop())

/** The tenant databases this process has open (a file, its -wal and its -shm count as one). */
const openTenantFiles = () => [...new Set(openFilesUnder(join(server.home, 'tenants')).map((file) => file.replace(/-(wal|shm)$/, '')))]

describe.runIf(process.platform === 'linux')('data API reads across more tenants than the handle budget', () => {
  it(`keep at most ${BUDGET} tenant files open, every read answered`, async () => {
    for (let round = 0; round < 3; round++) {
      for (const { slug, client } of readers) {
        const reply = await client.get(`/api/t/${slug}/data/jobs/1`)
        expect(reply.status, slug).toBe(200)
        expect(reply.body.company).toBe(`Company ${slug.slice('reader_'.length)}`)
      }
    }
    expect(server.tenantry.router.stats()).toMatchObject({ openHandles: BUDGET })
    expect(openTenantFiles().length).toBeLessThanOrEqual(BUDGET)
  })
})
