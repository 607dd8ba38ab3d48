import { fileURLToPath } from 'node:url'
import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { Client, signUp, startTestServer, verifyEmail, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../tenantry.config.ts', import.meta.url))

let server: TestServer
let failNext = false
beforeAll(async () => {
  server = await startTestServer({
    config: REPO_CONFIG,
    tenantry: {
      beforeProvisioningStep: (step, tenant) => {
        if (failNext && tenant.slug === 'boom' && step === 'migrate') throw new Error('injected failure')
      },
    },
  })
})
afterAll(async () => server?.stop())

const catalog = () => server.tenantry.catalog.db as unknown as Kysely<any>

describe('organizations are tenants', () => {
  it('creating an organization provisions a tenant with the same slug; invitations add members; the active tenant switches', async ({ expect }) => {
    const owner = await signUp(server, 'owner@example.com')
    const created = await owner.post('/api/auth/organization/create', { name: 'Acme Inc', slug: 'acme' })
    expect(created.status).toBe(200)
    const tenant = await server.tenantry.catalog.findTenantBySlug('acme')
    expect(tenant).toMatchObject({ status: 'ready', name: 'Acme Inc' })
    const org = await catalog().selectFrom('organization').selectAll().where('slug', '=', 'acme').executeTakeFirstOrThrow()
    expect(org.tenantId).toBe(tenant!.id)
    // Creating it made it the owner's active tenant.
    expect((await owner.get('/api/me')).body.activeTenant).toMatchObject({ slug: 'acme', role: 'owner' })

    const bob = await signUp(server, 'bob@example.com')
    expect((await bob.get('/api/t/acme/data/jobs')).status).toBe(404)
    const invite = await owner.post('/api/auth/organization/invite-member', { email: 'bob@example.com', role: 'member', organizationId: org.id })
    expect(invite.status).toBe(200)
    expect(invite.body.id).toBeTypeOf('string')
    await verifyEmail(server, 'bob@example.com')
    const accepted = await bob.post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })
    expect(accepted.status).toBe(200)

    const me = await bob.get('/api/me')
    expect(me.body.tenants.map((t: { slug: string; role: string }) => [t.slug, t.role])).toContainEqual(['acme', 'member'])
    expect((await bob.get('/api/t/acme/data/jobs')).status).toBe(200)

    // Switch: the active-tenant routes follow.
    const personal = me.body.tenants.find((t: { slug: string }) => t.slug.startsWith('u_')).slug
    expect((await bob.post('/api/me/active-tenant', { slug: personal })).status).toBe(200)
    await bob.post('/api/tenant/data/jobs', { company: 'Personal Co', title: 'Dev', start_date: '2020-01-01' })
    expect((await bob.post('/api/me/active-tenant', { slug: 'acme' })).status).toBe(200)
    expect((await bob.get('/api/me')).body.activeTenant.slug).toBe('acme')
    expect((await bob.get('/api/tenant/data/jobs')).body.items).toEqual([])
    expect((await bob.post('/api/me/active-tenant', { slug: personal })).status).toBe(200)
    expect((await bob.get('/api/tenant/data/jobs')).body.items.map((j: { company: string }) => j.company)).toEqual(['Personal Co'])

    // Not a member of: answered as unknown.
    const carol = await signUp(server, 'carol@example.com')
    expect((await carol.post('/api/me/active-tenant', { slug: 'acme' })).body.error.code).toBe('TENANT_NOT_FOUND')
  })

  it('refuses invalid and reserved slugs before anything is created', async ({ expect }) => {
    const user = await signUp(server, 'slugs@example.com')
    for (const slug of ['Acme', 'admin', 'a', 'tenantry_x', 'acme-inc']) {
      const reply = await user.post('/api/auth/organization/create', { name: 'X', slug })
      expect(reply.status, slug).toBe(400)
      expect(reply.body.code).toBe('INVALID_SLUG') // Better Auth's own shape on its routes
    }
    expect(await catalog().selectFrom('organization').select('slug').where('name', '=', 'X').execute()).toEqual([])
  })

  it('a failed provision leaves no organization behind, and asking again finishes the tenant', async ({ expect }) => {
    const user = await signUp(server, 'boom@example.com')
    failNext = true
    const failed = await user.post('/api/auth/organization/create', { name: 'Boom', slug: 'boom' })
    failNext = false
    expect(failed.status).toBe(500)
    expect(failed.body.code).toBe('TENANT_PROVISIONING_FAILED')
    expect(await catalog().selectFrom('organization').select('id').where('slug', '=', 'boom').execute()).toEqual([])
    expect((await server.tenantry.catalog.findTenantBySlug('boom'))?.status).toBe('failed')
    expect((await user.get('/api/me')).body.tenants.map((t: { slug: string }) => t.slug)).not.toContain('boom')
    expect((await user.get('/api/t/boom/data/jobs')).status).toBe(404)

    const retried = await user.post('/api/auth/organization/create', { name: 'Boom', slug: 'boom' })
    expect(retried.status).toBe(200)
    expect((await server.tenantry.catalog.findTenantBySlug('boom'))?.status).toBe('ready')
    expect((await user.get('/api/t/boom/data/jobs')).status).toBe(200)
  })

  it('a taken slug is refused and the slug of an organization cannot change', async ({ expect }) => {
    const user = await signUp(server, 'taken@example.com')
    await server.tenantry.createTenant({ slug: 'taken' })
    const reply = await user.post('/api/auth/organization/create', { name: 'Taken', slug: 'taken' })
    // SLUG_TAKEN is 409 wherever it is answered (it was 400 here and 409 in the admin API).
    expect(reply.status).toBe(409)
    expect(reply.body.code).toBe('SLUG_TAKEN')
    const own = await user.post('/api/auth/organization/create', { name: 'Mine', slug: 'mine' })
    const update = await user.post('/api/auth/organization/update', { organizationId: own.body.id, data: { slug: 'other' } })
    expect(update.status).toBe(400)
    expect(update.body.code).toBe('SLUG_IMMUTABLE')
  })

  it('personal tenants: every user gets one on sign-up, never shared', async ({ expect }) => {
    const a = await signUp(server, 'p1@example.com')
    const b = await signUp(server, 'p2@example.com')
    const [ma, mb] = await Promise.all([a.get('/api/me'), b.get('/api/me')])
    expect(ma.body.tenants).toHaveLength(1)
    expect(mb.body.tenants).toHaveLength(1)
    expect(ma.body.tenants[0].slug).not.toBe(mb.body.tenants[0].slug)
    expect((await a.get(`/api/t/${mb.body.tenants[0].slug}/data/jobs`)).status).toBe(404)
    expect((await new Client(server.url).get('/api/me')).status).toBe(401)
  })
})
