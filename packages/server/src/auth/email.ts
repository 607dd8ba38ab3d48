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

/** The sender used when the app configures none: logs that a message was due, not its content. */
export function loggingEmailSender(logger: Logger): EmailSender {
  return async (message) => {
    logger.info({ subject: message.subject }, 'An email was due but no email sender is configured (createApp({ sendEmail }))')
  }
}
