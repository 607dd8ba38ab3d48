import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EmailMessage } from '@tenantry/server'
import { startTestServer, verifyEmail, type TestServer } from '@tenantry/server/testing'
import { createAuth, type TenantryAuthClient } from './auth.js'
import { TenantryClientError } from './errors.js'

/**
 * The members face of `createAuth` against the real server, from Node (the console's Chromium
 * walk covers the browser): a fetch with a cookie jar and the page's Origin, as a browser's.
 */
function browserLikeFetch(origin: string): typeof fetch {
  const jar = new Map<string, string>()
  return async (input, init = {}) => {
    const headers = new Headers(init.headers)
    headers.set('origin', origin)
    if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '))
    const response = await fetch(new Request(input, { ...init, headers }))
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';')
      const eq = pair!.indexOf('=')
      const value = pair!.slice(eq + 1)
      if (value === '' || /max-age=0/i.test(cookie)) jar.delete(pair!.slice(0, eq))
      else jar.set(pair!.slice(0, eq), value)
    }
    return response
  }
}

const caught = async (run: () => Promise<unknown>): Promise<TenantryClientError> => {
  try {
    await run()
  } catch (error) {
    expect(error).toBeInstanceOf(TenantryClientError)
    return error as TenantryClientError
  }
  throw new Error('expected a failure')
}

describe('createAuth().members', () => {
  let server: TestServer
  const sent: EmailMessage[] = []
  const as = () => createAuth({ baseUrl: server.url, fetch: browserLikeFetch(server.url) })
  let owner: TenantryAuthClient
  let bob: TenantryAuthClient
  beforeAll(async () => {
    server = await startTestServer({ app: { consoleDir: false, sendEmail: async (message) => void sent.push(message) } })
    owner = as()
    bob = as()
    await owner.signUp({ email: 'owner@members.test', password: 'correct horse battery' })
    await bob.signUp({ email: 'bob@members.test', password: 'correct horse battery' })
  })
  afterAll(async () => server?.stop())

  it('lists, invites, accepts once verified, changes roles, removes and leaves', async () => {
    const personal = (await owner.me())!.activeTenant!
    const alone = await owner.members.list(personal.slug)
    expect(alone.map((m) => [m.user.email, m.role])).toEqual([['owner@members.test', 'owner']])

    const acme = await owner.members.createOrganization({ name: 'Acme', slug: 'acme_members' })
    expect(acme.slug).toBe('acme_members')
    // Bad input is refused before any request, with the server's code for it.
    expect((await caught(() => owner.members.invite('acme_members', { email: 'bob@members.test', role: 'boss' as 'member' }))).code).toBe('VALIDATION_FAILED')
    expect((await caught(() => owner.members.invite('acme_members', { email: 'not an email', role: 'member' }))).code).toBe('VALIDATION_FAILED')
    expect((await caught(() => owner.members.list('no_such_workspace'))).code).toBe('ORGANIZATION_NOT_FOUND')

    const invitation = await owner.members.invite({ slug: 'acme_members' }, { email: 'bob@members.test', role: 'member' })
    expect(invitation).toMatchObject({ email: 'bob@members.test', role: 'member', status: 'pending', organizationId: acme.organizationId })
    expect((await owner.members.invitations({ organizationId: acme.organizationId })).map((i) => i.id)).toEqual([invitation.id])
    expect(sent.some((m) => m.to === 'bob@members.test' && m.text.includes(`${server.url}/invitations/${invitation.id}`))).toBe(true)

    // Unverified: a clear code, for the list and for accepting.
    expect((await caught(() => bob.members.received())).code).toBe('EMAIL_VERIFICATION_REQUIRED_FOR_INVITATION')
    const refused = await caught(() => bob.members.accept(invitation.id))
    expect(refused.code).toBe('EMAIL_VERIFICATION_REQUIRED_BEFORE_ACCEPTING_OR_REJECTING_INVITATION')
    expect(refused.status).toBe(403)
    await bob.sendVerificationEmail()
    expect(sent.filter((m) => m.to === 'bob@members.test' && m.subject === 'Verify your email address')).toHaveLength(2)

    await verifyEmail(server, 'bob@members.test')
    expect((await caught(() => bob.sendVerificationEmail())).code).toBe('EMAIL_ALREADY_VERIFIED')
    const received = await bob.members.received()
    expect(received.map((i) => [i.id, i.organizationName])).toEqual([[invitation.id, 'Acme']])
    expect(await bob.members.invitation(invitation.id)).toMatchObject({ organizationSlug: 'acme_members', inviterEmail: 'owner@members.test' })
    const accepted = await bob.members.accept(invitation.id)
    expect(accepted.member).toMatchObject({ organizationId: acme.organizationId, role: 'member' })
    expect((await bob.me())!.tenants.map((t) => t.slug)).toContain('acme_members')
    expect(await owner.members.invitations('acme_members')).toEqual([])

    const bobMember = (await owner.members.list('acme_members')).find((m) => m.user.email === 'bob@members.test')!
    // A member may not manage members: Better Auth's code.
    const notAllowed = await caught(() => bob.members.invite('acme_members', { email: 'eve@members.test', role: 'member' }))
    expect([notAllowed.status, notAllowed.code]).toEqual([403, 'YOU_ARE_NOT_ALLOWED_TO_INVITE_USERS_TO_THIS_ORGANIZATION'])
    // Nor remove the only owner, whoever asks.
    expect((await caught(() => bob.members.remove('acme_members', 'owner@members.test'))).code).toBe('YOU_CANNOT_LEAVE_THE_ORGANIZATION_AS_THE_ONLY_OWNER')
    await owner.members.changeRole('acme_members', bobMember.id, 'admin')
    expect((await bob.me())!.tenants.find((t) => t.slug === 'acme_members')?.role).toBe('admin')
    await owner.members.remove('acme_members', bobMember.id)
    expect((await bob.me())!.tenants.map((t) => t.slug)).not.toContain('acme_members')

    // Invited again, bob declines; a second invitation is cancelled; then he joins and leaves.
    const second = await owner.members.invite('acme_members', { email: 'bob@members.test', role: 'member' })
    await bob.members.reject(second.id)
    const third = await owner.members.invite('acme_members', { email: 'bob@members.test', role: 'member' })
    await owner.members.cancelInvitation(third.id)
    expect(await bob.members.received()).toEqual([])
    const fourth = await owner.members.invite('acme_members', { email: 'bob@members.test', role: 'member' })
    await bob.members.accept(fourth.id)
    await bob.members.leave('acme_members')
    expect((await owner.members.list('acme_members')).map((m) => m.user.email)).toEqual(['owner@members.test'])
    // The last owner cannot leave: Better Auth's code, as a client error.
    expect((await caught(() => owner.members.leave('acme_members'))).code).toBe('YOU_CANNOT_LEAVE_THE_ORGANIZATION_AS_THE_ONLY_OWNER')
  })
})
