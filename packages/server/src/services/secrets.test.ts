import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, signUp, startTestServer, verifyEmail, type TestServer } from '../testing/index.js'

// Issue 12: a tenant's secrets over HTTP, for its owners and admins; values never sent back.

const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))
const STRIPE = 'sk_live_51HxQpZ2eZvKYlo2C0aBcDeFgHiJkLmNoPqRs'

let server: TestServer
let owner: Client
let member: Client
let stranger: Client

beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG })
  owner = await signUp(server, 'owner@secrets.test')
  member = await signUp(server, 'member@secrets.test')
  stranger = await signUp(server, 'stranger@secrets.test')
  const acme = await owner.post('/api/auth/organization/create', { name: 'Acme', slug: 'acme' })
  expect(acme.status).toBe(200)
  expect((await stranger.post('/api/auth/organization/create', { name: 'Globex', slug: 'globex' })).status).toBe(200)
  const invite = await owner.post('/api/auth/organization/invite-member', { email: 'member@secrets.test', role: 'member', organizationId: acme.body.id })
  await verifyEmail(server, 'member@secrets.test')
  expect((await member.post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })).status).toBe(200)
})
afterAll(async () => server?.stop())

describe('tenant secrets over HTTP', () => {
  it('owners set, list and delete them; no answer ever holds a value; server-side code reads it', async () => {
    const set = await owner.request('PUT', '/api/t/acme/secrets/STRIPE_SECRET_KEY', { value: STRIPE })
    expect(set.status).toBe(200)
    expect(set.body).toMatchObject({ name: 'STRIPE_SECRET_KEY', createdBy: expect.stringMatching(/^user:/) })
    expect(set.text).not.toContain(STRIPE)
    const again = await owner.request('PUT', '/api/tenant/secrets/STRIPE_SECRET_KEY', { value: `${STRIPE}-2` })
    expect(again.status).toBe(200)
    const listed = await owner.get('/api/t/acme/secrets')
    expect(listed.status).toBe(200)
    expect(listed.body.items.map((s: { name: string }) => s.name)).toEqual(['STRIPE_SECRET_KEY'])
    expect(listed.text).not.toContain(STRIPE)
    // No route reads a value.
    const read = await owner.get('/api/t/acme/secrets/STRIPE_SECRET_KEY')
    expect(read.status).toBe(404)
    expect(read.text).not.toContain(STRIPE)
    // The app's own server-side code does.
    const tenantry = server.tenantry
    expect(await tenantry.withTenant('acme', () => tenantry.secrets.get('STRIPE_SECRET_KEY'))).toBe(`${STRIPE}-2`)

    await owner.request('PUT', '/api/t/acme/secrets/TEMP', { value: 'x' })
    expect((await owner.delete('/api/t/acme/secrets/TEMP')).status).toBe(204)
    const gone = await owner.delete('/api/t/acme/secrets/TEMP')
    expect(gone.status).toBe(404)
    expect(gone.body.error.code).toBe('NOT_FOUND')
  })

  it('members and tokens get 403, other tenants 404, and nothing changes', async () => {
    expect((await member.get('/api/t/acme/secrets')).status).toBe(403)
    const memberSet = await member.request('PUT', '/api/t/acme/secrets/STRIPE_SECRET_KEY', { value: 'evil' })
    expect(memberSet.status).toBe(403)
    expect(memberSet.body.error.code).toBe('FORBIDDEN')
    expect((await member.delete('/api/t/acme/secrets/STRIPE_SECRET_KEY')).status).toBe(403)
    expect((await stranger.get('/api/t/acme/secrets')).status).toBe(404)
    expect((await stranger.request('PUT', '/api/t/acme/secrets/X', { value: 'x' })).status).toBe(404)
    // Globex's owner sees Globex's secrets only.
    expect((await stranger.get('/api/t/globex/secrets')).body.items).toEqual([])

    const { body } = await owner.post('/api/t/acme/tokens', { name: 'rw' })
    const asToken = new Client(server.url, { authorization: `Bearer ${body.token}` })
    expect((await asToken.get('/api/tenant/secrets')).status).toBe(403)
    expect((await asToken.request('PUT', '/api/tenant/secrets/X', { value: 'x' })).status).toBe(403)

    const tenantry = server.tenantry
    expect(await tenantry.withTenant('acme', () => tenantry.secrets.get('STRIPE_SECRET_KEY'))).toBe(`${STRIPE}-2`)
    expect((await tenantry.withTenant('acme', () => tenantry.secrets.list())).map((s) => s.name)).toEqual(['STRIPE_SECRET_KEY'])
  })

  it('refuses bad names and bodies with 400 and stores nothing', async () => {
    for (const [path, body] of [
      ['/api/t/acme/secrets/1BAD', { value: 'x' }],
      ['/api/t/acme/secrets/has%20space', { value: 'x' }],
      ['/api/t/acme/secrets/a%2Fb', { value: 'x' }],
      [`/api/t/acme/secrets/${'x'.repeat(129)}`, { value: 'x' }],
      ['/api/t/acme/secrets/OK', { value: '' }],
      ['/api/t/acme/secrets/OK', { value: 42 }],
      ['/api/t/acme/secrets/OK', {}],
      ['/api/t/acme/secrets/OK', { value: 'x', secret: true }],
      ['/api/t/acme/secrets/OK', { value: 'x'.repeat(64 * 1024 + 1) }],
    ] as const) {
      const reply = await owner.request('PUT', path, body)
      expect(reply.status, `${path} ${JSON.stringify(body).slice(0, 40)}`).toBe(400)
      expect(reply.body.error.code).toBe('VALIDATION_FAILED')
    }
    expect((await owner.request('DELETE', '/api/t/acme/secrets/1BAD')).status).toBe(400)
    expect((await owner.get('/api/t/acme/secrets')).body.items.map((s: { name: string }) => s.name)).toEqual(['STRIPE_SECRET_KEY'])
  })
})
