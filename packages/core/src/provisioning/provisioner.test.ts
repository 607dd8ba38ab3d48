import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { isTenantryError } from '../errors.js'
import type { Logger } from '../logger.js'
import { tempDir } from '../testing/services.js'
import { createTenantry, type Tenantry } from '../tenantry.js'
import { PROVISIONING_STEPS, createLockName, type ProvisioningStep } from './provisioner.js'

const JOBS_SQL = 'CREATE TABLE jobs (id INTEGER PRIMARY KEY, company TEXT NOT NULL);\n'
const NOTES_TS = `import type { Kysely } from 'kysely'
export async function up(db: Kysely<any>) {
  await db.schema.alterTable('jobs').addColumn('notes', 'text').execute()
}
`
// Does real DDL first, so a rollback has something to undo.
const BROKEN_TS = `import type { Kysely } from 'kysely'
export async function up(db: Kysely<any>) {
  await db.schema.alterTable('jobs').addColumn('notes', 'text').execute()
  throw new Error('broken migration 0002')
}
`

let root: ReturnType<typeof tempDir>
let home: string
const open: Tenantry[] = []

beforeEach(() => {
  root = tempDir('tenantry-provisioner-')
  home = join(root.path, 'home')
})

afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()))
  root.cleanup()
})

function migrationsDir(name: string, files: Record<string, string>): string {
  const dir = join(root.path, name)
  mkdirSync(dir, { recursive: true })
  for (const [file, source] of Object.entries(files)) writeFileSync(join(dir, file), source)
  return dir
}

async function openTenantry(
  migrations: string,
  options: { useTemplates?: boolean; beforeStep?: (step: ProvisioningStep) => void | Promise<void>; logger?: Logger } = {},
): Promise<Tenantry> {
  const tenantry = await createTenantry(
    {
      home,
      migrations: { tenant: migrations },
      dataSources: [{ id: 'local', engine: 'sqlite' }],
      provisioning: { useTemplates: options.useTemplates ?? true },
    },
    {
      ...(options.beforeStep ? { beforeProvisioningStep: options.beforeStep } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    },
  )
  open.push(tenantry)
  return tenantry
}

async function close(tenantry: Tenantry): Promise<void> {
  open.splice(open.indexOf(tenantry), 1)
  await tenantry.close()
}

/** Everything in the tenants directory except sealed templates: tenant files and any leftovers (close open handles first). */
function tenantFiles(): string[] {
  const dir = join(home, 'tenants')
  if (!existsSync(dir)) return []
  const templates = join(dir, '.templates')
  const leftovers = existsSync(templates) ? readdirSync(templates).filter((f) => !/^[a-f0-9]{16,64}\.db$/.test(f)).map((f) => `.templates/${f}`) : []
  return [...readdirSync(dir).filter((f) => f !== '.templates'), ...leftovers].sort()
}

async function ledgerRows(tenantry: Tenantry) {
  return tenantry.catalog.db.selectFrom('tenant_migrations').selectAll().execute()
}

/** The code `withTenant` refuses with; fails if it lets the call run. */
async function refusal(tenantry: Tenantry, slug: string): Promise<string | undefined> {
  let ran = false
  const code = await tenantry.withTenant(slug, () => (ran = true)).then(
    () => 'served',
    (e: unknown) => (isTenantryError(e) ? e.code : String(e)),
  )
  expect(ran).toBe(false)
  return code
}

async function expectWorkingData(tenantry: Tenantry, slug: string): Promise<void> {
  await tenantry.withTenant(slug, async () => {
    await tenantry.db().insertInto('jobs').values({ company: slug }).execute()
    expect(await tenantry.db().selectFrom('jobs').select('company').execute()).toEqual([{ company: slug }])
  })
}

describe.each([{ useTemplates: true }, { useTemplates: false }])('create with useTemplates: $useTemplates', ({ useTemplates }) => {
  it.each(PROVISIONING_STEPS)('a failure before %s is undone, never served, and finished by a re-run', async (step) => {
    const migrations = migrationsDir('migrations', { '0001_jobs.sql': JOBS_SQL, '0002_notes.ts': NOTES_TS })
    let faultAt: ProvisioningStep | undefined = step
    const tenantry = await openTenantry(migrations, {
      useTemplates,
      beforeStep: (s) => {
        if (s === faultAt) throw new Error(`injected before ${s}`)
      },
    })

    const error = await tenantry.createTenant({ slug: 'acme' }).then(() => undefined, (e: unknown) => e as Error)
    expect(error?.message).toContain(`injected before ${step}`)
    const failed = await tenantry.catalog.findTenantBySlug('acme')
    if (step === 'record') {
      expect(failed).toBeUndefined()
      expect(await tenantry.catalog.countTenants()).toBe(0)
    } else {
      expect(error).toMatchObject({ code: 'PROVISIONING_FAILED' })
      expect(failed).toMatchObject({ status: 'failed', statusReason: `injected before ${step}` })
    }
    expect(tenantFiles()).toEqual([])
    expect(await ledgerRows(tenantry)).toEqual([])
    expect(await refusal(tenantry, 'acme')).toBe(step === 'record' ? 'TENANT_NOT_FOUND' : 'TENANT_NOT_READY')

    faultAt = undefined
    const created = await tenantry.createTenant({ slug: 'acme' })
    expect(created).toMatchObject({ status: 'ready', statusReason: null })
    if (failed) expect(created.id).toBe(failed.id)
    await expectWorkingData(tenantry, 'acme')
    expect((await tenantry.catalog.ledger(created.id)).map((l) => l.migration)).toEqual(['0001_jobs', '0002_notes'])
    await close(tenantry)
    expect(tenantFiles()).toEqual([`${created.id}.db`])
  })

  it('least-loaded placement with every candidate down refuses with DATA_SOURCE_UNAVAILABLE, records nothing, and logs why', async () => {
    const warned: Array<{ dataSource?: string; reason?: string }> = []
    const logger = { warn: (fields: object) => warned.push(fields), error() {}, info() {}, debug() {}, trace() {}, fatal() {}, child: () => logger } as unknown as Logger
    // Nothing listens on port 1: the only source with schema isolation does not answer.
    const tenantry = await createTenantry(
      {
        home,
        migrations: { tenant: migrationsDir('m', { '0001_jobs.sql': JOBS_SQL }) },
        dataSources: [{ id: 'local', engine: 'sqlite' }, { id: 'gone', engine: 'postgres', url: 'postgres://nobody@127.0.0.1:1/none' }],
        defaults: { placement: 'least-loaded', isolation: 'schema' },
      },
      { logger },
    )
    open.push(tenantry)
    const error = await tenantry.createTenant({ slug: 'nowhere' }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'DATA_SOURCE_UNAVAILABLE' })
    // The driver's message (host, port) is for the operator's log, not the error a caller may pass on.
    expect((error as Error).message).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/)
    expect(warned).toContainEqual(expect.objectContaining({ dataSource: 'gone', reason: expect.stringMatching(/ECONNREFUSED|connect/) }))
    expect(await tenantry.catalog.findTenantBySlug('nowhere')).toBeUndefined()
  })

  it('a migration that throws leaves nothing behind, and the fixed migration finishes the same tenant', async () => {
    const broken = migrationsDir('broken', { '0001_jobs.sql': JOBS_SQL, '0002_notes.ts': BROKEN_TS })
    const tenantry = await openTenantry(broken, { useTemplates })
    const error = await tenantry.createTenant({ slug: 'acme' }).then(() => undefined, (e: unknown) => e)
    expect(error).toMatchObject({ code: 'PROVISIONING_FAILED', message: expect.stringContaining('broken migration 0002') })
    const failed = await tenantry.catalog.findTenantBySlug('acme')
    expect(failed).toMatchObject({ status: 'failed', statusReason: expect.stringContaining('broken migration 0002') })
    expect(tenantFiles()).toEqual([])
    expect(await ledgerRows(tenantry)).toEqual([])
    expect(await refusal(tenantry, 'acme')).toBe('TENANT_NOT_READY')
    await close(tenantry)

    const fixed = migrationsDir('fixed', { '0001_jobs.sql': JOBS_SQL, '0002_notes.ts': NOTES_TS })
    const retry = await openTenantry(fixed, { useTemplates })
    const created = await retry.createTenant({ slug: 'acme' })
    expect(created).toMatchObject({ id: failed!.id, status: 'ready' })
    await expectWorkingData(retry, 'acme')
    await close(retry)
    expect(tenantFiles()).toEqual([`${created.id}.db`])
  })
})

describe('deleting and reusing slugs', () => {
  it('purging a failed tenant removes it and frees its slug', async () => {
    const migrations = migrationsDir('migrations', { '0001_jobs.sql': JOBS_SQL })
    let fail = true
    const tenantry = await openTenantry(migrations, {
      beforeStep: (s) => {
        if (fail && s === 'activate') throw new Error('injected before activate')
      },
    })
    await expect(tenantry.createTenant({ slug: 'acme' })).rejects.toMatchObject({ code: 'PROVISIONING_FAILED' })
    const failed = (await tenantry.catalog.findTenantBySlug('acme'))!

    const purged = await tenantry.deleteTenant('acme', { purge: true })
    expect(purged).toMatchObject({ id: failed.id, status: 'deleted', purgedAt: expect.any(String) })
    expect(await tenantry.catalog.findTenantBySlug('acme')).toBeUndefined()
    expect(await refusal(tenantry, 'acme')).toBe('TENANT_NOT_FOUND')
    expect(tenantFiles()).toEqual([])
    expect(await ledgerRows(tenantry)).toEqual([])

    fail = false
    const again = await tenantry.createTenant({ slug: 'acme' })
    expect(again.status).toBe('ready')
    expect(again.id).not.toBe(failed.id)
    await expectWorkingData(tenantry, 'acme')
  })

  it('a soft-deleted tenant keeps its slug and data; a purged one frees the slug for a fresh tenant', async () => {
    const tenantry = await openTenantry(migrationsDir('migrations', { '0001_jobs.sql': JOBS_SQL }))
    const first = await tenantry.createTenant({ slug: 'acme' })
    await tenantry.withTenant('acme', () => tenantry.db().insertInto('jobs').values({ company: 'old acme' }).execute())
    await expect(tenantry.createTenant({ slug: 'acme' })).rejects.toMatchObject({ code: 'SLUG_TAKEN', message: expect.stringContaining('status ready') })

    await tenantry.deleteTenant('acme')
    await expect(tenantry.createTenant({ slug: 'acme' })).rejects.toMatchObject({ code: 'SLUG_TAKEN', message: expect.stringContaining('status deleted') })
    expect(await refusal(tenantry, 'acme')).toBe('TENANT_NOT_READY')
    expect(existsSync(join(home, 'tenants', `${first.id}.db`))).toBe(true)
    expect(await tenantry.catalog.ledger(first.id)).toHaveLength(1)

    await tenantry.deleteTenant('acme', { purge: true })
    expect(tenantFiles()).toEqual([])
    const second = await tenantry.createTenant({ slug: 'acme' })
    expect(second.id).not.toBe(first.id)
    // The new tenant starts empty: nothing of the purged one's data comes back with the slug.
    expect(await tenantry.withTenant('acme', () => tenantry.db().selectFrom('jobs').selectAll().execute())).toEqual([])
    await close(tenantry)
    expect(tenantFiles()).toEqual([`${second.id}.db`])
  })
})

describe('concurrent creates of one slug', () => {
  // Regression: two retries of a failed create raced; the loser's cleanup deleted the winner's database, leaving it `ready` with no file.
  it('two retries of a failed create: one finishes it, the other is refused and touches nothing', async () => {
    let fail = true
    const tenantry = await openTenantry(migrationsDir('migrations', { '0001_jobs.sql': JOBS_SQL, '0002_notes.ts': NOTES_TS }), {
      beforeStep: (s) => {
        if (fail && s === 'activate') throw new Error('injected before activate')
      },
    })
    await expect(tenantry.createTenant({ slug: 'acme' })).rejects.toMatchObject({ code: 'PROVISIONING_FAILED' })
    fail = false

    const outcomes = await Promise.allSettled([tenantry.createTenant({ slug: 'acme' }), tenantry.createTenant({ slug: 'acme' })])
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1)
    const refused = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')?.reason
    expect(refused).toMatchObject({ code: 'SLUG_TAKEN', message: expect.stringContaining('being created') })

    const tenant = (await tenantry.catalog.findTenantBySlug('acme'))!
    expect(tenant.status).toBe('ready')
    expect((await tenantry.catalog.ledger(tenant.id)).map((l) => l.migration)).toEqual(['0001_jobs', '0002_notes'])
    await expectWorkingData(tenantry, 'acme')
    await close(tenantry)
    expect(tenantFiles()).toEqual([`${tenant.id}.db`])
  })

  it('two creates of one new slug at once: one creates it, the other is refused and touches nothing', async () => {
    const tenantry = await openTenantry(migrationsDir('migrations', { '0001_jobs.sql': JOBS_SQL }))
    await tenantry.createTenant({ slug: 'warm' }) // the template is built: both creates take the fast path
    const outcomes = await Promise.allSettled([tenantry.createTenant({ slug: 'acme' }), tenantry.createTenant({ slug: 'acme' })])
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1)
    const refused = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')?.reason
    expect(refused).toMatchObject({ code: 'SLUG_TAKEN' })
    const tenant = (await tenantry.catalog.findTenantBySlug('acme'))!
    expect(tenant.status).toBe('ready')
    expect(await tenantry.catalog.db.selectFrom('locks').selectAll().execute()).toEqual([])
    await expectWorkingData(tenantry, 'acme')
    const warm = (await tenantry.catalog.findTenantBySlug('warm'))!
    await close(tenantry)
    expect(tenantFiles().sort()).toEqual([`${tenant.id}.db`, `${warm.id}.db`].sort())
  })

  it("a new slug's create lock left by a dead process (no tenant yet) is taken over, and the create goes on", async () => {
    const tenantry = await openTenantry(migrationsDir('migrations', { '0001_jobs.sql': JOBS_SQL }))
    const dead = spawnSync(process.execPath, ['-e', '']).pid!
    const at = new Date().toISOString()
    await tenantry.catalog.db
      .insertInto('locks')
      .values({ name: createLockName('acme'), holder: 'crashed', pid: dead, host: hostname(), acquired_at: at, heartbeat_at: at })
      .execute()
    expect(await tenantry.createTenant({ slug: 'acme' })).toMatchObject({ status: 'ready' })
    expect(await tenantry.catalog.db.selectFrom('locks').selectAll().execute()).toEqual([])
    expect((await tenantry.catalog.auditLog()).map((e) => e.action)).toContain('lock.taken_over')
    await expectWorkingData(tenantry, 'acme')
  })

  it('a create asked for while the same slug is being created is refused until that one finishes', async () => {
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    let entered!: () => void
    const inMigrate = new Promise<void>((resolve) => (entered = resolve))
    const migrations = migrationsDir('migrations', { '0001_jobs.sql': JOBS_SQL })
    const slow = await openTenantry(migrations, {
      beforeStep: async (s) => {
        if (s !== 'migrate') return
        entered()
        await held
      },
    })
    const other = await openTenantry(migrations)

    const first = slow.createTenant({ slug: 'acme' })
    await inMigrate
    const inFlight = (await other.catalog.findTenantBySlug('acme'))!
    expect(inFlight.status).toBe('provisioning')
    await expect(other.createTenant({ slug: 'acme' })).rejects.toMatchObject({ code: 'SLUG_TAKEN', message: expect.stringContaining('being created') })
    expect(await refusal(other, 'acme')).toBe('TENANT_NOT_READY')

    release()
    expect(await first).toMatchObject({ id: inFlight.id, status: 'ready' })
    await expect(other.createTenant({ slug: 'acme' })).rejects.toMatchObject({ code: 'SLUG_TAKEN', message: expect.stringContaining('status ready') })
    // Through `slow`: `other`'s router may still hold, for up to a second, the `provisioning` placement it cached above.
    await expectWorkingData(slow, 'acme')
    await Promise.all([close(slow), close(other)])
    expect(tenantFiles()).toEqual([`${inFlight.id}.db`])
  })
})

describe('cleanup after a failed create', () => {
  // Regression: when recording the failure failed too, that error was dropped without a word
  // (`.catch(() => {})`), and the tenant sat in `provisioning` with nothing to say why.
  it('logs a cleanup step that fails once, with the tenant id, and still throws the create error', async () => {
    const lines: Array<{ level: string; facts: Record<string, unknown>; message: string }> = []
    const record = (level: string) => (facts: Record<string, unknown>, message: string) => void lines.push({ level, facts, message })
    const logger: Logger = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug') }
    const migrations = migrationsDir('migrations', { '0001_jobs.sql': JOBS_SQL })
    const tenantry = await openTenantry(migrations, {
      logger,
      beforeStep: (s) => {
        if (s === 'migrate') throw new Error('injected before migrate')
      },
    })
    await sql`CREATE TRIGGER refuse_failed BEFORE UPDATE OF status ON tenants WHEN NEW.status = 'failed'
      BEGIN SELECT RAISE(ABORT, 'failed status refused'); END`.execute(tenantry.catalog.db)

    const error = await tenantry.createTenant({ slug: 'acme' }).then(() => undefined, (e: unknown) => e)
    expect(error).toMatchObject({ code: 'PROVISIONING_FAILED', message: 'Creating tenant "acme" failed: injected before migrate' })
    const stuck = await tenantry.catalog.findTenantBySlug('acme')
    expect(stuck).toMatchObject({ status: 'provisioning' })
    expect(lines).toEqual([
      {
        level: 'warn',
        facts: { err: expect.objectContaining({ message: 'failed status refused' }), tenantId: stuck!.id, reason: 'injected before migrate' },
        message: 'Recording a failed create failed; the tenant stays in provisioning until it is created again or purged',
      },
    ])
    // The storage was still removed, and the audit log still has the failure.
    expect(tenantFiles()).toEqual([])
    expect((await tenantry.catalog.auditLog(stuck!.id)).map((e) => e.action)).toContain('tenant.create.failed')
  })
})
