import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, it } from 'vitest'
import type { EmailMessage } from '@tenantry/server'
import { Client, signUp, startTestServer, type TestServer } from '@tenantry/server/testing'
import { invitationEmail, verificationEmail } from './email.js'

/** The repository's own config (the CV builder's collections). */
const REPO_CONFIG = fileURLToPath(new URL('../../../../tenantry.config.ts', import.meta.url))

describe('the email messages', () => {
  it('a verification email carries the link and says why it matters', ({ expect }) => {
    const message = verificationEmail('bob@example.com', 'https://t.example/api/auth/verify-email?token=abc&callbackURL=%2F', 'https://t.example')
    expect(message.to).toBe('bob@example.com')
    expect(message.subject).toBe('Verify your email address')
    expect(message.text).toContain('https://t.example/api/auth/verify-email?token=abc&callbackURL=%2F')
    expect(message.text).toContain('invitations')
  })

  it("an invitation links to the console's /invitations/<id> page on the server's URL", ({ expect }) => {
    const message = invitationEmail({ id: 'inv 1', email: 'bob@example.com', role: 'member', organizationName: 'Acme', inviter: 'Alice' }, 'https://t.example/')
    expect(message).toMatchObject({ to: 'bob@example.com', subject: 'Alice invited you to Acme' })
    expect(message.text).toContain('https://t.example/invitations/inv%201\n')
    expect(message.text).toContain('as member')
  })
})

describe('invitations need a verified email, which the emailed link verifies', () => {
  let server: TestServer
  const sent: EmailMessage[] = []
  const to = (email: string, subject: RegExp) => sent.filter((m) => m.to === email && subject.test(m.subject))
  /** The one link in a message. */
  const linkIn = (message: EmailMessage) => /^https?:\/\/\S+$/m.exec(message.text)![0]

  beforeAll(async () => {
    server = await startTestServer({ config: REPO_CONFIG, app: { consoleDir: false, sendEmail: async (message) => void sent.push(message) } })
  })
  afterAll(async () => server?.stop())

  it('sends the verification link on sign-up, refuses an unverified accept with a clear code, accepts once verified', async ({ expect }) => {
    const owner = await signUp(server, 'owner@invites.test')
    const bob = await signUp(server, 'bob@invites.test')
    await expect.poll(() => to('bob@invites.test', /^Verify/).length).toBe(1)
    const verifyLink = linkIn(to('bob@invites.test', /^Verify/)[0]!)
    expect(verifyLink.startsWith(`${server.url}/api/auth/verify-email?token=`)).toBe(true)

    const acme = await owner.post('/api/auth/organization/create', { name: 'Acme', slug: 'acme_invites' })
    expect(acme.status).toBe(200)
    // The owner is unverified too: inviting does not need it, accepting does.
    const invite = await owner.post('/api/auth/organization/invite-member', { email: 'bob@invites.test', role: 'member', organizationId: acme.body.id })
    expect(invite.status).toBe(200)
    const invitationMails = to('bob@invites.test', /invited you to Acme$/)
    expect(invitationMails).toHaveLength(1)
    expect(invitationMails[0]!.subject).toBe('owner invited you to Acme')
    expect(linkIn(invitationMails[0]!)).toBe(`${server.url}/invitations/${invite.body.id}`)

    const refused = await bob.post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })
    expect(refused.status).toBe(403)
    expect(refused.body.code).toBe('EMAIL_VERIFICATION_REQUIRED_BEFORE_ACCEPTING_OR_REJECTING_INVITATION')
    expect(refused.body.message).toMatch(/verif/i)
    const unreadable = await bob.get(`/api/auth/organization/get-invitation?id=${invite.body.id}`)
    expect(unreadable.status).toBe(403)
    expect(unreadable.body.code).toBe('EMAIL_VERIFICATION_REQUIRED_FOR_INVITATION')

    // The link verifies and goes to the console.
    const verified = await bob.get(verifyLink)
    expect(verified.status).toBe(302)
    expect(verified.headers.get('location')).toBe('/')
    const session = await bob.get('/api/auth/get-session')
    expect(session.body.user.emailVerified).toBe(true)

    const accepted = await bob.post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })
    expect(accepted.status).toBe(200)
    const me = await bob.get('/api/me')
    expect(me.body.tenants.map((t: { slug: string; role: string }) => `${t.slug}:${t.role}`)).toContain('acme_invites:member')
  })

  it('resends the verification email on request, and says so when the email is already verified', async ({ expect }) => {
    const carol = await signUp(server, 'carol@invites.test')
    await expect.poll(() => to('carol@invites.test', /^Verify/).length).toBe(1)
    const again = await carol.post('/api/auth/send-verification-email', { email: 'carol@invites.test', callbackURL: '/members' })
    expect(again.status).toBe(200)
    const mails = to('carol@invites.test', /^Verify/)
    expect(mails).toHaveLength(2)
    const link = linkIn(mails[1]!)
    expect(link).toContain('callbackURL=%2Fmembers')
    const verified = await carol.get(link)
    expect(verified.headers.get('location')).toBe('/members')

    const already = await carol.post('/api/auth/send-verification-email', { email: 'carol@invites.test' })
    expect(already.status).toBe(400)
    expect(already.body.code).toBe('EMAIL_ALREADY_VERIFIED')
    // Someone else's address is refused, not mailed.
    const other = await carol.post('/api/auth/send-verification-email', { email: 'bob@invites.test' })
    expect(other.status).toBe(400)
    expect(other.body.code).toBe('EMAIL_MISMATCH')
  })

  it('a stranger with the link of an invitation to someone else cannot accept it', async ({ expect }) => {
    const owner = await signUp(server, 'owner2@invites.test')
    const acme = await owner.post('/api/auth/organization/create', { name: 'Globex', slug: 'globex_invites' })
    const invite = await owner.post('/api/auth/organization/invite-member', { email: 'dave@invites.test', role: 'member', organizationId: acme.body.id })
    expect(invite.status).toBe(200)
    const eve = await signUp(server, 'eve@invites.test')
    const refused = await eve.post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })
    expect(refused.status).toBe(403)
    expect(refused.body.code).toBe('YOU_ARE_NOT_THE_RECIPIENT_OF_THE_INVITATION')
    expect((await new Client(server.url).post('/api/auth/organization/accept-invitation', { invitationId: invite.body.id })).status).toBe(401)
  })
})

describe('a mailer that fails', () => {
  it('does not turn a stored invitation into a 500: it is pending, listed, and can be cancelled and sent again', async ({ expect }) => {
    let failing = true
    const sent: EmailMessage[] = []
    const server = await startTestServer({
      config: REPO_CONFIG,
      app: {
        consoleDir: false,
        sendEmail: async (message) => {
          if (failing && /invited you/.test(message.subject)) throw new Error('SMTP said no')
          sent.push(message)
        },
      },
    })
    try {
      const owner = await signUp(server, 'owner@mailer.test')
      const org = await owner.post('/api/auth/organization/create', { name: 'Mailer', slug: 'mailer_fails' })
      expect(org.status).toBe(200)
      const invite = await owner.post('/api/auth/organization/invite-member', { email: 'dan@mailer.test', role: 'member', organizationId: org.body.id })
      expect(invite.status).toBe(200)
      const pending = await owner.get(`/api/auth/organization/list-invitations?organizationId=${org.body.id}`)
      expect(pending.body.map((i: { id: string; status: string }) => [i.id, i.status])).toEqual([[invite.body.id, 'pending']])

      failing = false
      expect((await owner.post('/api/auth/organization/cancel-invitation', { invitationId: invite.body.id })).status).toBe(200)
      const again = await owner.post('/api/auth/organization/invite-member', { email: 'dan@mailer.test', role: 'member', organizationId: org.body.id })
      expect(again.status).toBe(200)
      expect(sent.filter((m) => m.to === 'dan@mailer.test' && /invited you/.test(m.subject))).toHaveLength(1)
    } finally {
      await server.stop()
    }
  })
})
