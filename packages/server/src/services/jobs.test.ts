import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import type { TenantryConfig } from 'tenantry'
import { findRedis } from 'tenantry/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Client, signUp, startTestServer, verifyEmail, type TestServer } from '../testing/index.js'

// Issue 12: a tenant's jobs over HTTP (counts, dead letters: list, retry, discard) for its owners
// and admins, on BullMQ with the real Redis (TENANTRY_TEST_REDIS_URL; under CI a missing Redis
// fails). A job id of another tenant is 404; a server without services.jobs says so.

const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))
const repoConfig = (await import(REPO_CONFIG)).default as TenantryConfig
const redis = await findRedis()
if ('skip' in redis) console.warn(`skipping the jobs routes: ${redis.skip}`)
const prefix = `tenantry-jobs-http-${process.pid}-${Math.random().toString(36).slice(2, 8)}`

describe.skipIf('skip' in redis)('tenant jobs over HTTP', () => {
  let server: TestServer
  let plain: TestServer
  let owner: Client
  let member: Client
  let stranger: Client
  let raw: Redis

  /** Enqueues a job that always fails in the tenant, and runs the worker until it is a dead letter; its id. */
  async function deadLetter(slug: string, n: number): Promise<string> {
    const { tenantry } = server
    const id = await tenantry.withTenant(slug, () => tenantry.jobs.enqueue('doomed', { n }))
    for (let round = 0; round < 1_000; round++) {
      const dead = await tenantry.withTenant(slug, () => tenantry.jobs.deadLetters())
      if (dead.some((d) => d.id === id)) return id
      if ((await tenantry.jobs.runRound()) === 0) await new Promise((r) => setTimeout(r, 10))
    }
    throw new Error('the job never became a dead letter')
  }

  beforeAll(async () => {
    if (!('url' in redis)) return
    raw = new Redis(redis.url)
    server = await startTestServer({ config: { ...repoConfig, services: { jobs: { url: redis.url, prefix } } }, root: dirname(REPO_CONFIG) })
    server.tenantry.jobs.define('doomed', {
      schema: z.strictObject({ n: z.number().int() }),
      attempts: 1,
      handler: async ({ n }) => {
        throw new Error(`job ${n} failed`)
      },
    })
    owner = await signUp(server, 'owner@jobs.test')
    member = await signUp(server, 'member@jobs.test')
    stranger = await signUp(server, 'stranger@jobs.test')
    const acme = await owner.post('/api/auth/organization/create', { name: 'Acme', slug: 'acme' })
    expect(acme.status).toBe(200)
    expect((await stranger.post('/api/auth/organization/create', { name: 'Globex', slug: 'globex' })).status).toBe(200)
    const invite = await owner.post('/api/auth/organization/invite-member', { email: 'member@jobs.test', role: 'member', organizationId: acme.body.id })
    await verifyEmail(server, 'member@jobs.test')
    expect((await member.post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })).status).toBe(200)
  })
  afterAll(async () => {
    await server?.stop()
    await plain?.stop()
    if (raw) {
      const left = await raw.keys(`${prefix}*`)
      if (left.length) await raw.del(...left)
      raw.disconnect()
    }
  })

  it('owners count jobs by state, list dead letters, retry and discard them', async () => {
    expect((await owner.get('/api/t/acme/jobs')).body).toEqual({ waiting: 0, delayed: 0, active: 0, failed: 0 })
    const first = await deadLetter('acme', 1)
    const second = await deadLetter('acme', 2)
    const counts = await owner.get('/api/tenant/jobs')
    expect([counts.status, counts.body]).toEqual([200, { waiting: 0, delayed: 0, active: 0, failed: 2 }])

    const listed = await owner.get('/api/t/acme/jobs/dead-letters')
    expect(listed.status).toBe(200)
    expect(listed.body.items).toEqual([
      { id: second, name: 'doomed', payload: { n: 2 }, attempts: 1, error: 'job 2 failed', failedAt: expect.any(String) },
      { id: first, name: 'doomed', payload: { n: 1 }, attempts: 1, error: 'job 1 failed', failedAt: expect.any(String) },
    ])
    expect((await owner.get('/api/t/acme/jobs/dead-letters?limit=1')).body.items.map((d: { id: string }) => d.id)).toEqual([second])

    // Retry: back in the queue, waiting for the worker.
    expect((await owner.post(`/api/t/acme/jobs/dead-letters/${first}/retry`, {})).status).toBe(204)
    expect((await owner.get('/api/t/acme/jobs')).body).toMatchObject({ waiting: 1, failed: 1 })
    const again = await owner.post(`/api/t/acme/jobs/dead-letters/${first}/retry`, {})
    expect([again.status, again.body.error.code]).toEqual([404, 'NOT_FOUND'])

    // Discard: gone for good.
    expect((await owner.delete(`/api/tenant/jobs/dead-letters/${second}`)).status).toBe(204)
    expect((await owner.delete(`/api/t/acme/jobs/dead-letters/${second}`)).status).toBe(404)
    expect((await owner.get('/api/t/acme/jobs/dead-letters')).body.items).toEqual([])
    expect((await owner.get('/api/t/acme/jobs')).body).toMatchObject({ waiting: 1, failed: 0 })
  })

  it("a job id of another tenant is 404 under this tenant's path, and the job stays", async () => {
    const acmeJob = await deadLetter('acme', 3)
    const globexJob = await deadLetter('globex', 4)
    // Globex's owner, naming Acme's job under Globex's path.
    expect((await stranger.post(`/api/t/globex/jobs/dead-letters/${acmeJob}/retry`, {})).status).toBe(404)
    expect((await stranger.delete(`/api/t/globex/jobs/dead-letters/${acmeJob}`)).status).toBe(404)
    // Acme's owner, naming Globex's job under Acme's path.
    expect((await owner.post(`/api/t/acme/jobs/dead-letters/${globexJob}/retry`, {})).status).toBe(404)
    expect((await owner.delete(`/api/t/acme/jobs/dead-letters/${globexJob}`)).status).toBe(404)
    // Under the other tenant's path itself: that tenant is not theirs.
    expect((await stranger.get('/api/t/acme/jobs')).status).toBe(404)
    expect((await stranger.delete(`/api/t/acme/jobs/dead-letters/${acmeJob}`)).status).toBe(404)
    expect((await stranger.get('/api/t/globex/jobs/dead-letters')).body.items.map((d: { id: string }) => d.id)).toEqual([globexJob])
    // (Acme's retried job of the test before failed again meanwhile: a dead letter too.)
    expect((await owner.get('/api/t/acme/jobs/dead-letters')).body.items.map((d: { id: string }) => d.id)).toContain(acmeJob)
  })

  it('members and tokens get 403, and nothing changes', async () => {
    const before = (await owner.get('/api/t/acme/jobs/dead-letters')).body.items as Array<{ id: string }>
    const dead = before[0]
    for (const reply of [
      await member.get('/api/t/acme/jobs'),
      await member.get('/api/t/acme/jobs/dead-letters'),
      await member.post(`/api/t/acme/jobs/dead-letters/${dead!.id}/retry`, {}),
      await member.delete(`/api/t/acme/jobs/dead-letters/${dead!.id}`),
    ]) expect([reply.status, reply.body.error.code]).toEqual([403, 'FORBIDDEN'])
    const { body } = await owner.post('/api/t/acme/tokens', { name: 'rw' })
    const asToken = new Client(server.url, { authorization: `Bearer ${body.token}` })
    expect((await asToken.get('/api/tenant/jobs')).status).toBe(403)
    expect((await asToken.delete(`/api/tenant/jobs/dead-letters/${dead!.id}`)).status).toBe(403)
    expect((await owner.get('/api/t/acme/jobs/dead-letters')).body.items).toEqual(before)
  })

  it('refuses bad ids and limits with 400', async () => {
    for (const path of ['/api/t/acme/jobs/dead-letters?limit=0', '/api/t/acme/jobs/dead-letters?limit=1001', '/api/t/acme/jobs/dead-letters?limit=x', '/api/t/acme/jobs?state=failed']) {
      const reply = await owner.get(path)
      expect([reply.status, reply.body.error.code], path).toEqual([400, 'VALIDATION_FAILED'])
    }
    for (const id of ['1', 'not-a-uuid', '..%2F..%2Fx']) {
      expect((await owner.post(`/api/t/acme/jobs/dead-letters/${id}/retry`, {})).status, id).toBe(400)
      expect((await owner.delete(`/api/t/acme/jobs/dead-letters/${id}`)).status, id).toBe(400)
    }
  })

  it('a server without services.jobs answers 403 JOBS_UNAVAILABLE', async () => {
    plain = await startTestServer({ config: REPO_CONFIG })
    const someone = await signUp(plain, 'owner@nojobs.test')
    expect((await someone.post('/api/auth/organization/create', { name: 'Acme', slug: 'acme' })).status).toBe(200)
    for (const reply of [
      await someone.get('/api/t/acme/jobs'),
      await someone.get('/api/t/acme/jobs/dead-letters'),
      await someone.post('/api/t/acme/jobs/dead-letters/8a6e0804-2bd0-4672-b79f-d97b0771b2fb/retry', {}),
      await someone.delete('/api/t/acme/jobs/dead-letters/8a6e0804-2bd0-4672-b79f-d97b0771b2fb'),
    ]) {
      expect([reply.status, reply.body.error.code]).toEqual([403, 'JOBS_UNAVAILABLE'])
      expect(reply.body.error.message).toContain('services.jobs')
    }
  })
})
