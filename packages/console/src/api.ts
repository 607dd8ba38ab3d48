import { createAdmin, createIntegrations, type IntegrationsClient } from '@tenantry/client'

/**
 * The console's typed faces of the server, from `@tenantry/client`, on the same origin with the
 * session cookie: the admin API, and a workspace's integrations (tokens, read-only access).
 * Failures are `TenantryClientError`s with the server's code and message (`describeError`).
 */
export const admin = createAdmin({ baseUrl: location.origin })

/** The integrations of the workspace `slug`. */
export const integrationsOf = (slug: string): IntegrationsClient => createIntegrations({ baseUrl: location.origin, tenant: slug })
