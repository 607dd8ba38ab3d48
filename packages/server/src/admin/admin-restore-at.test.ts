import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, it } from 'vitest'
import type { TenantryConfig } from 'tenantry'
import { signUp, startTestServer, verifyEmail, type Client, type TestServer } from '@tenantry/server/testing'

// Issue 13, point-in-time restore over the admin API: the restorable window in the backups
// list, and `at` in the restore body. The server ships the WAL itself, every 50 ms here.

const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))

let server: TestServer
let root: Client
beforeAll(async () => {
  const base = (await import(REPO_CONFIG)).default as TenantryConfig
  server = await startTestServer({
    config: { ...base, backups: { pointInTime: { retention: '1h', intervalMs: 50 } } },
    root: dirname(REPO_CONFIG),
    env: { TENANTRY_PLATFORM_ADMINS: 'root@example.com' },
  })
  root = await signUp(server, 'root@example.com')
  await verifyEmail(server, 'root@example.com')
})
afterAll(async () => server?.stop())

describe('admin API: point-in-time restore', () => {
  it('lists the restorable window and restores the state at a time; a time outside it is 400 and nothing changes', async ({ expect }) => {
    expect((await root.post('/api/admin/tenants', { slug: 'timed' })).status).toBe(201)
    const jobs = async () => (await root.get('/api/t/timed/data/jobs')).body.items.map((j: { company: string }) => j.company).sort()
    /** The window's end once the shipper has seen everything committed before this call. */
    const shipped = async (): Promise<string> => {
      const after = new Date().toISOString()
      for (let i = 0; i < 200; i++) {
        const listed = await root.get('/api/admin/tenants/timed/backups')
        const to: string | undefined = listed.body.restorable?.to
        if (to !== undefined && to > after) return to
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
      throw new Error('the WAL shipper never caught up')
    }

    expect((await root.post('/api/t/timed/data/jobs', { company: 'Kept', title: 'T', start_date: '2020-01-01' })).status).toBe(201)
    const then = await shipped()
    expect((await root.post('/api/t/timed/data/jobs', { company: 'Later', title: 'T', start_date: '2021-01-01' })).status).toBe(201)
    await shipped()
    const listed = await root.get('/api/admin/tenants/timed/backups')
    expect(listed.body.restorable).toMatchObject({ from: expect.any(String), to: expect.any(String), ranges: [expect.any(Object)] })

    const tooEarly = await root.post('/api/admin/tenants/timed/restore', { at: '2000-01-01T00:00:00Z' })
    expect(tooEarly.status).toBe(400)
    expect(tooEarly.body).toMatchObject({ error: { code: 'INVALID_OPTION', message: expect.stringMatching(/cannot be restored to/) } })
    expect((await root.post('/api/admin/tenants/timed/restore', { at: then, backup: 'b000000000aaaaaaaaaaaaaaaa' })).status).toBe(400)
    expect(await jobs()).toEqual(['Kept', 'Later'])

    const restored = await root.post('/api/admin/tenants/timed/restore', { at: then })
    expect(restored.status, JSON.stringify(restored.body)).toBe(200)
    expect(restored.body).toMatchObject({ tenant: { slug: 'timed', status: 'ready' }, backup: { method: 'point-in-time' } })
    expect(await jobs()).toEqual(['Kept'])
  })
})
