import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTenantry, loadConfig, type DeadLetter } from 'tenantry'
import { findRedis, tempDir } from 'tenantry/testing'
import { runCliCaptured, type CliRun } from '@tenantry/cli/testing'

// Issue 12: `tenantry jobs counts|dead-letters|retry|discard`, the built CLI run as a user
// would, against dead letters made by the app's own code on BullMQ with the real Redis
// (TENANTRY_TEST_REDIS_URL; under CI a missing Redis fails).

const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const redis = await findRedis()
if ('skip' in redis) console.warn(`skipping tenantry jobs: ${redis.skip}`)
const prefix = `tenantry-jobs-cli-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
const dir = tempDir('tenantry-cli-jobs-')
const home = join(dir.path, 'home')
/** An app's config with jobs, and one without (written by the test: the URL is the test Redis). */
const withJobs = join(dir.path, 'with-jobs', 'tenantry.config.mjs')
const withoutJobs = join(dir.path, 'without-jobs', 'tenantry.config.mjs')
const env = { TENANTRY_HOME: home, TENANTRY_CATALOG_URL: undefined, TENANTRY_DEBUG: undefined, TENANTRY_SECRET_KEY: undefined }

function cli(...args: string[]): Promise<CliRun> {
  return runCliCaptured(['--config', withJobs, ...args], { cwd: REPO, env })
}

describe.skipIf('skip' in redis)('tenantry jobs', () => {
  let raw: Redis
  const dead: Record<string, string[]> = { acme: [], globex: [] }

  beforeAll(async () => {
    if (!('url' in redis)) return
    raw = new Redis(redis.url)
    for (const [file, services] of [[withJobs, { jobs: { url: redis.url, prefix } }], [withoutJobs, {}]] as const) {
      mkdirSync(join(file, '..'), { recursive: true })
      writeFileSync(file, `export default ${JSON.stringify({ services })}\n`)
    }
    // The app's own code: a job that always fails, run until each is a dead letter.
    const tenantry = await createTenantry(await loadConfig(withJobs, { ...process.env, TENANTRY_HOME: home }))
    try {
      for (const slug of ['acme', 'globex']) await tenantry.createTenant({ slug })
      tenantry.jobs.define('doomed', { schema: z.strictObject({ n: z.number().int() }), attempts: 1, handler: async ({ n }) => Promise.reject(new Error(`job ${n} failed`)) })
      for (const [slug, n] of [['acme', 1], ['acme', 2], ['globex', 3]] as const) dead[slug]!.push(await tenantry.withTenant(slug, () => tenantry.jobs.enqueue('doomed', { n })))
      for (let round = 0; round < 1_000; round++) {
        const failed = await Promise.all(['acme', 'globex'].map((slug) => tenantry.withTenant(slug, () => tenantry.jobs.counts()).then((c) => c.failed)))
        if (failed[0] === 2 && failed[1] === 1) break
        if ((await tenantry.jobs.runRound()) === 0) await new Promise((r) => setTimeout(r, 10))
      }
    } finally {
      await tenantry.close()
    }
  }, 120_000)
  afterAll(async () => {
    if (raw) {
      const left = await raw.keys(`${prefix}*`)
      if (left.length) await raw.del(...left)
      raw.disconnect()
    }
    dir.cleanup()
  })

  it('counts by state and lists dead letters, as a table or JSON', async () => {
    const counts = await cli('jobs', 'counts', 'acme', '--json')
    expect(counts.code, counts.stderr).toBe(0)
    expect(JSON.parse(counts.stdout)).toEqual({ waiting: 0, delayed: 0, active: 0, failed: 2 })
    const table = await cli('jobs', 'counts', 'acme')
    expect(table.stdout.split('\n').slice(0, 2).map((l) => l.split(/\s+/))).toEqual([['WAITING', 'DELAYED', 'ACTIVE', 'FAILED'], ['0', '0', '0', '2']])

    const listed = await cli('jobs', 'dead-letters', 'acme', '--json')
    expect(listed.code, listed.stderr).toBe(0)
    const letters = JSON.parse(listed.stdout) as DeadLetter[]
    expect(letters.map((d) => [d.id, d.name, d.payload, d.attempts, d.error])).toEqual([
      [dead.acme![1], 'doomed', { n: 2 }, 1, 'job 2 failed'],
      [dead.acme![0], 'doomed', { n: 1 }, 1, 'job 1 failed'],
    ])
    expect((JSON.parse((await cli('jobs', 'dead-letters', 'acme', '--json', '--limit', '1')).stdout) as DeadLetter[]).length).toBe(1)
    const asTable = await cli('jobs', 'dead-letters', 'acme')
    expect(asTable.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+ATTEMPTS\s+FAILED\s+ERROR$/)
    expect(asTable.stdout).toContain(dead.acme![0])
  }, 120_000)

  it("retries and discards a dead letter of the tenant named, never another tenant's", async () => {
    const [first, second] = dead.acme!
    const globexJob = dead.globex![0]!
    // Globex's job under acme: not found, and it stays.
    for (const action of ['retry', 'discard']) {
      const foreign = await cli('jobs', action, 'acme', globexJob)
      expect(foreign.code, action).toBe(1)
      expect(foreign.stderr).toContain(`Tenant acme has no dead letter with id ${globexJob}`)
    }
    expect(JSON.parse((await cli('jobs', 'counts', 'globex', '--json')).stdout)).toMatchObject({ failed: 1 })

    const retried = await cli('jobs', 'retry', 'acme', first!)
    expect(retried.code, retried.stderr).toBe(0)
    expect(retried.stdout).toContain(`Job ${first} of tenant acme is back in its queue.`)
    const discarded = await cli('jobs', 'discard', 'acme', second!, '--json')
    expect(discarded.code, discarded.stderr).toBe(0)
    expect(JSON.parse(discarded.stdout)).toEqual({ discarded: second })
    expect(JSON.parse((await cli('jobs', 'counts', 'acme', '--json')).stdout)).toEqual({ waiting: 1, delayed: 0, active: 0, failed: 0 })
    expect((await cli('jobs', 'dead-letters', 'acme')).stdout).toContain('No dead letters for acme.')
    const again = await cli('jobs', 'discard', 'acme', second!)
    expect(again.code).toBe(1)
    expect(JSON.parse((await cli('jobs', 'dead-letters', 'globex', '--json')).stdout).map((d: DeadLetter) => d.id)).toEqual([globexJob])
  }, 120_000)

  it('refuses bad input with exit 2, and says when jobs are not configured', async () => {
    for (const args of [
      ['jobs', 'counts', 'ACME'],
      ['jobs', 'retry', 'acme', 'not-a-uuid'],
      ['jobs', 'discard', 'acme', '../x'],
      ['jobs', 'dead-letters', 'acme', '--limit', '0'],
      ['jobs', 'dead-letters', 'acme', '--limit', '1001'],
      ['jobs', 'retry', 'acme'],
      ['jobs', 'purge', 'acme'],
    ]) {
      const run = await cli(...args)
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(2)
      expect(run.stderr).toMatch(/^tenantry: /)
    }
    const missing = await cli('jobs', 'counts', 'nobody')
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('nobody')
    const unconfigured = await runCliCaptured(['--config', withoutJobs, 'jobs', 'counts', 'acme'], { cwd: REPO, env })
    expect(unconfigured.code).toBe(1)
    expect(unconfigured.stderr).toContain('services.jobs.url')
  }, 120_000)
})
