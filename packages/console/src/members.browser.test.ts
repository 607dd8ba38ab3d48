import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EmailMessage } from '@tenantry/server'
import { checkPage, PASSWORD, startConsole, withChromium, type ConsoleHarness } from './testing/console.fixture.js'

/**
 * Members and invitations in real Chromium (issue 11), with the emails the server sends
 * captured (`createApp({ sendEmail })`) and their links opened in the browser, as a person
 * would: the owner verifies their email, creates an organization and invites bob; bob follows
 * the invitation link signed out, creates his account, is told plainly that his email is not
 * verified, has the link sent again, verifies, and accepts; the owner makes him admin, then
 * removes him. Every page passes axe-core (see `checkPage`).
 */
const OWNER = 'olga@example.com'
const BOB = 'bob@example.com'

describe.skipIf(!withChromium('the members browser test'))('members and invitations in the console', () => {
  let harness: ConsoleHarness
  const sent: EmailMessage[] = []
  /** The messages to `to` whose subject matches. */
  const mails = (to: string, subject: RegExp) => sent.filter((m) => m.to === to && subject.test(m.subject))
  /** The link on its own line in a message. */
  const linkIn = (message: EmailMessage) => /^https?:\/\/\S+$/m.exec(message.text)![0]
  /** The latest message to `to` matching `subject`, once it has come. */
  async function latest(to: string, subject: RegExp, count = 1): Promise<EmailMessage> {
    await expect.poll(() => mails(to, subject).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(count)
    return mails(to, subject).at(-1)!
  }

  async function signUpOnPage(page: Page, name: string, email: string) {
    await page.getByRole('heading', { name: 'Create an account' }).waitFor()
    await page.getByLabel('Name').fill(name)
    await page.getByLabel('Email').fill(email)
    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Create account' }).click()
  }

  /** The workspace switcher's option labels. */
  const workspaces = (page: Page) => page.getByLabel('Workspace').locator('option').allInnerTexts()

  beforeAll(async () => {
    harness = await startConsole({ env: { TENANTRY_TRUSTED_ORIGINS: '' }, app: { sendEmail: async (message) => void sent.push(message) } })
  }, 180_000)

  afterAll(async () => {
    await harness?.stop()
  })

  it('owner invites bob; bob verifies his email and accepts; the owner makes him admin, then removes him', async () => {
    const owner = await harness.open()
    const bob = await harness.open({ viewport: { width: 375, height: 812 } })
    try {
      // The owner signs up and verifies through the emailed link, which lands on the console.
      await owner.page.goto('/sign-up')
      await signUpOnPage(owner.page, 'Olga', OWNER)
      await owner.page.getByRole('link', { name: 'Members' }).click()
      await owner.page.getByRole('heading', { name: 'Members', level: 1 }).waitFor()
      // A personal workspace: one member, no invite form.
      await owner.page.getByText('This is your personal workspace').waitFor()
      expect(await owner.page.getByRole('form', { name: 'Invite someone' }).count()).toBe(0)
      // Not verified yet: said plainly, with the API's message.
      await owner.page.getByRole('heading', { name: 'Verify your email address' }).waitFor()
      await expect.poll(() => owner.page.getByRole('alert').first().innerText()).toMatch(/EMAIL_VERIFICATION_REQUIRED_FOR_INVITATION/)
      await checkPage(owner.page, 'members-personal-unverified')

      const verifyOwner = linkIn(await latest(OWNER, /^Verify your email/))
      await owner.page.goto(verifyOwner)
      await owner.page.getByRole('heading', { level: 1 }).first().waitFor()
      expect(new URL(owner.page.url()).pathname).toBe('/')
      await owner.page.getByRole('link', { name: 'Members' }).click()
      await owner.page.getByText('No invitations for you.').waitFor()
      await checkPage(owner.page, 'members-personal')

      // A new organization, from the form: it becomes the active workspace.
      const orgForm = owner.page.getByRole('form', { name: 'New organization' })
      await orgForm.getByLabel('Organization name').fill('Acme')
      await orgForm.getByLabel('Slug').fill('acme')
      await orgForm.getByRole('button', { name: 'Create organization' }).click()
      await owner.page.getByRole('heading', { name: 'Members of Acme' }).waitFor()
      expect(await owner.page.getByLabel('Workspace').inputValue()).toBe('acme')

      const invite = owner.page.getByRole('form', { name: 'Invite someone' })
      const sendInvitation = async () => {
        await invite.getByLabel('Email').fill(BOB)
        await invite.getByLabel('Role', { exact: true }).selectOption('member')
        await invite.getByRole('button', { name: 'Send invitation' }).click()
      }
      await sendInvitation()
      await owner.page.getByText(`Invitation sent to ${BOB}.`).waitFor()
      await owner.page.getByRole('button', { name: `Cancel the invitation of ${BOB}` }).waitFor()
      // Inviting again is refused with the API's message, not a blank page.
      await sendInvitation()
      await expect.poll(() => owner.page.getByRole('alert').first().innerText()).toMatch(/ALREADY_INVITED/)
      await checkPage(owner.page, 'members-owner')

      const invitation = await latest(BOB, /invited you to Acme$/)
      const invitationLink = linkIn(invitation)
      expect(invitationLink).toMatch(new RegExp(`^${harness.server.url}/invitations/[^/]+$`))

      // Bob follows the link signed out: signs up from there and comes back to it.
      await bob.page.goto(invitationLink)
      await bob.page.getByRole('heading', { name: 'Invitation' }).waitFor()
      await bob.page.getByRole('link', { name: 'Create an account' }).click()
      await signUpOnPage(bob.page, 'Bob', BOB)
      await bob.page.waitForURL(invitationLink)
      // Not verified: the API's message and a button that sends the link again (back to this page).
      await bob.page.getByRole('heading', { name: 'Verify your email address' }).waitFor()
      await expect.poll(() => bob.page.getByRole('alert').first().innerText()).toMatch(/verif/i)
      await checkPage(bob.page, 'invitation-verify-needed')
      await bob.page.getByRole('button', { name: 'Resend verification email' }).click()
      await bob.page.getByText('Sent: open the link in the email.').waitFor()
      // Both links (sign-up's and the resent one) come back to the invitation.
      expect(decodeURIComponent(linkIn(await latest(BOB, /^Verify your email/)))).toContain(`callbackURL=${invitationLink}`)
      const resent = await latest(BOB, /^Verify your email/, 2)
      await bob.page.goto(linkIn(resent))
      await bob.page.waitForURL(invitationLink)

      // Verified: the invitation shows, and is accepted.
      await bob.page.getByText(/invited you \(bob@example\.com\) to join Acme as member/).waitFor()
      await checkPage(bob.page, 'invitation')
      await bob.page.getByRole('button', { name: 'Accept invitation' }).click()
      await bob.page.getByText('You joined Acme.').waitFor()
      await expect.poll(() => bob.page.getByLabel('Workspace').inputValue()).toBe('acme')

      // The owner sees bob, and makes him admin.
      await owner.page.reload()
      const role = owner.page.getByLabel(`Role of ${BOB}`)
      await role.waitFor()
      await expect.poll(() => owner.page.getByText('No pending invitations.').count()).toBe(1)
      await role.selectOption('admin')
      await owner.page.getByText(`${BOB} is now admin.`).waitFor()
      expect(await owner.page.getByLabel(`Role of ${BOB}`).inputValue()).toBe('admin')

      await bob.page.reload()
      await bob.page.getByLabel('Workspace').waitFor()
      expect(await workspaces(bob.page)).toContain('Acme (admin)')
      await bob.page.goto('/members')
      await bob.page.getByRole('heading', { name: 'Members of Acme' }).waitFor()
      await checkPage(bob.page, 'members-admin-375')

      // The owner removes bob: Acme leaves his switcher.
      await owner.page.getByRole('button', { name: `Remove ${BOB}` }).click()
      await owner.page.getByText(`${BOB} was removed.`).waitFor()
      expect(await owner.page.getByLabel(`Role of ${BOB}`).count()).toBe(0)
      await bob.page.reload()
      await bob.page.getByRole('heading', { name: 'Members', level: 1 }).waitFor()
      await expect.poll(() => workspaces(bob.page)).not.toContain('Acme (admin)')
      expect((await workspaces(bob.page)).some((w) => w.startsWith('Acme'))).toBe(false)
    } finally {
      await owner.context.close()
      await bob.context.close()
    }
  }, 180_000)

  it('an unknown invitation says so in the API’s words; signed out, /members asks to sign in', async () => {
    const { context, page } = await harness.open({ path: '/members' })
    try {
      await page.getByRole('link', { name: 'Sign in' }).first().waitFor()
      await page.getByText("to see your workspaces' members").waitFor()
      await page.goto('/sign-up')
      await signUpOnPage(page, 'Carol', 'carol@example.com')
      await page.getByRole('link', { name: 'Members' }).waitFor()
      await page.goto(linkIn(await latest('carol@example.com', /^Verify your email/)))
      await page.goto('/invitations/no-such-invitation')
      await expect.poll(() => page.getByRole('alert').first().innerText()).toMatch(/INVITATION_NOT_FOUND/)
      await checkPage(page, 'invitation-not-found')
    } finally {
      await context.close()
    }
  }, 120_000)
})
