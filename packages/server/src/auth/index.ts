import { randomBytes } from 'node:crypto'
import { betterAuth, type BetterAuthOptions } from 'better-auth'
import { APIError } from 'better-auth/api'
import { getMigrations } from 'better-auth/db/migration'
import { genericOAuth, organization } from 'better-auth/plugins'
import type { Kysely } from 'kysely'
import { slugProblem, isTenantryError, type Tenantry } from 'tenantry'
import { AUTH_ERROR_CODES } from './error-codes.js'
import { loadAuthSecret } from './secret.js'
import { firstMembership } from '../tenants/memberships.js'

export interface TenantryAuthOptions {
  tenantry: Tenantry
  /** Public URL of the server, e.g. `http://127.0.0.1:3000`. */
  baseURL: string
  /** @default process.env */
  env?: NodeJS.ProcessEnv
  /** Where Better Auth's own log lines go. @default console */
  log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void
}

/** The generic OpenID provider's id: `POST /api/auth/sign-in/social { provider: 'oidc' }`, callback `/api/auth/callback/oidc`. */
export const OIDC_PROVIDER_ID = 'oidc'

/** Personal tenants: `u_` + 16 characters, never derived from a name or an email. */
export function personalSlug(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
  return `u_${[...randomBytes(16)].map((b) => alphabet[b % alphabet.length]).join('')}`
}

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

  /** Creates the tenant an organization stands for, or removes the organization again: never one without the other. */
  async function provisionFor(org: { id: string; slug: string; name: string }, actor: string): Promise<void> {
    try {
      const tenant = await tenantry.createTenant({ slug: org.slug, name: org.name, actor })
      await db.updateTable('organization').set({ tenantId: tenant.id }).where('id', '=', org.id).execute()
    } catch (error) {
      await db.deleteFrom('invitation').where('organizationId', '=', org.id).execute()
      await db.deleteFrom('member').where('organizationId', '=', org.id).execute()
      await db.deleteFrom('organization').where('id', '=', org.id).execute()
      const known = isTenantryError(error) && ['SLUG_TAKEN', 'INVALID_SLUG'].includes(error.code)
      throw APIError.from(known ? 'BAD_REQUEST' : 'INTERNAL_SERVER_ERROR', {
        code: known ? (error as { code: string }).code : 'TENANT_PROVISIONING_FAILED',
        message: known ? (error as Error).message : AUTH_ERROR_CODES.TENANT_PROVISIONING_FAILED,
      })
    }
  }

  async function ensurePersonalTenant(user: { id: string; name?: string | null; email: string }): Promise<void> {
    if (await firstMembership(db, user.id)) return
    // Server-side call with a userId and no headers: the organization plugin treats it as a system action.
    await auth.api.createOrganization({
      body: { name: `${user.name || user.email}'s workspace`, slug: personalSlug(), userId: user.id, metadata: { personal: true } },
    })
  }

  const auth = betterAuth({
    appName: 'Tenantry',
    baseURL: options.baseURL,
    basePath: '/api/auth',
    trustedOrigins: trustedOrigins(options.baseURL, env),
    // Better Auth turns origin (CSRF) checks off when it thinks it runs under test (NODE_ENV=test,
    // vitest). A server must not change its defences with an environment variable: always on.
    advanced: { disableOriginCheck: false, disableCSRFCheck: false },
    secret: loadAuthSecret(tenantry.config.home, env),
    database: { db, type: tenantry.catalog.engine === 'postgres' ? 'postgres' : 'sqlite' },
    emailAndPassword: { enabled: true, autoSignIn: true, minPasswordLength: 8 },
    socialProviders,
    telemetry: { enabled: false },
    logger: {
      level: 'warn',
      ...(options.log ? { log: (level: string, message: string) => options.log!(level === 'success' ? 'info' : (level as 'info'), message) } : {}),
    },
    databaseHooks: {
      session: {
        create: {
          // First sign-in (or sign-up) of a user: give them a personal tenant, and start every session on a tenant.
          before: async (session) => {
            const user = await db.selectFrom('user').select(['id', 'name', 'email']).where('id', '=', session.userId).executeTakeFirst()
            if (user) await ensurePersonalTenant(user)
            const membership = await firstMembership(db, session.userId)
            return { data: { ...session, activeOrganizationId: membership?.organizationId ?? null } }
          },
        },
      },
    },
    plugins: [
      organization({
        creatorRole: 'owner',
        disableOrganizationDeletion: true,
        // Invitations are returned by the API; delivering them is the app's business.
        sendInvitationEmail: async () => {},
        schema: {
          organization: {
            additionalFields: { tenantId: { type: 'string', required: false, input: false } },
          },
        },
        organizationHooks: {
          beforeCreateOrganization: async ({ organization: org }) => {
            const problem = slugProblem(org.slug)
            if (problem) throw APIError.from('BAD_REQUEST', { code: 'INVALID_SLUG', message: `Invalid tenant slug: ${problem}` })
            try {
              await tenantry.tenants.plan({ slug: org.slug! })
            } catch (error) {
              if (isTenantryError(error)) throw APIError.from('BAD_REQUEST', { code: error.code, message: error.message })
              throw error
            }
          },
          afterCreateOrganization: async ({ organization: org, user }) => {
            await provisionFor({ id: org.id, slug: org.slug, name: org.name }, `user:${user.id}`)
          },
          beforeUpdateOrganization: async ({ organization: org, member }) => {
            if (org.slug !== undefined) {
              const current = await db.selectFrom('organization').select('slug').where('id', '=', member.organizationId).executeTakeFirst()
              if (current && current.slug !== org.slug) {
                throw APIError.from('BAD_REQUEST', { code: 'SLUG_IMMUTABLE', message: AUTH_ERROR_CODES.SLUG_IMMUTABLE })
              }
            }
          },
        },
      }),
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
 * when the server calls itself 127.0.0.1), and any listed in `TENANTRY_TRUSTED_ORIGINS`.
 */
export function trustedOrigins(baseURL: string, env: NodeJS.ProcessEnv): string[] {
  const own = new URL(baseURL)
  const origins = new Set([own.origin])
  if (own.hostname === '127.0.0.1' || own.hostname === 'localhost') {
    for (const host of ['127.0.0.1', 'localhost']) origins.add(`${own.protocol}//${host}${own.port ? `:${own.port}` : ''}`)
  }
  for (const origin of (env.TENANTRY_TRUSTED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean)) origins.add(origin)
  return [...origins]
}
