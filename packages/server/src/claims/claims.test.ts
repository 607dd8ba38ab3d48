import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { ClaimStore, type TenantryConfig } from 'tenantry'
import { createTestDatabase, dropAppRoles, findPostgres, type TestDatabase } from 'tenantry/testing'
import { Client, signUp, startTestServer, type TestServer } from '@tenantry/server/testing'
import repoConfig from '../../../../tenantry.config.js'

// Issue 10, claim on first sign-in: a browser's local data (the CV builder's jobs and their
// highlights) staged in chunks and committed in one transaction of the tenant's database, with
// highlights.job_id remapped from local to server ids, once, whatever is retried.

/** Small caps, so that the refusals are cheap to reach. */
const CLAIMS = { maxRowsPerChunk: 1000, maxRowsPerClaim: 12_000, maxChunkBytes: 512 * 1024 }

type Rows = Record<string, Array<{ localId: number | string; values: Record<string, unknown> }>>

const job = (i: number, extra: Record<string, unknown> = {}) => ({ localId: i, values: { company: `Company ${i}`, title: 'Engineer', start_date: '2020-01-01', ...extra } })
const highlight = (i: number, jobLocalId: number) => ({ localId: i, values: { job_id: jobLocalId, content: `Did ${i}` } })

interface Setup {
  server: TestServer
  /** Alice, signed in, in her personal tenant (active). */
  alice: Client
  slug: string
  /** Bob, signed in, in his own tenant. */
  bob: Client
  /** Runs DDL on Alice's tenant as its owner would (`{table}` stands for a table's qualified name). */
  ddl(statement: (table: (name: string) => string) => string): Promise<void>
}

function claimSuite(title: string, start: () => Promise<Setup>, stop: () => Promise<void>) {
  describe(title, () => {
    let s: Setup
    let n = 0
    /** A fresh claim id per test. */
    const newClaim = () => `claim-${process.pid}-${Date.now()}-${n++}`
    const stage = (client: Client, claimId: string, seq: number, rows: Rows, prefix = '/api/tenant') =>
      client.request('PUT', `${prefix}/claims/${claimId}/chunks/${seq}`, { rows })
    const commit = (client: Client, claimId: string, chunks: number, prefix = '/api/tenant') => client.post(`${prefix}/claims/${claimId}/commit`, { chunks })
    const count = async (collection: string) => (await s.alice.get(`/api/tenant/data/${collection}/count`)).body.count as number

    beforeAll(async () => {
      s = await start()
    }, 120_000)
    afterAll(stop)

    it('commits chunks as one, remapping highlights to their jobs’ server ids, appended to existing data', async ({ expect }) => {
      // Data already there: the claim appends, and its local ids are not the server's.
      expect((await s.alice.post('/api/tenant/data/jobs', { company: 'Existing', title: 'CTO', start_date: '2019-01-01' })).status).toBe(201)
      const claimId = newClaim()
      expect((await stage(s.alice, claimId, 1, { highlights: [highlight(1, 2), highlight(2, 1), highlight(3, 2)] })).status).toBe(200)
      const first = await stage(s.alice, claimId, 0, { jobs: [job(1), job(2, { location: 'Zürich' })] })
      expect(first.status, first.text).toBe(200)
      expect(first.body).toEqual({ claimId, seq: 0, rows: 2, totalRows: 5 })
      expect((await s.alice.get(`/api/tenant/claims/${claimId}`)).body).toEqual({ claimId, status: 'pending', chunks: [0, 1] })

      const reply = await commit(s.alice, claimId, 2)
      expect(reply.status, reply.text).toBe(200)
      expect(reply.body).toMatchObject({ claimId, status: 'committed', counts: { jobs: 2, highlights: 3 } })
      const jobIds = reply.body.ids.jobs as Record<string, number>
      expect(Object.keys(jobIds).sort()).toEqual(['1', '2'])
      expect(new Set(Object.values(jobIds)).size).toBe(2)
      expect(Object.values(jobIds)).not.toContain(1)

      const highlights = (await s.alice.get('/api/tenant/data/highlights?limit=100&order=id')).body.items as Array<{ id: number; job_id: number; content: string }>
      expect(highlights.map((h) => [h.content, h.job_id])).toEqual([
        ['Did 1', jobIds['2']],
        ['Did 2', jobIds['1']],
        ['Did 3', jobIds['2']],
      ])
      expect(reply.body.ids.highlights).toEqual(Object.fromEntries(highlights.map((h, i) => [String(i + 1), h.id])))
      const zurich = (await s.alice.get(`/api/tenant/data/jobs/${jobIds['2']}`)).body
      expect(zurich).toMatchObject({ company: 'Company 2', location: 'Zürich' })

      // A retry answers the same and writes nothing; so does the status.
      const before = await count('jobs')
      const again = await commit(s.alice, claimId, 2)
      expect(again.status).toBe(200)
      expect(again.body).toEqual(reply.body)
      expect((await s.alice.get(`/api/tenant/claims/${claimId}`)).body).toEqual(reply.body)
      expect(await count('jobs')).toBe(before)
      expect(await count('highlights')).toBe(3)
      // Staged chunks are gone once committed.
      const staged = await s.server.tenantry.catalog.db.selectFrom('claim_chunks').select('seq').where('claim_id', '=', claimId).execute()
      expect(staged).toEqual([])
      const audit = await s.server.tenantry.catalog.auditLog()
      expect(audit.filter((e) => e.action === 'claim.committed' && (e.details as { claimId: string }).claimId === claimId)).toHaveLength(1)
      // The claim gave its rows keys itself (after the largest on SQLite, reserved from the
      // sequence on Postgres): the next ordinary create still gets a free one.
      const after = await s.alice.post('/api/tenant/data/jobs', { company: 'After', title: 'CTO', start_date: '2024-01-01' })
      expect(after.status, after.text).toBe(201)
      expect(Object.values(jobIds)).not.toContain(after.body.id)
    })

    it('writes nothing when the last chunk’s row fails in the database, and commits whole once it is fixed', async ({ expect }) => {
      // A rule the declaration cannot tell: company names unique, checked only by the database.
      await s.ddl((t) => `create unique index jobs_company_unique on ${t('jobs')} (company)`)
      try {
        const before = { jobs: await count('jobs'), highlights: await count('highlights') }
        const claimId = newClaim()
        expect((await stage(s.alice, claimId, 0, { jobs: [job(10), job(11)], highlights: [highlight(1, 10)] })).status).toBe(200)
        expect((await stage(s.alice, claimId, 1, { jobs: [job(12, { company: 'Company 10' })] })).status).toBe(200)
        const failed = await commit(s.alice, claimId, 2)
        expect(failed.status, failed.text).toBe(409)
        expect(failed.body.error.code).toBe('CONSTRAINT_VIOLATION')
        expect({ jobs: await count('jobs'), highlights: await count('highlights') }).toEqual(before)
        expect((await s.alice.get(`/api/tenant/claims/${claimId}`)).body).toEqual({ claimId, status: 'pending', chunks: [0, 1] })
        // The chunk sent again (same seq) replaces the bad one.
        expect((await stage(s.alice, claimId, 1, { jobs: [job(12, { company: 'Company 12 unique' })] })).status).toBe(200)
        const reply = await commit(s.alice, claimId, 2)
        expect(reply.status, reply.text).toBe(200)
        expect(reply.body.counts).toEqual({ jobs: 3, highlights: 1 })
        expect({ jobs: await count('jobs'), highlights: await count('highlights') }).toEqual({ jobs: before.jobs + 3, highlights: before.highlights + 1 })
      } finally {
        await s.ddl((t) => `drop index ${t('jobs_company_unique')}`)
      }
    })

    it('refuses a reference to a local id not in the claim (400 naming it) and a commit with missing chunks (409 listing them)', async ({ expect }) => {
      const before = await count('highlights')
      const claimId = newClaim()
      await stage(s.alice, claimId, 0, { jobs: [job(1)] })
      await stage(s.alice, claimId, 2, { highlights: [highlight(7, 1), highlight(8, 99)] })
      const incomplete = await commit(s.alice, claimId, 4)
      expect(incomplete.status).toBe(409)
      expect(incomplete.body.error).toEqual({ code: 'CLAIM_INCOMPLETE', message: 'Chunks not staged: 1, 3' })
      expect((await commit(s.alice, claimId, 2)).body.error.code).toBe('VALIDATION_FAILED')
      await stage(s.alice, claimId, 1, { jobs: [job(2)] })
      const dangling = await commit(s.alice, claimId, 3)
      expect(dangling.status).toBe(400)
      expect(dangling.body.error.code).toBe('CLAIM_INVALID_REFERENCE')
      expect(dangling.body.error.message).toContain('highlights[localId 8].job_id')
      expect(dangling.body.error.message).toContain('jobs 99')
      expect(await count('highlights')).toBe(before)
    })

    it('validates each row at once: 400 naming collection, local id and field; nothing of the chunk staged', async ({ expect }) => {
      const claimId = newClaim()
      const bad = await stage(s.alice, claimId, 0, { jobs: [job(1), { localId: 'x-2', values: { company: 'A', start_date: '2020-01-01' } }] })
      expect(bad.status).toBe(400)
      expect(bad.body.error.code).toBe('VALIDATION_FAILED')
      expect(bad.body.error.message).toMatch(/^body\.rows\.jobs\[localId "x-2"\]\.title: /)
      const unknown = await stage(s.alice, claimId, 0, { jobs: [{ localId: 3, values: { ...job(3).values, salary: 1 } }] })
      expect(unknown.status).toBe(400)
      expect(unknown.body.error.message).toContain('[localId 3].salary')
      expect((await stage(s.alice, claimId, 0, { notes: [] } as Rows)).status).toBe(400)
      expect((await s.alice.get(`/api/tenant/claims/${claimId}`)).status).toBe(404)
      for (const id of ['short', 'has space in it', 'x'.repeat(129)]) {
        expect((await stage(s.alice, encodeURIComponent(id), 0, { jobs: [job(1)] })).status, id).toBe(400)
      }
      expect((await s.alice.request('PUT', `/api/tenant/claims/${newClaim()}/chunks/-1`, { rows: {} })).status).toBe(400)
    })

    it('another user, another token or another tenant cannot see, stage into or commit the claim (404); a read-only token is refused (403)', async ({ expect }) => {
      const claimId = newClaim()
      await stage(s.alice, claimId, 0, { jobs: [job(1)] })
      // Bob, in his own tenant (where the id names nothing of his) and in Alice's by name.
      expect((await s.bob.get(`/api/tenant/claims/${claimId}`)).status).toBe(404)
      expect((await commit(s.bob, claimId, 1)).status).toBe(404)
      expect((await s.bob.get(`/api/t/${s.slug}/claims/${claimId}`)).status).toBe(404)
      expect((await commit(s.bob, claimId, 1, `/api/t/${s.slug}`)).status).toBe(404)
      expect((await stage(s.bob, claimId, 1, { jobs: [job(2)] }, `/api/t/${s.slug}`)).status).toBe(404)
      // A writable token of Alice's tenant is someone else too.
      const { token } = await s.server.tenantry.tokens.create(s.slug, { readOnly: false, createdBy: 'test' })
      const integration = new Client(s.server.url, { authorization: `Bearer ${token}` })
      expect((await integration.get(`/api/tenant/claims/${claimId}`)).status).toBe(404)
      expect((await stage(integration, claimId, 1, { jobs: [job(2)] })).status).toBe(404)
      expect((await commit(integration, claimId, 1)).status).toBe(404)
      const { token: readOnly } = await s.server.tenantry.tokens.create(s.slug, { readOnly: true, createdBy: 'test' })
      const reader = new Client(s.server.url, { authorization: `Bearer ${readOnly}` })
      const refused = await stage(reader, newClaim(), 0, { jobs: [job(1)] })
      expect(refused.status).toBe(403)
      expect(refused.body.error.code).toBe('READ_ONLY')
      expect((await commit(reader, claimId, 1)).body.error.code).toBe('READ_ONLY')
      // Alice's claim is intact, and once committed, its result stays hers.
      const mine = await commit(s.alice, claimId, 1)
      expect(mine.status).toBe(200)
      expect((await s.bob.get(`/api/t/${s.slug}/claims/${claimId}`)).status).toBe(404)
      expect((await integration.get(`/api/tenant/claims/${claimId}`)).status).toBe(404)
      expect((await commit(integration, claimId, 1)).status).toBe(404)
    })

    it('refuses chunks and claims over their caps with 413 and a code', async ({ expect }) => {
      const claimId = newClaim()
      const rows = (from: number, length: number) => Array.from({ length }, (_, i) => job(from + i))
      const tooMany = await stage(s.alice, claimId, 0, { jobs: rows(0, CLAIMS.maxRowsPerChunk + 1) })
      expect(tooMany.status).toBe(413)
      expect(tooMany.body.error.code).toBe('CLAIM_TOO_LARGE')
      const big = await stage(s.alice, claimId, 0, { jobs: Array.from({ length: 60 }, (_, i) => job(i, { description: 'x'.repeat(10_000) })) })
      expect(big.status).toBe(413)
      expect(big.body.error.code).toBe('PAYLOAD_TOO_LARGE')
      for (let seq = 0; seq < CLAIMS.maxRowsPerClaim / CLAIMS.maxRowsPerChunk; seq++) {
        expect((await stage(s.alice, claimId, seq, { jobs: rows(seq * 1000, 1000) })).status).toBe(200)
      }
      const over = await stage(s.alice, claimId, 12, { jobs: rows(12_000, 1) })
      expect(over.status).toBe(413)
      expect(over.body.error.code).toBe('CLAIM_TOO_LARGE')
      // Replacing a chunk counts it once.
      expect((await stage(s.alice, claimId, 11, { jobs: rows(11_000, 1000) })).status).toBe(200)
    })

    it('deletes chunks left uncommitted past abandonAfterMs, a bounded batch at a time', async ({ expect }) => {
      const claimId = newClaim()
      for (const seq of [0, 1, 2]) await stage(s.alice, claimId, seq, { jobs: [job(seq)] })
      const catalog = s.server.tenantry.catalog
      const old = new Date(Date.now() - 25 * 60 * 60 * 1000).toISOString()
      await catalog.db.updateTable('claim_chunks').set({ created_at: old }).where('claim_id', '=', claimId).where('seq', 'in', [0, 1]).execute()
      const store = new ClaimStore(catalog)
      expect(await store.pruneAbandoned(24 * 60 * 60 * 1000, 1)).toBe(1)
      expect(await store.pruneAbandoned(24 * 60 * 60 * 1000, 10)).toBe(1)
      expect(await store.pruneAbandoned(24 * 60 * 60 * 1000, 10)).toBe(0)
      expect((await s.alice.get(`/api/tenant/claims/${claimId}`)).body).toEqual({ claimId, status: 'pending', chunks: [2] })
      const incomplete = await commit(s.alice, claimId, 3)
      expect(incomplete.body.error).toEqual({ code: 'CLAIM_INCOMPLETE', message: 'Chunks not staged: 0, 1' })
    })

    it('commits 10,000 rows sent in chunks as one claim', async ({ expect }) => {
      const before = { jobs: await count('jobs'), highlights: await count('highlights') }
      const claimId = newClaim()
      // 2,000 jobs, 8,000 highlights, four per job, spread over ten chunks of 1,000 rows.
      const all: Array<['jobs' | 'highlights', Rows[string][number]]> = []
      for (let j = 1; j <= 2000; j++) all.push(['jobs', job(j)])
      for (let h = 1; h <= 8000; h++) all.push(['highlights', highlight(h, ((h - 1) % 2000) + 1)])
      for (let seq = 0; seq < 10; seq++) {
        const rows: Rows = {}
        for (const [name, row] of all.slice(seq * 1000, (seq + 1) * 1000)) (rows[name] ??= []).push(row)
        const reply = await stage(s.alice, claimId, seq, rows)
        expect(reply.status, reply.text).toBe(200)
      }
      const reply = await commit(s.alice, claimId, 10)
      expect(reply.status, reply.text).toBe(200)
      expect(reply.body.counts).toEqual({ jobs: 2000, highlights: 8000 })
      expect({ jobs: await count('jobs'), highlights: await count('highlights') }).toEqual({ jobs: before.jobs + 2000, highlights: before.highlights + 8000 })
      // Spot check: highlight 2001 belongs to local job 1.
      const h = (await s.alice.get(`/api/tenant/data/highlights/${reply.body.ids.highlights['2001']}`)).body
      expect(h.job_id).toBe(reply.body.ids.jobs['1'])
    }, 120_000)
  })
}

async function setUp(server: TestServer, ddl?: (slug: string) => Setup['ddl']): Promise<Setup> {
  const alice = await signUp(server, `alice-${process.pid}@example.com`)
  const bob = await signUp(server, `bob-${process.pid}@example.com`)
  const slug = (await alice.get('/api/me')).body.activeTenant.slug as string
  // SQLite: the tenant's own handle may change its schema.
  const inProcess: Setup['ddl'] = (statement) => server.tenantry.withTenant(slug, async () => void (await sql.raw(statement((n) => n)).execute(server.tenantry.db())))
  return { server, alice, bob, slug, ddl: ddl?.(slug) ?? inProcess }
}

/** The CV builder's collections, with highlights.job_id referencing jobs (what the remap follows). */
const repoCollections = (repoConfig.server as { collections: Record<string, { columns: Record<string, object> }> }).collections
const collections = {
  ...repoCollections,
  highlights: { ...repoCollections.highlights!, columns: { ...repoCollections.highlights!.columns, job_id: { ...repoCollections.highlights!.columns.job_id, references: 'jobs' } } },
}

const configWith = (extra: Partial<TenantryConfig> = {}): TenantryConfig => ({
  ...repoConfig,
  ...extra,
  server: { ...(repoConfig.server as Record<string, unknown>), collections, claims: CLAIMS },
})

let sqliteServer: TestServer | undefined
claimSuite(
  'claims on SQLite',
  async () => setUp((sqliteServer = await startTestServer({ config: configWith() }))),
  async () => sqliteServer?.stop(),
)

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping claims on Postgres: ${postgres.skip}`)
let pgServer: TestServer | undefined
let data: TestDatabase | undefined
const dataSourceId = `claims_${process.pid}`
if ('url' in postgres) {
  const serverUrl = postgres.url
  claimSuite(
    'claims on Postgres (schema isolation)',
    async () => {
      data = await createTestDatabase(serverUrl, 'tenantry_claims')
      pgServer = await startTestServer({
        config: configWith({
          dataSources: [
            { id: 'local', engine: 'sqlite' },
            { id: dataSourceId, engine: 'postgres', url: data.url, isolations: ['schema'] },
          ],
          defaults: { isolation: 'schema', dataSource: dataSourceId },
        }),
      })
      // Postgres: the app's role may not change the schema; the database's owner does.
      const owner = (slug: string): Setup['ddl'] => async (statement) => {
        const tenant = await pgServer!.tenantry.router.resolve(slug)
        const client = new pg.Client({ connectionString: data!.url })
        await client.connect()
        try {
          await client.query(statement((name) => `"t_${tenant.id}"."${name}"`))
        } finally {
          await client.end()
        }
      }
      const setup = await setUp(pgServer, owner)
      const tenant = await pgServer.tenantry.router.resolve(setup.slug)
      if (tenant.placement.dataSourceId !== dataSourceId) throw new Error(`the personal tenant landed on ${tenant.placement.dataSourceId}`)
      return setup
    },
    async () => {
      for (const t of (await pgServer?.tenantry.catalog.db.selectFrom('tenants').select('slug').execute()) ?? []) {
        await pgServer?.tenantry.deleteTenant(t.slug, { purge: true }).catch(() => {})
      }
      await pgServer?.stop()
      await dropAppRoles(serverUrl, [dataSourceId])
      await data?.drop()
    },
  )
}
