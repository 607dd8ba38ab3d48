import type { Logger } from 'tenantry'

/** One email the server sends (to a user of this deployment). */
export interface EmailMessage {
  to: string
  subject: string
  text: string
}

/**
 * How the server sends email: the app's own mailer (SMTP, an email API…), set with
 * `createApp({ sendEmail })`. Tenantry ships none; without one, what would have been sent is
 * logged (without the address or the text) so an operator can see it happen.
 */
export type EmailSender = (message: EmailMessage) => Promise<void>

/**
 * What the owner of an existing account is told when someone signs up with their email. Sign-up
 * answers the same for a new and an existing email (so it does not reveal which accounts
 * exist); the owner hears of it here instead.
 */
export function existingAccountNotice(email: string, baseURL: string): EmailMessage {
  return {
    to: email,
    subject: 'Someone tried to sign up with your email',
    text:
      `Someone tried to create a new account on ${baseURL} with this email address, which already has one.\n\n` +
      'If it was you, sign in with your existing account (or reset your password). If not, you can ignore this email: nothing was changed.\n',
  }
}

/**
 * The link that proves a user owns their email address (sent on sign-up, and again on request).
 * `url` is Better Auth's `/api/auth/verify-email?token=…` link, which marks the email verified
 * and then goes to the console: accepting an invitation needs a verified email.
 */
export function verificationEmail(email: string, url: string, baseURL: string): EmailMessage {
  return {
    to: email,
    subject: 'Verify your email address',
    text:
      `To confirm that this address is yours on ${baseURL}, open this link:\n\n${url}\n\n` +
      'You need a verified email to accept invitations to workspaces. If you did not create an account, you can ignore this email.\n',
  }
}

/** What an invitation says: who invites whom to which workspace, with the console page that accepts it. */
export interface InvitationDetails {
  /** The invitation's id: the console's `/invitations/<id>` page shows and accepts it. */
  id: string
  email: string
  role: string
  organizationName: string
  /** The inviter, as their name or email. */
  inviter: string
}

/** The invitation to a workspace (an organization): a link to the console page that accepts it, `<baseURL>/invitations/<id>`. */
export function invitationEmail(invitation: InvitationDetails, baseURL: string): EmailMessage {
  const url = `${baseURL.replace(/\/+$/, '')}/invitations/${encodeURIComponent(invitation.id)}`
  return {
    to: invitation.email,
    subject: `${invitation.inviter} invited you to ${invitation.organizationName}`,
    text:
      `${invitation.inviter} invited you to join the workspace ${invitation.organizationName} on ${baseURL} as ${invitation.role}.\n\n` +
      `To accept, open:\n\n${url}\n\n` +
      `Sign in (or create an account) with ${invitation.email} and verify that address first. If you did not expect this, you can ignore this email.\n`,
  }
}

/** The sender used when the app configures none: logs that a message was due, not its content. */
export function loggingEmailSender(logger: Logger): EmailSender {
  return async (message) => {
    logger.info({ subject: message.subject }, 'An email was due but no email sender is configured (createApp({ sendEmail }))')
  }
}
