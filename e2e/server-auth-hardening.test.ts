import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createAuthClient } from 'better-auth/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, signUp, startTestServer, verifyEmail, type TestServer } from '@tenantry/server/testing'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../tenantry.config.ts', import.meta.url))

// Regressions for the auth findings of issue 9, over HTTP against the real server and Better Auth.
let server: TestServer
beforeAll(async () => {
  server = await startTestServer({ config: REPO_CONFIG, env: { TENANTRY_PLATFORM_ADMINS: 'root@six.test' } })
})
afterAll(async () => server?.stop())

/** Signs `email` up, verifies it, and has them accept an invitation to `orgId` as `role`. */
async function joinAs(owner: Client, orgId: string, email: string, role: 'member' | 'admin'): Promise<Client> {
  const client = await signUp(server, email)
  await verifyEmail(server, email)
  const invite = await owner.post('/api/auth/organization/invite-member', { email, role, organizationId: orgId })
  expect(invite.status).toBe(200)
  const accepted = await client.post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })
  expect(accepted.status, accepted.text).toBe(200)
  return client
}

async function memberId(owner: Client, orgId: string, email: string): Promise<string> {
  const full = await owner.get(`/api/auth/organization/get-full-organization?organizationId=${orgId}`)
  const member = (full.body.members as Array<{ id: string; user: { email: string } }>).find((m) => m.user.email === email)
  return member!.id
}

describe('tokens do not outlive their creator’s right to manage the tenant (issue 9 #5)', () => {
  it('revokes the tokens of an admin who is removed, demoted or leaves, and keeps the others', async () => {
    const owner = await signUp(server, 'owner@five.test')
    const org = await owner.post('/api/auth/organization/create', { name: 'Five', slug: 'five' })
    expect(org.status).toBe(200)
    const removed = await joinAs(owner, org.body.id, 'removed@five.test', 'admin')
    const demoted = await joinAs(owner, org.body.id, 'demoted@five.test', 'admin')
    const leaver = await joinAs(owner, org.body.id, 'leaver@five.test', 'admin')

    const tokenOf = async (client: Client) => {
      const created = await client.post('/api/t/five/tokens', { name: 'ci' })
      expect(created.status).toBe(201)
      return new Client(server.url, { authorization: `Bearer ${created.body.token}` })
    }
    const [ownerToken, removedToken, demotedToken, leaverToken] = [await tokenOf(owner), await tokenOf(removed), await tokenOf(demoted), await tokenOf(leaver)]
    for (const token of [ownerToken, removedToken, demotedToken, leaverToken]) {
      expect((await token.get('/api/t/five/data/jobs')).status).toBe(200)
    }

    const removal = await owner.post('/api/auth/organization/remove-member', { memberIdOrEmail: 'removed@five.test', organizationId: org.body.id })
    expect(removal.status, removal.text).toBe(200)
    expect((await removedToken.get('/api/t/five/data/jobs')).status).toBe(401)
    expect((await removedToken.post('/api/t/five/data/jobs', { company: 'x', title: 'y', start_date: '2020-01-01' })).status).toBe(401)

    const demotion = await owner.post('/api/auth/organization/update-member-role', {
      memberId: await memberId(owner, org.body.id, 'demoted@five.test'),
      role: 'member',
      organizationId: org.body.id,
    })
    expect(demotion.status, demotion.text).toBe(200)
    expect((await demotedToken.get('/api/t/five/data/jobs')).status).toBe(401)

    const left = await leaver.post('/api/auth/organization/leave', { organizationId: org.body.id })
    expect(left.status, left.text).toBe(200)
    expect((await leaverToken.get('/api/t/five/data/jobs')).status).toBe(401)

    expect((await ownerToken.get('/api/t/five/data/jobs')).status).toBe(200)
    const listed = (await owner.get('/api/t/five/tokens')).body.items as Array<{ createdBy: string; revokedAt: string | null }>
    expect(listed.filter((t) => t.revokedAt === null)).toHaveLength(1)
  })
})

describe('invitations need the invited email verified (issue 9 #4)', () => {
  it('refuses an unverified account with the invited address, and admits it once verified', async () => {
    const owner = await signUp(server, 'owner@four.test')
    const org = await owner.post('/api/auth/organization/create', { name: 'Four', slug: 'four' })
    const invite = await owner.post('/api/auth/organization/invite-member', { email: 'invited@four.test', role: 'admin', organizationId: org.body.id })
    expect(invite.status).toBe(200)

    // Anyone can sign up claiming the invited address; knowing the invitation id is not enough.
    const claimant = await signUp(server, 'invited@four.test')
    const refused = await claimant.post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })
    expect(refused.status).toBe(403)
    expect((await claimant.get('/api/t/four/tokens')).status).toBe(404)
    expect((await claimant.post('/api/auth/organization/reject-invitation', { invitationId: invite.body.id })).status).toBe(403)

    await verifyEmail(server, 'invited@four.test')
    const accepted = await claimant.post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })
    expect(accepted.status, accepted.text).toBe(200)
    expect((await claimant.get('/api/t/four/tokens')).status).toBe(200)
  })
})

describe('cookie-authenticated state changes check Origin and take only JSON (issue 9 #6)', () => {
  it('refuses a cross-site token creation carrying the session cookie, and creates nothing', async () => {
    const owner = await signUp(server, 'owner@six.test')
    const tenantId = (await owner.get('/api/me')).body.activeTenant.id as string
    const count = async () => (await server.tenantry.tokens.list((await server.tenantry.catalog.findTenantById(tenantId))!.slug)).length

    const forgeries: Array<Record<string, string>> = [{ origin: 'https://evil.example' }, { origin: 'null' }, { origin: '', referer: 'https://evil.example/page' }]
    for (const headers of forgeries) {
      const forged = await owner.post('/api/tenant/tokens', { name: 'forged' }, headers)
      expect(forged.status, JSON.stringify(headers)).toBe(403)
      expect(forged.body.error.code).toBe('INVALID_ORIGIN')
    }
    // A browser's form or text/plain post needs no preflight: refused whatever its origin.
    const text = await owner.post('/api/tenant/tokens', '{"name":"text"}', { 'content-type': 'text/plain' })
    expect(text.status).toBe(415)
    const form = await owner.post('/api/tenant/tokens', 'name=form', { 'content-type': 'application/x-www-form-urlencoded' })
    expect(form.status).toBe(415)
    expect((await owner.post('/api/me/active-tenant', { slug: 'five' }, { origin: 'https://evil.example' })).status).toBe(403)
    expect(await count()).toBe(0)

    const sameOrigin = await owner.post('/api/tenant/tokens', { name: 'mine' })
    expect(sameOrigin.status).toBe(201)
    const byReferer = await owner.post('/api/tenant/tokens', { name: 'referer' }, { origin: '', referer: `${server.url}/settings` })
    expect(byReferer.status).toBe(201)
    expect(await count()).toBe(2)

    // A token is not a cookie: no browser sends it by itself, so its origin does not matter.
    const token = new Client(server.url, { authorization: `Bearer ${sameOrigin.body.token}`, origin: 'https://evil.example' })
    expect((await token.post('/api/tenant/data/jobs', { company: 'x', title: 'y', start_date: '2020-01-01' })).status).toBe(201)
  })

  it('every state-changing route refuses a cross-site cookie and form or text bodies', async () => {
    const root = await signUp(server, 'root@six.test')
    await verifyEmail(server, 'root@six.test')
    const slug = (await root.get('/api/me')).body.activeTenant.slug as string
    const doc = (await root.get('/openapi.json')).body as { paths: Record<string, Record<string, unknown>> }
    const routes = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods)
        .filter((m) => !['get', 'head', 'options'].includes(m))
        .map((method) => ({ method: method.toUpperCase(), path: path.replace('{slug}', slug).replace(/\{[^}]+\}/g, 'x1') })),
    )
    expect(routes.length).toBeGreaterThan(10)
    for (const { method, path } of routes) {
      if (/^\/v[23]\//.test(path)) continue // SQL-over-HTTP takes only tokens
      const crossSite = await root.request(method, path, {}, { origin: 'https://evil.example' })
      expect(crossSite.status, `${method} ${path} cross-site`).toBe(403)
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
        const reply = await root.request(method, path, 'a=1', { 'content-type': contentType })
        expect(reply.status, `${method} ${path} ${contentType}`).toBe(415)
      }
    }
    expect(await server.tenantry.catalog.findTenantBySlug(slug)).toMatchObject({ status: 'ready' })
  })
})

describe('/metrics is not public (issue 9 #8)', () => {
  it('is not served without a metrics token configured', async () => {
    const reply = await fetch(`${server.url}/metrics`)
    expect(reply.status).toBe(404)
    expect(await reply.text()).not.toContain('tenantry_http_requests_total')
  })
})

describe('a failed switch of the active tenant changes nothing (issue 9 #11)', () => {
  it('keeps the active tenant when set-active names an organization the user is not in', async () => {
    const other = await signUp(server, 'other@eleven.test')
    const foreign = await other.post('/api/auth/organization/create', { name: 'Eleven', slug: 'eleven' })
    const user = await signUp(server, 'user@eleven.test')
    const before = (await user.get('/api/me')).body.activeTenant
    expect(before).not.toBeNull()

    for (const body of [{ organizationId: foreign.body.id }, { organizationSlug: 'eleven' }, { organizationId: 'no-such-organization' }]) {
      const refused = await user.post('/api/auth/organization/set-active', body)
      expect(refused.status, JSON.stringify(body)).toBe(403)
      expect((await user.get('/api/me')).body.activeTenant, JSON.stringify(body)).toEqual(before)
    }
    expect((await user.get('/api/tenant/data/jobs')).status).toBe(200)
  })
})

describe('files under the home are private (issue 9 #12)', () => {
  it('creates directories 0700 and files 0600 (sealed templates 0400): catalog, its WAL, tenant files, templates, auth secret', async () => {
    const user = await signUp(server, 'user@twelve.test')
    expect((await user.post('/api/tenant/data/jobs', { company: 'x', title: 'y', start_date: '2020-01-01' })).status).toBe(201)
    // A tenant's files too (regression: the upload's temporary folder was made 0755).
    const upload = await user.request('PUT', '/api/tenant/files/cv/2026.pdf', '%PDF-1.7', { 'content-type': 'application/pdf' })
    expect(upload.status, upload.text).toBeLessThan(300)

    const seen: Array<{ path: string; mode: number; dir: boolean }> = []
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name)
        seen.push({ path, mode: statSync(path).mode & 0o777, dir: entry.isDirectory() })
        if (entry.isDirectory()) walk(path)
      }
    }
    walk(server.home)
    const names = seen.map((s) => s.path.slice(server.home.length + 1))
    for (const expected of ['catalog.db', 'catalog.db-wal', 'auth-secret']) expect(names).toContain(expected)
    expect(names.some((n) => /^tenants\/t[a-z0-9]{19}\.db-wal$/.test(n))).toBe(true)
    expect(names.some((n) => n.startsWith('tenants/.templates/'))).toBe(true)
    expect(names.some((n) => /^files\/t[a-z0-9]{19}\/data\/cv\/2026\.pdf$/.test(n))).toBe(true)
    for (const { path, mode, dir } of seen) {
      if (dir) expect(mode.toString(8), path).toBe('700')
      else expect(mode & 0o077, `${path} is ${mode.toString(8)}`).toBe(0)
    }
  })
})

describe('Better Auth’s routes answer in Better Auth’s shape (issue 9 #15)', () => {
  it('lets better-auth/client read its own errors', async () => {
    await signUp(server, 'user@fifteen.test')
    // As a browser on the server's own site would, it sends its Origin (Better Auth requires one on sign-in).
    const browserFetch: typeof fetch = (input, init) => {
      const headers = new Headers(init?.headers)
      headers.set('origin', server.url)
      return fetch(input, { ...init, headers })
    }
    const client = createAuthClient({ baseURL: `${server.url}/api/auth`, fetchOptions: { customFetchImpl: browserFetch } })
    const wrong = await client.signIn.email({ email: 'user@fifteen.test', password: 'not the password' })
    expect(wrong.data).toBeNull()
    expect(wrong.error?.status).toBe(401)
    expect(wrong.error?.code).toBe('INVALID_EMAIL_OR_PASSWORD')
    expect(wrong.error?.message).toBeTypeOf('string')

    const right = await client.signIn.email({ email: 'user@fifteen.test', password: 'correct horse battery' })
    expect(right.error).toBeNull()
    expect(right.data?.user.email).toBe('user@fifteen.test')
  })
})

describe('sign-in is throttled per address, in the catalog (issue 9 #7)', () => {
  it('refuses the 11th attempt in a window, the right password included, and keeps the count in the catalog', async () => {
    await signUp(server, 'user@seven.test')
    const attempt = (password: string) => new Client(server.url).post('/api/auth/sign-in/email', { email: 'user@seven.test', password })
    // Other tests of this file sign in from this address too: count what is left of the window.
    let wrong = 0
    while (wrong < 20 && (await attempt('not the password')).status === 401) wrong++
    expect(wrong).toBeGreaterThan(0)
    expect(wrong).toBeLessThanOrEqual(10)
    const right = await attempt('correct horse battery')
    expect(right.status).toBe(429)
    // Better Auth keeps the counts in the catalog: every server process on it shares them.
    const rows = await (server.tenantry.catalog.db as any).selectFrom('rateLimit').selectAll().execute()
    expect(rows.some((r: { key: string }) => r.key.includes('sign-in'))).toBe(true)
  })
})
