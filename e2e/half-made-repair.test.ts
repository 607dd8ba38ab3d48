import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp, startServer } from '@tenantry/server'
import { startTestServer, type TestServer } from '@tenantry/server/testing'
import { runCliCaptured } from '@tenantry/cli/testing'
import { createTenantry, repairHalfMade, resolveConfig, runDoctor, type Tenantry, type TenantryConfig } from 'tenantry'
import { tempDir } from 'tenantry/testing'
import { copyExampleMigrations, runChild } from './fixtures/homes.js'

// Issue #9 item 10: a process killed in the middle of a sign-up or an organization create left
// an organization with no tenant and a tenant stuck in `provisioning`, and the slug could never
// be used again; `tenantry doctor` said all was well. Now doctor reports it, `doctor --fix` and
// a server start repair it, and the slug is free again. A create still running is never touched.

const CHILD = fileURLToPath(new URL('./fixtures/create-organization-child.ts', import.meta.url))
const PASSWORD = 'correct horse battery'

const root = tempDir('tenantry-half-made-')
const migrations = join(root.path, 'migrations')
afterAll(() => root.cleanup())
beforeAll(() => {
  copyExampleMigrations(migrations)
})

/** A home with a config file in it, for the CLI (its working directory) and in-process opens. */
function makeHome(name: string): { dir: string; config: TenantryConfig } {
  const dir = join(root.path, name)
  const config: TenantryConfig = { home: join(dir, 'home'), migrations: { tenant: migrations }, dataSources: [{ id: 'local', engine: 'sqlite' }] }
  return { dir, config }
}

/** Runs the child that signs up `email` and creates organization `slug`, killed before `step` of its tenant's create. */
async function crashOrganizationCreate(home: { config: TenantryConfig }, slug: string, step: string, email: string): Promise<void> {
  const child = await runChild(CHILD, [home.config.home!, migrations, slug, step, email])
  expect(child.signal, child.stderr).toBe('SIGKILL')
  expect(child.lines).toEqual(['started'])
}

/** `tenantry doctor --json` (and its flags) in the home's directory. */
async function doctor(home: { dir: string; config: TenantryConfig }, ...flags: string[]) {
  writeFileSync(join(home.dir, 'tenantry.config.mjs'), `export default ${JSON.stringify(home.config)}\n`)
  const run = await runCliCaptured(['doctor', '--json', ...flags], { cwd: home.dir, env: { TENANTRY_HOME: undefined, TENANTRY_CATALOG_URL: undefined } })
  expect(run.stderr).not.toMatch(/Error:/)
  return { code: run.code, ...(JSON.parse(run.stdout) as { ok: boolean; repaired: Array<{ target: string; action: string }>; checks: Array<{ name: string; status: string; detail: string }> }) }
}

/** Opens the home with the server's auth (no HTTP), and creates organization `slug` as `email`'s user through Better Auth. */
async function createOrganization(tenantry: Tenantry, slug: string, email: string): Promise<{ ok: boolean; error?: string }> {
  const app = await createApp({ tenantry, baseURL: 'http://127.0.0.1:9', logger: false, env: { ...process.env, BETTER_AUTH_SECRET: 'x'.repeat(32) } })
  try {
    const user = (await (await app.auth.$context).internalAdapter.findUserByEmail(email))!.user
    await app.auth.api.createOrganization({ body: { name: slug, slug, userId: user.id, metadata: {} } })
    return { ok: true }
  } catch (error) {
    return { ok: false, error: (error as { body?: { code?: string } }).body?.code ?? String(error) }
  } finally {
    await app.close()
  }
}

async function organizationsBySlug(tenantry: Tenantry, slug: string): Promise<Array<{ tenantId: string | null }>> {
  return (await tenantry.catalog.db.selectFrom('organization' as never).select('tenantId' as never).where('slug' as never, '=', slug as never).execute()) as never
}

describe('an organization create killed with SIGKILL', () => {
  it('doctor reports it, doctor --fix repairs it, and the slug can be used again', async () => {
    const home = makeHome('cli')
    await crashOrganizationCreate(home, 'acme', 'migrate', 'owner@acme.test')

    // Half-made: the organization exists with no tenant, the tenant is stuck in provisioning.
    let tenantry = await createTenantry(home.config)
    try {
      expect((await tenantry.catalog.findTenantBySlug('acme'))?.status).toBe('provisioning')
      expect(await organizationsBySlug(tenantry, 'acme')).toEqual([{ tenantId: null }])
      // …and the slug cannot be used again: Better Auth holds it.
      expect(await createOrganization(tenantry, 'acme', 'owner@acme.test')).toEqual({ ok: false, error: 'ORGANIZATION_ALREADY_EXISTS' })
    } finally {
      await tenantry.close()
    }

    // Within the grace period (a create might still be running elsewhere) nothing is stuck yet.
    const fresh = await doctor(home)
    expect(fresh.checks.find((c) => c.name === 'lifecycle: interrupted operations')).toMatchObject({ status: 'ok', detail: expect.stringMatching(/running: acme/) })

    const found = await doctor(home, '--grace', '0')
    expect(found.code).toBe(1)
    expect(found.ok).toBe(false)
    expect(found.checks.filter((c) => c.status === 'fail').map((c) => c.name)).toEqual(['lifecycle: interrupted operations'])
    expect(found.checks.find((c) => c.name === 'lifecycle: interrupted operations')?.detail).toMatch(/acme \(provisioning/)

    const fixed = await doctor(home, '--fix', '--grace', '0')
    expect(fixed.code).toBe(0)
    expect(fixed.ok).toBe(true)
    expect(fixed.repaired.map((r) => r.target.split(' (')[0])).toEqual(['tenant acme', 'organization acme'])
    expect(fixed.checks.filter((c) => c.status !== 'ok')).toEqual([])

    tenantry = await createTenantry(home.config)
    try {
      const purged = (await tenantry.catalog.listTenants({ includePurged: true })).find((t) => t.slug === 'acme')
      expect(purged).toMatchObject({ status: 'deleted', purgedAt: expect.any(String) })
      expect(await organizationsBySlug(tenantry, 'acme')).toEqual([])
      // The slug is free: the same user creates it again, and gets a ready tenant.
      expect(await createOrganization(tenantry, 'acme', 'owner@acme.test')).toEqual({ ok: true })
      const tenant = await tenantry.catalog.findTenantBySlug('acme')
      expect(tenant?.status).toBe('ready')
      expect(tenant?.id).not.toBe(purged?.id)
      expect(await organizationsBySlug(tenantry, 'acme')).toEqual([{ tenantId: tenant!.id }])
    } finally {
      await tenantry.close()
    }
    expect((await doctor(home)).ok).toBe(true)
  })

  it('a server start repairs it (once the grace period is over)', async () => {
    const home = makeHome('start')
    await crashOrganizationCreate(home, 'beta', 'activate', 'owner@beta.test')
    const config = { ...home.config }

    // The default grace period: a crash a moment ago might be a create still running elsewhere.
    let server = await startServer({ config: resolve(config), port: 0, handleSignals: false, app: { logger: false, env: testEnv() } })
    try {
      expect((await server.tenantry.catalog.findTenantBySlug('beta'))?.status).toBe('provisioning')
    } finally {
      await server.close()
    }

    server = await startServer({ config: resolve(config), port: 0, handleSignals: false, repair: { graceMs: 0 }, app: { logger: false, env: testEnv() } })
    try {
      expect(await server.tenantry.catalog.findTenantBySlug('beta')).toBeUndefined()
      expect(await organizationsBySlug(server.tenantry, 'beta')).toEqual([])
      const user = (await (await server.app.auth.$context).internalAdapter.findUserByEmail('owner@beta.test'))!.user
      await server.app.auth.api.createOrganization({ body: { name: 'beta', slug: 'beta', userId: user.id, metadata: {} } })
      expect((await server.tenantry.catalog.findTenantBySlug('beta'))?.status).toBe('ready')
      expect(await runDoctor(server.tenantry, { graceMs: 0 }).then((checks) => checks.filter((c) => c.status !== 'ok'))).toEqual([])
    } finally {
      await server.close()
    }
  })
})

describe('half-made state left in place', () => {
  let server: TestServer
  let release: () => void = () => {}
  let reached: () => void = () => {}
  const atMigrate = new Promise<void>((resolve) => (reached = resolve))
  const gate = new Promise<void>((resolve) => (release = resolve))

  beforeAll(async () => {
    server = await startTestServer({
      config: { migrations: { tenant: migrations }, dataSources: [{ id: 'local', engine: 'sqlite' }] },
      tenantry: {
        beforeProvisioningStep: async (step, tenant) => {
          if (tenant.slug === 'slow' && step === 'migrate') {
            reached()
            await gate
          }
        },
      },
    })
  })
  afterAll(async () => {
    release()
    await server?.stop()
  })

  it('a create still running is never touched, even with no grace period', async () => {
    const creating = server.tenantry.createTenant({ slug: 'slow' })
    await atMigrate
    expect(await repairHalfMade(server.tenantry, { graceMs: 0 })).toEqual([])
    const check = (await runDoctor(server.tenantry, { graceMs: 0 })).find((c) => c.name === 'lifecycle: interrupted operations')
    expect(check).toMatchObject({ status: 'ok', detail: expect.stringMatching(/running: slow/) })
    release()
    expect((await creating).status).toBe('ready')
  })

  it('doctor --fix finishes a delete cut short, links an organization whose tenant was made, removes one whose tenant was purged, and staging files', async () => {
    const { tenantry, app } = server
    const context = await app.auth.$context
    await app.auth.api.signUpEmail({ body: { email: 'owner@gamma.test', password: PASSWORD, name: 'owner' } })
    const user = (await context.internalAdapter.findUserByEmail('owner@gamma.test'))!.user
    for (const slug of ['gamma', 'delta', 'epsilon']) await app.auth.api.createOrganization({ body: { name: slug, slug, userId: user.id, metadata: {} } })
    const gamma = (await tenantry.catalog.findTenantBySlug('gamma'))!
    // A crash between the tenant's create and the link leaves exactly this:
    await tenantry.catalog.db.updateTable('organization' as never).set({ tenantId: null } as never).where('slug' as never, '=', 'gamma' as never).execute()
    // A purge cut short before its organization was removed leaves this:
    await tenantry.tenants.delete('delta', { purge: true })
    // A purge killed after it marked the tenant `deleting`, this:
    const epsilon = (await tenantry.catalog.findTenantBySlug('epsilon'))!
    expect(await tenantry.catalog.transition(epsilon.id, ['ready'], 'deleting', { operation: 'purge' })).toBe(true)
    // And a create killed between writing its staging file and publishing it, this:
    writeFileSync(join(server.home, 'tenants', 'taaaaaaaaaaaaaaaaaaa.db.creating'), '')

    const cli = { dir: server.home, config: { home: server.home, migrations: { tenant: migrations }, dataSources: [{ id: 'local', engine: 'sqlite' }] } satisfies TenantryConfig }
    const found = await doctor(cli, '--grace', '0')
    expect(found.checks.find((c) => c.name === 'organizations: without a tenant')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/gamma \(no tenant\), delta \(tenant purged\)/) })
    expect(found.checks.find((c) => c.name === 'lifecycle: interrupted operations')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/epsilon \(deleting since/) })
    expect(found.checks.find((c) => c.name === 'local: staging files')).toMatchObject({ status: 'warn', detail: expect.stringMatching(/taaaaaaaaaaaaaaaaaaa\.db\.creating/) })

    const fixed = await doctor(cli, '--fix', '--grace', '0')
    expect(fixed.repaired.map((r) => `${r.target.split(' (')[0]}: ${r.action}`)).toEqual([
      'tenant epsilon: finished its purge',
      `file ${join(server.home, 'tenants', 'taaaaaaaaaaaaaaaaaaa.db.creating')}: removed: staging file of an interrupted create`,
      'organization gamma: linked to the tenant its create made',
      'organization delta: removed: its tenant was purged',
      'organization epsilon: removed: its tenant was purged',
    ])
    expect(fixed.ok).toBe(true)
    expect(await organizationsBySlug(tenantry, 'gamma')).toEqual([{ tenantId: gamma.id }])
    expect(await organizationsBySlug(tenantry, 'delta')).toEqual([])
    expect(await organizationsBySlug(tenantry, 'epsilon')).toEqual([])
    expect(await tenantry.catalog.findTenantBySlug('epsilon')).toBeUndefined()
  })
})

function testEnv(): NodeJS.ProcessEnv {
  return { ...process.env, BETTER_AUTH_SECRET: 'x'.repeat(32) }
}

function resolve(config: TenantryConfig) {
  return resolveConfig(config, { root: root.path, env: {} })
}
