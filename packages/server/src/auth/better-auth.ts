import { betterAuth, type BetterAuthOptions } from 'better-auth'
import { createAuthMiddleware, getSessionFromCtx } from 'better-auth/api'
import { getMigrations } from 'better-auth/db/migration'
import { genericOAuth } from 'better-auth/plugins'
import type { Kysely } from 'kysely'
import type { Logger, Tenantry } from 'tenantry'
import { Organizations, tenantOrganizations } from '../tenants/organizations.js'
import { existingAccountNotice, loggingEmailSender, verificationEmail, type EmailSender } from './email.js'
import { loadAuthSecret } from './secret.js'

export interface TenantryAuthOptions {
  tenantry: Tenantry
  /** Public URL of the server, e.g. `http://127.0.0.1:3000`. */
  baseURL: string
  /** @default process.env */
  env?: NodeJS.ProcessEnv
  /** Where Better Auth's own log lines go. @default console */
  log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void
  /** Where failures the organization hooks handle are reported (pino-compatible). @default tenantry.logger */
  logger?: Logger
  /**
   * Sign-in throttling: at most `max` attempts per `windowSeconds` from one IP address (the
   * address comes in `CLIENT_IP_HEADER`, which the server sets), counted in the catalog's
   * `rateLimit` table; `false` turns it off. @default { max: 10, windowSeconds: 60 }
   */
  signInLimit?: { max: number; windowSeconds: number } | false
  /** How emails are sent (see `EmailSender`). @default logs that one was due */
  sendEmail?: EmailSender
  /** Origins of apps served elsewhere, trusted beside the server's own: `server.cors.origins` (see cors/index.ts). @default [] */
  corsOrigins?: readonly string[]
}

/**
 * The request header that carries the client's address to Better Auth's rate limiter. The
 * server sets it from the connection (Fastify's `request.ip`), replacing whatever a client sent.
 */
export const CLIENT_IP_HEADER = 'x-tenantry-client-ip'

/** The generic OpenID provider's id: `POST /api/auth/sign-in/social { provider: 'oidc' }`, callback `/api/auth/callback/oidc`. */
export const OIDC_PROVIDER_ID = 'oidc'

/**
 * Better Auth over the catalog database: email + password, GitHub/Google when their
 * env vars are set, a generic OpenID provider (`TENANTRY_OIDC_ISSUER`, `_CLIENT_ID`,
 * `_CLIENT_SECRET`), and organizations that are tenants (one organization per tenant,
 * same slug, linked by `organization.tenantId`).
 */
export function createTenantryAuth(options: TenantryAuthOptions) {
  const { tenantry } = options
  const env = options.env ?? process.env
  const db = tenantry.catalog.db as unknown as Kysely<any>
  const signInLimit = options.signInLimit ?? { max: 10, windowSeconds: 60 }
  const sendEmail = options.sendEmail ?? loggingEmailSender(options.logger ?? tenantry.logger)

  const socialProviders: BetterAuthOptions['socialProviders'] = {}
  if (env.GITHUB_CLIENT_ID && env.GITHUB_CLIENT_SECRET) {
    socialProviders.github = { clientId: env.GITHUB_CLIENT_ID, clientSecret: env.GITHUB_CLIENT_SECRET }
  }
  if (env.GOOGLE_CLIENT_ID && env.GOOGLE_CLIENT_SECRET) {
    socialProviders.google = { clientId: env.GOOGLE_CLIENT_ID, clientSecret: env.GOOGLE_CLIENT_SECRET }
  }
  const oidcIssuer = env.TENANTRY_OIDC_ISSUER?.replace(/\/+$/, '')
  const oidc =
    oidcIssuer && env.TENANTRY_OIDC_CLIENT_ID
      ? [
          genericOAuth({
            config: [
              {
                providerId: OIDC_PROVIDER_ID,
                name: env.TENANTRY_OIDC_NAME ?? 'OpenID',
                discoveryUrl: `${oidcIssuer}/.well-known/openid-configuration`,
                clientId: env.TENANTRY_OIDC_CLIENT_ID,
                ...(env.TENANTRY_OIDC_CLIENT_SECRET ? { clientSecret: env.TENANTRY_OIDC_CLIENT_SECRET } : {}),
                scopes: ['openid', 'email', 'profile'],
                pkce: true,
              },
            ],
          }),
        ]
      : []

  // The hooks below run only once `auth` exists: they reach the organization tables through it.
  const organizations = (): Organizations => new Organizations(auth, tenantry, options.logger ?? tenantry.logger)

  const auth = betterAuth({
    appName: 'Tenantry',
    baseURL: options.baseURL,
    basePath: '/api/auth',
    trustedOrigins: trustedOrigins(options.baseURL, env, options.corsOrigins),
    // Better Auth turns origin (CSRF) checks off when it thinks it runs under test (NODE_ENV=test,
    // vitest). A server must not change its defences with an environment variable: always on.
    advanced: { disableOriginCheck: false, disableCSRFCheck: false, ipAddress: { ipAddressHeaders: [CLIENT_IP_HEADER] } },
    // Password guessing is throttled here, by Better Auth, per address: the catalog holds the
    // counts, so every process on one catalog shares them. Only sign-in is limited this way
    // (other auth routes are under the server's own per-address limit).
    rateLimit:
      signInLimit === false
        ? { enabled: false }
        : {
            enabled: true,
            storage: 'database',
            window: signInLimit.windowSeconds,
            max: Number.MAX_SAFE_INTEGER,
            customRules: {
              '/sign-in/*': { window: signInLimit.windowSeconds, max: signInLimit.max },
              // The first rule that matches applies: every other auth route is left to the server's limits.
              '/**': false,
            },
          },
    secret: loadAuthSecret(tenantry.config.home, env),
    database: { db, type: tenantry.catalog.engine === 'postgres' ? 'postgres' : 'sqlite' },
    // Sign-up must not tell who has an account here: with auto sign-in off, Better Auth answers a
    // sign-up for an existing email exactly as one for a new email (200, `token: null` and a user
    // of the same shape, after hashing the password all the same), and tells the account's owner
    // instead. The client signs in next; the first sign-in creates the personal tenant.
    emailAndPassword: {
      enabled: true,
      autoSignIn: false,
      minPasswordLength: 8,
      onExistingUserSignUp: async ({ user }) => {
        await sendEmail(existingAccountNotice(user.email, options.baseURL))
      },
    },
    // Accepting an invitation needs a verified email (see tenantOrganizations): the link goes out
    // on sign-up (for a new email only: an existing one gets `existingAccountNotice` instead, so
    // both answers send one email) and again on `POST /api/auth/send-verification-email`. Signing
    // in does not wait for it. The link lands on `callbackURL`, by default `/`: the console.
    emailVerification: {
      sendOnSignUp: true,
      sendVerificationEmail: async ({ user, url }) => {
        await sendEmail(verificationEmail(user.email, url, options.baseURL))
      },
    },
    socialProviders,
    telemetry: { enabled: false },
    logger: {
      level: 'warn',
      ...(options.log ? { log: (level: string, message: string) => options.log!(level === 'success' ? 'info' : (level as 'info'), message) } : {}),
    },
    hooks: {
      // Better Auth's set-active clears the session's active organization before it refuses one
      // the user does not belong to: a failed switch would leave the caller on no tenant.
      before: createAuthMiddleware(async (ctx) => {
        if (ctx.path !== '/organization/set-active') return
        const session = await getSessionFromCtx(ctx)
        if (session) await organizations().assertMayActivate(session.user.id, ctx.body)
      }),
      // `/organization/leave` runs no organization hook: a member who leaves loses the tokens
      // they created there, as one who is removed does (see tenantOrganizations).
      after: createAuthMiddleware(async (ctx) => {
        if (ctx.path !== '/organization/leave') return
        const left = ctx.context.returned as { userId?: unknown; organizationId?: unknown } | undefined
        if (left && !(left instanceof Error) && typeof left.userId === 'string' && typeof left.organizationId === 'string') {
          await organizations().revokeTokensOf(left.userId, left.organizationId, 'member left')
        }
      }),
    },
    databaseHooks: {
      session: {
        create: {
          // First sign-in (or sign-up) of a user: give them a personal tenant, and start every session on a tenant.
          before: async (session) => ({
            data: { ...session, activeOrganizationId: await organizations().startingOrganization(session.userId) },
          }),
        },
      },
    },
    plugins: [
      tenantOrganizations(tenantry, organizations, { sendEmail, baseURL: options.baseURL }),
      ...oidc,
    ],
  })
  return auth
}

/** The Better Auth instance the server runs. */
export type TenantryAuth = ReturnType<typeof createTenantryAuth>

/** Creates or updates Better Auth's tables in the catalog. Safe to run on every start. */
export async function migrateAuthSchema(auth: TenantryAuth): Promise<void> {
  const { runMigrations } = await getMigrations(auth.options)
  await runMigrations()
}

/**
 * The origins allowed to call the auth routes from a browser: the server's own, under both
 * loopback spellings when it runs locally (a browser at `localhost` sends that origin even
 * when the server calls itself 127.0.0.1), any listed in `TENANTRY_TRUSTED_ORIGINS`, and the
 * CORS origins (`server.cors.origins`), which must pass the same checks.
 */
export function trustedOrigins(baseURL: string, env: NodeJS.ProcessEnv, corsOrigins: readonly string[] = []): string[] {
  const own = new URL(baseURL)
  const origins = new Set([own.origin])
  if (own.hostname === '127.0.0.1' || own.hostname === 'localhost') {
    for (const host of ['127.0.0.1', 'localhost']) origins.add(`${own.protocol}//${host}${own.port ? `:${own.port}` : ''}`)
  }
  for (const origin of (env.TENANTRY_TRUSTED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean)) origins.add(origin)
  for (const origin of corsOrigins) origins.add(origin)
  return [...origins]
}
