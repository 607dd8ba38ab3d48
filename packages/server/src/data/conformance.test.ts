import { afterAll, beforeAll, describe, it } from 'vitest'
import { isTenantryError, type Tenantry, type TenantryConfig } from 'tenantry'
import { createTestDatabase, dropAppRoles, findPostgres, type TestDatabase } from 'tenantry/testing'
import { startTestServer, type TestServer } from '@tenantry/server/testing'
import { createClient, remoteBackend, TenantryClientError, type CollectionClient } from '@tenantry/client'
import { runConformance, type ConformanceClient, type Observation } from '@tenantry/client/testing'
import repoConfig from '../../../../tenantry.config.js'
import { collections } from '../../../../examples/cv-builder/collections.js'
import { statusOf } from '../errors.js'

/**
 * The browser SDK's conformance suite (`@tenantry/client/testing`), run in Node against
 * `tenantry.collection(name)` in-process and against the data API over HTTP (`remoteBackend`):
 * one implementation (core's `CollectionRepository`) behind both, so every step must observe
 * the same rows, the same codes and the same statuses, on SQLite and on Postgres.
 */

/** `tenantry.collection(name)` inside `withTenant(slug)`, as the suite's client; core's errors as the client's, with the server's status. */
function inProcessClient(tenantry: Tenantry, slug: string): ConformanceClient {
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await tenantry.withTenant(slug, fn)
    } catch (error) {
      if (isTenantryError(error)) throw new TenantryClientError(error.code, error.message, statusOf(error.code), { cause: error })
      throw error
    }
  }
  return {
    collection(name): CollectionClient<any> {
      const c = () => tenantry.collection(name)
      // The suite compares what it observes; the rows' types are the declaration's, checked by the schemas.
      const any = <T>(p: Promise<T>): Promise<any> => p
      return {
        list: (params = {}) => any(call(() => c().findMany(params as never))),
        count: (params = {}) => call(() => c().count(params as never)),
        get: (id) => any(call(() => c().get(id as string | number))),
        create: (values) => any(call(() => c().create(values as never))),
        update: (id, changes) => any(call(() => c().update(id as string | number, changes as never))),
        delete: (id) => call(() => c().delete(id as string | number)),
        bulkCreate: (items) => any(call(() => c().bulkCreate(items as never))),
        bulkDelete: (ids) => call(() => c().bulkDelete(ids as Array<string | number>)),
      }
    },
  }
}

async function overHttp(server: TestServer, slug: string): Promise<Observation[]> {
  const { token } = await server.tenantry.tokens.create(slug, { readOnly: false, createdBy: 'conformance' })
  const client = createClient({ backend: remoteBackend({ collections, baseUrl: server.url, tenant: slug, token }) })
  try {
    return await runConformance(client)
  } finally {
    await client.close()
  }
}

/** Postgres' `CURRENT_TIMESTAMP` text has fractions and a zone, so it differs between runs (SQLite's is shown as `<timestamp>`). */
function withoutTimes(observations: Observation[]): Observation[] {
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip)
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === 'created_at' || k === 'updated_at' ? '<time>' : strip(v)]))
    }
    return value
  }
  return observations.map((o) => ({ step: o.step, value: strip(o.value) }))
}

/** Both runs, step by step; and a few values the suite is about, so two faces agreeing on a wrong answer still fail. */
function expectSameObservations(expect: any, http: Observation[], inProcess: Observation[]): void {
  expect(http.length).toBeGreaterThan(50)
  expect(inProcess.map((o) => o.step)).toEqual(http.map((o) => o.step))
  const a = withoutTimes(http)
  const b = withoutTimes(inProcess)
  a.forEach((o, i) => expect(b[i]!.value, o.step).toEqual(o.value))
  const value = (step: string) => b.find((o) => o.step === step)!.value
  expect(value('create')).toMatchObject({ id: 1, company: 'Initech', location: 'Austin' })
  for (const step of ['get missing', 'update missing', 'delete missing', 'get deleted']) expect(value(step), step).toEqual({ error: 'NOT_FOUND', status: 404 })
  for (const step of ['create: required missing', 'create: unknown field', 'filter: unknown operator', 'search: too long', 'list: limit over max']) {
    expect(value(step), step).toEqual({ error: 'VALIDATION_FAILED', status: 400 })
  }
  expect(value('count after refused bulks')).toBe(value('count after refused writes'))
  expect(value('search ÄRZTE')).toEqual(value('search ärzte'))
  expect(value('count at the end')).toBe((value('count after bulk') as number) - 3)
  expect(value('highlight of a missing job')).toEqual({ error: 'CONSTRAINT_VIOLATION', status: 409 })
  expect([value('highlights of the first job'), value('its highlights went with it'), value('highlights at the end')]).toEqual([2, 0, 0])
}

describe('conformance: tenantry.collection in-process = the data API over HTTP, on SQLite', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startTestServer({ config: repoConfig as TenantryConfig })
    await server.tenantry.createTenant({ slug: 'http_sqlite' })
    await server.tenantry.createTenant({ slug: 'inproc_sqlite' })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('observes the same thing at every step', async ({ expect }) => {
    const http = await overHttp(server, 'http_sqlite')
    const inProcess = await runConformance(inProcessClient(server.tenantry, 'inproc_sqlite'))
    expectSameObservations(expect, http, inProcess)
  })

  it('findById, paginate and search, which the suite does not use, agree with get, list and q', async ({ expect }) => {
    const { tenantry } = server
    await tenantry.withTenant('inproc_sqlite', async () => {
      const jobs = tenantry.collection<{ id: number; company: string }>('jobs')
      expect(await jobs.findById(999_999)).toBeUndefined()
      const all = await jobs.findMany({ orderBy: 'id', limit: 100 })
      expect(await jobs.findById(all.items[0]!.id)).toEqual(all.items[0])
      const pages: number[][] = []
      for await (const page of jobs.paginate({ orderBy: 'id', limit: 3 })) pages.push(page.map((r) => r.id))
      expect(pages.flat()).toEqual(all.items.map((r) => r.id))
      expect(pages.every((p) => p.length <= 3)).toBe(true)
      expect(await jobs.search('ärzte', { orderBy: 'id' })).toEqual(await jobs.findMany({ q: 'ÄRZTE', order: 'id' }))
      await expect(jobs.findMany({ limit: 0 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('querystring.limit') })
      await expect(jobs.create({ company: 'x' } as never)).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('body.title') })
      await expect(Promise.resolve().then(() => tenantry.collection('nope'))).rejects.toMatchObject({ code: 'NOT_FOUND' })
    })
    // Outside a tenant: fails closed.
    await expect(tenantry.collection('jobs').findMany()).rejects.toMatchObject({ code: 'NO_TENANT' })
  })
})

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping the collection conformance on Postgres: ${postgres.skip}`)

describe.skipIf('skip' in postgres)('conformance: tenantry.collection in-process = the data API over HTTP, on Postgres (schema isolation)', () => {
  const dataSourceId = `conform_${process.pid}`
  let data: TestDatabase
  let server: TestServer
  beforeAll(async () => {
    if (!('url' in postgres)) return
    data = await createTestDatabase(postgres.url, 'tenantry_conformance')
    server = await startTestServer({
      config: {
        ...(repoConfig as TenantryConfig),
        dataSources: [
          { id: 'local', engine: 'sqlite' },
          { id: dataSourceId, engine: 'postgres', url: data.url, isolations: ['schema'] },
        ],
      } as TenantryConfig,
    })
    for (const slug of ['http_pg', 'inproc_pg']) await server.tenantry.createTenant({ slug, isolation: 'schema', dataSource: dataSourceId })
  })
  afterAll(async () => {
    for (const slug of ['http_pg', 'inproc_pg']) await server?.tenantry.deleteTenant(slug, { purge: true }).catch(() => {})
    await server?.stop()
    await data?.drop()
    if ('url' in postgres) await dropAppRoles(postgres.url, [dataSourceId])
  })

  it('observes the same thing at every step', async ({ expect }) => {
    const http = await overHttp(server, 'http_pg')
    const inProcess = await runConformance(inProcessClient(server.tenantry, 'inproc_pg'))
    expectSameObservations(expect, http, inProcess)
  })
})
