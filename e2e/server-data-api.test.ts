import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { signUp, startTestServer, type Client, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../tenantry.config.ts', import.meta.url))

let server: TestServer
let user: Client
let base: string
beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG })
  user = await signUp(server, 'data@example.com')
  const slug = (await user.get('/api/me')).body.activeTenant.slug
  base = `/api/t/${slug}/data`
})
afterAll(async () => server?.stop())

const job = (company: string, start_date: string, extra: Record<string, unknown> = {}) => ({ company, title: 'Engineer', start_date, ...extra })

describe('data API', () => {
  it('creates, reads, updates and deletes one row', async ({ expect }) => {
    const created = await user.post(`${base}/jobs`, job('Initech', '2019-02-01', { location: 'Austin' }))
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ id: 1, company: 'Initech', location: 'Austin', end_date: null })
    expect((await user.get(`${base}/jobs/1`)).body.company).toBe('Initech')
    const patched = await user.patch(`${base}/jobs/1`, { title: 'CTO', end_date: '2021-01-01' })
    expect(patched.status).toBe(200)
    expect(patched.body).toMatchObject({ title: 'CTO', end_date: '2021-01-01', company: 'Initech' })
    const hl = await user.post(`${base}/highlights`, { job_id: 1, content: 'Shipped 100%_done', hidden: true })
    expect(hl.status).toBe(201)
    expect(hl.body).toMatchObject({ job_id: 1, hidden: true, position: 0 })
    expect((await user.delete(`${base}/jobs/1`)).status).toBe(204)
    expect((await user.get(`${base}/jobs/1`)).status).toBe(404)
    expect((await user.delete(`${base}/jobs/1`)).status).toBe(404)
    // jobs' primary key is an integer: a malformed id is a bad request, not a missing row.
    expect((await user.get(`${base}/jobs/abc`)).body.error.code).toBe('VALIDATION_FAILED')
  })

  it('lists with filters, ranges, order, cursor pages, search and count; bulk create and delete', async ({ expect }) => {
    const companies = ['Acme', 'Globex', 'Acme', 'Umbrella', 'Hooli', 'Acme', 'Pied Piper', 'Stark 50%']
    const items = companies.map((c, i) => job(c, `20${10 + i}-01-01`, i % 2 ? { location: null } : { location: 'Berlin' }))
    const bulk = await user.post(`${base}/jobs/bulk`, { items })
    expect(bulk.status).toBe(201)
    expect(bulk.body.items).toHaveLength(8)
    const ids = bulk.body.items.map((r: { id: number }) => r.id)

    const acme = await user.get(`${base}/jobs?company=Acme`)
    expect(acme.body.items.map((r: { company: string }) => r.company)).toEqual(['Acme', 'Acme', 'Acme'])
    // Default order of jobs is -start_date.
    expect(acme.body.items.map((r: { start_date: string }) => r.start_date)).toEqual(['2015-01-01', '2012-01-01', '2010-01-01'])
    const range = await user.get(`${base}/jobs?start_date[gte]=2012-01-01&start_date[lt]=2014-01-01&order=start_date`)
    expect(range.body.items.map((r: { company: string }) => r.company)).toEqual(['Acme', 'Umbrella'])
    expect((await user.get(`${base}/jobs?location=null`)).body.items).toHaveLength(4)

    // Cursor pages over a nullable order column: every row exactly once.
    const seen: number[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const page: { body: { items: Array<{ id: number }>; nextCursor: string | null } } = await user.get(
        `${base}/jobs?order=-location&limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      )
      seen.push(...page.body.items.map((r) => r.id))
      cursor = page.body.nextCursor
      pages++
    } while (cursor)
    expect(pages).toBe(3)
    expect([...seen].sort((a, b) => a - b)).toEqual(ids)
    const bad = await user.get(`${base}/jobs?order=company&cursor=${encodeURIComponent('not-a-cursor')}`)
    expect(bad.body.error.code).toBe('VALIDATION_FAILED')

    // Search escapes LIKE wildcards: "50%" matches literally, "%" alone matches only rows containing it.
    expect((await user.get(`${base}/jobs?q=${encodeURIComponent('50%')}`)).body.items.map((r: { company: string }) => r.company)).toEqual(['Stark 50%'])
    expect((await user.get(`${base}/jobs?q=${encodeURIComponent('%')}`)).body.items).toHaveLength(1)
    expect((await user.get(`${base}/jobs?q=acm`)).body.items).toHaveLength(3)
    expect((await user.get(`${base}/jobs/count?company=Acme`)).body).toEqual({ count: 3 })
    expect((await user.get(`${base}/jobs/count`)).body).toEqual({ count: 8 })

    const removed = await user.post(`${base}/jobs/bulk-delete`, { ids: ids.slice(0, 5) })
    expect(removed.body).toEqual({ deleted: 5 })
    expect((await user.get(`${base}/jobs/count`)).body).toEqual({ count: 3 })
  })

  it('rejects bad input with VALIDATION_FAILED and changes nothing', async ({ expect }) => {
    const before = (await user.get(`${base}/jobs/count`)).body.count
    const cases: Array<[string, string, unknown]> = [
      ['POST', `${base}/jobs`, { company: 'X', title: 'Y' }],
      ['POST', `${base}/jobs`, { ...job('X', '2020-01-01'), salary: 1 }],
      ['POST', `${base}/jobs`, { ...job('X', '2020-01-01'), id: 99 }],
      ['POST', `${base}/jobs`, job('X', 'yesterday')],
      ['POST', `${base}/jobs`, { ...job('X', '2020-01-01'), company: 'x'.repeat(201) }],
      ['POST', `${base}/jobs/bulk`, { items: [job('OK', '2020-01-01'), { company: 1 }] }],
      ['PATCH', `${base}/jobs/${1}`, {}],
      ['GET', `${base}/jobs?salary=1`, undefined],
      ['GET', `${base}/jobs?description=x`, undefined],
      ['GET', `${base}/jobs?order=description`, undefined],
      ['GET', `${base}/jobs?limit=1000`, undefined],
      ['GET', `${base}/jobs?company[like]=x`, undefined],
    ]
    for (const [method, path, body] of cases) {
      const reply = await user.request(method, path, body)
      expect(reply.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400)
      expect(reply.body.error.code).toBe('VALIDATION_FAILED')
    }
    // Regression: a row the database refuses (a highlight of a job that does not exist) answered 500.
    const orphan = await user.post(`${base}/highlights`, { job_id: 999_999, content: 'x' })
    expect(orphan.status).toBe(409)
    expect(orphan.body.error.code).toBe('CONSTRAINT_VIOLATION')
    const malformed = await user.request('POST', `${base}/jobs`, '{"company": ')
    expect(malformed.status).toBe(400)
    expect((await user.get(`${base}/jobs/count`)).body.count).toBe(before)
    expect((await user.get(`${base}/nonsense`)).status).toBe(404)
  })

  it('answers 413 PAYLOAD_TOO_LARGE for a body over the limit', async ({ expect }) => {
    const reply = await user.post(`${base}/jobs`, job('Big', '2020-01-01', { description: 'x'.repeat(1024 * 1024 + 10) }))
    expect(reply.status).toBe(413)
    expect(reply.body).toEqual({ error: { code: 'PAYLOAD_TOO_LARGE', message: 'The request body is too large' } })
  })
})
