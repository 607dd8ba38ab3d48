import { z } from 'zod'
import type { ServerInstance } from '../feature.js'
import { noQuery } from '../schemas.js'
import type { TenantryAuth } from './better-auth.js'

/** Names people know the built-in social providers by, for sign-in buttons. */
const SOCIAL_NAMES: Readonly<Record<string, string>> = { github: 'GitHub', google: 'Google' }

export const authProvidersResponse = z.object({
  providers: z
    .array(
      z.object({
        id: z.string().describe('github, google, or oidc (the generic OpenID provider)'),
        name: z.string().describe('What a sign-in button should say'),
        kind: z.enum(['social', 'oauth2']).describe('social: POST /api/auth/sign-in/social { provider }; oauth2: POST /api/auth/sign-in/oauth2 { providerId }'),
      }),
    )
    .describe('Besides email and password, which is always on'),
})

/** The providers `auth` was built with: social ones from its options, the generic OpenID one from its plugin. */
export function enabledProviders(auth: TenantryAuth): z.infer<typeof authProvidersResponse>['providers'] {
  const social = Object.entries(auth.options.socialProviders ?? {})
    .filter(([, config]) => config !== undefined)
    .map(([id]) => ({ id, name: SOCIAL_NAMES[id] ?? id, kind: 'social' as const }))
  const generic = (auth.options.plugins ?? []).flatMap((plugin) =>
    plugin.id === 'generic-oauth'
      ? ((plugin as { options?: { config?: Array<{ providerId: string; name?: string }> } }).options?.config ?? []).map((c) => ({
          id: c.providerId,
          name: c.name ?? c.providerId,
          kind: 'oauth2' as const,
        }))
      : [],
  )
  return [...social, ...generic]
}

/**
 * `GET /api/sign-in-providers`: which sign-in buttons a login page should show. Public (it reveals
 * only what the login page would), and outside `/api/auth/*`, which is Better Auth's alone (and keeps out of the OpenAPI document).
 */
export function authProviderRoutes(app: ServerInstance, auth: TenantryAuth): void {
  const providers = enabledProviders(auth)
  app.get(
    '/api/sign-in-providers',
    { schema: { tags: ['auth'], summary: 'Sign-in providers configured besides email and password', querystring: noQuery, response: { 200: authProvidersResponse } } },
    async () => ({ providers }),
  )
}
