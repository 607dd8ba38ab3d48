import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { signUp, startTestServer, verifyEmail, type Client, type TestServer } from '@tenantry/server/testing'

// Issue 13: backups of one tenant over the admin API, with the owner/admin/platform rules.

const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))

let server: TestServer
let root: Client
beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG, env: { TENANTRY_PLATFORM_ADMINS: 'root@example.com' } })
  root = await signUp(server, 'root@example.com')
  await verifyEmail(server, 'root@example.com')
})
afterAll(async () => server?.stop())

describe('admin API: tenant backups', () => {
  it('owner backs up and restores in place; only platform admins restore as a new tenant; bad input is refused', async ({ expect }) => {
    const owner = await signUp(server, 'backup-owner@example.com')
    const stranger = await signUp(server, 'stranger@example.com')
    expect((await root.post('/api/admin/tenants', { slug: 'backed', ownerEmail: 'backup-owner@example.com' })).status).toBe(201)
    expect((await owner.post('/api/t/backed/data/jobs', { company: 'Kept', title: 'T', start_date: '2020-01-01' })).status).toBe(201)
    const jobs = async (slug: string, as: Client = owner) => (await as.get(`/api/t/${slug}/data/jobs`)).body.items.map((j: { company: string }) => j.company).sort()

    const taken = await owner.post('/api/admin/tenants/backed/backups')
    expect(taken.status, JSON.stringify(taken.body)).toBe(201)
    expect(taken.body).toMatchObject({ id: expect.stringMatching(/^b/), method: 'sqlite-backup-api', bytes: expect.any(Number) })
    expect(taken.body).not.toHaveProperty('location') // the server's paths stay on the server
    const listed = await owner.get('/api/admin/tenants/backed/backups')
    expect(listed.body.backups.map((b: { id: string }) => b.id)).toEqual([taken.body.id])

    expect((await owner.post('/api/t/backed/data/jobs', { company: 'Later', title: 'T', start_date: '2021-01-01' })).status).toBe(201)
    expect(await jobs('backed')).toEqual(['Kept', 'Later'])
    const restored = await owner.post('/api/admin/tenants/backed/restore', { backup: taken.body.id })
    expect(restored.status, JSON.stringify(restored.body)).toBe(200)
    expect(restored.body).toMatchObject({ tenant: { slug: 'backed', status: 'ready' }, backup: { id: taken.body.id }, migrated: [] })
    expect(await jobs('backed')).toEqual(['Kept'])

    // As a new tenant: platform admins only (it creates a tenant).
    expect((await owner.post('/api/admin/tenants/backed/restore', { backup: taken.body.id, as: 'backed_copy' })).status).toBe(403)
    const copy = await root.post('/api/admin/tenants/backed/restore', { backup: taken.body.id, as: 'backed_copy' })
    expect(copy.status, JSON.stringify(copy.body)).toBe(200)
    expect(copy.body.tenant).toMatchObject({ slug: 'backed_copy', status: 'ready' })

    // Bad input: clear codes, nothing changes.
    const unknown = await owner.post('/api/admin/tenants/backed/restore', { backup: 'b000000000aaaaaaaaaaaaaaaa' })
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'BACKUP_NOT_FOUND'])
    const malformed = await owner.post('/api/admin/tenants/backed/restore', { backup: 'nope' })
    expect([malformed.status, malformed.body.error.code]).toEqual([400, 'INVALID_OPTION'])
    expect((await owner.post('/api/admin/tenants/backed/restore', { backup: taken.body.id, extra: 1 })).status).toBe(400)
    expect((await owner.post('/api/admin/tenants/backed/restore', {})).status).toBe(400)
    const slugTaken = await root.post('/api/admin/tenants/backed/restore', { backup: taken.body.id, as: 'backed_copy' })
    expect([slugTaken.status, slugTaken.body.error.code]).toEqual([409, 'SLUG_TAKEN'])
    const badSlug = await root.post('/api/admin/tenants/backed/restore', { backup: taken.body.id, as: 'Bad Slug' })
    expect([badSlug.status, badSlug.body.error.code]).toEqual([400, 'INVALID_SLUG'])
    // Someone without a role in the tenant sees no tenant at all.
    expect((await stranger.post('/api/admin/tenants/backed/backups')).status).toBe(404)
    expect((await stranger.get('/api/admin/tenants/backed/backups')).status).toBe(404)
    expect((await stranger.post('/api/admin/tenants/backed/restore', { backup: taken.body.id })).status).toBe(404)
    expect(await jobs('backed')).toEqual(['Kept'])
  })
})
