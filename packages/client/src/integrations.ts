import { tenantRequester, type ServerTarget } from './http.js'

/**
 * A tenant's integrations, for its owners and admins: integration tokens (what n8n, a script
 * or an ORM uses for SQL-over-HTTP and the data API) and read-only database access. The shapes
 * are the server's answers: `packages/server/src/wire-types.test.ts` fails to compile when a
 * route's schema and these types part ways.
 */

/** An integration token as listings show it: never its secret or its hash. */
export interface IntegrationToken {
  id: string
  tenantId: string
  name: string
  /** The start of the token (`tnt_<id>_xxxx`), to recognise it. */
  prefix: string
  readOnly: boolean
  createdAt: string
  expiresAt: string | null
  revokedAt: string | null
  lastUsedAt: string | null
  /** Who made it: `user:<id>`, `cli:<name>`… */
  createdBy: string
}

/** A new token: the secret, shown this once, and the URL to give `@libsql/client` with it. */
export interface CreatedIntegrationToken {
  token: string
  record: IntegrationToken
  sqlUrl: string
}

export interface CreateTokenInput {
  /** A label for listings. @default "token" */
  name?: string
  /** Read-only tokens never change data or schema. @default false */
  readOnly?: boolean
  /** Lifetime from now: `45s`, `90m`, `12h`, `30d`, `2w`. None: until revoked. */
  expiresIn?: string
}

/** Whether the tenant offers read-only database access (Postgres schema and database tenants), without granting it. */
export interface ReadOnlyAccessOffer {
  available: boolean
  engine: string
  isolation: string
  /** Where it is not available: why, and what to use instead. */
  reason?: string
}

/** A database login that reads this tenant and nothing else; `url` carries its password. */
export interface ReadOnlyAccessGrant {
  role: string
  url: string
}

export interface IntegrationsClient {
  /** Oldest first, revoked ones included. */
  tokens(): Promise<IntegrationToken[]>
  createToken(input?: CreateTokenInput): Promise<CreatedIntegrationToken>
  revokeToken(id: string): Promise<void>
  readOnlyAccess(): Promise<ReadOnlyAccessOffer>
  /** Grants it (granting again answers the same login). */
  grantReadOnlyAccess(): Promise<ReadOnlyAccessGrant>
  revokeReadOnlyAccess(): Promise<void>
}

/**
 * The integrations of `target`'s tenant (its slug, else the session's active tenant).
 *
 * @example
 * const integrations = createIntegrations({ baseUrl: location.origin, tenant: 'acme' })
 * const { token, sqlUrl } = await integrations.createToken({ name: 'n8n', readOnly: true })
 */
export function createIntegrations(target: Omit<ServerTarget, 'token'>): IntegrationsClient {
  const request = tenantRequester(target)
  return {
    tokens: async () => (await request<{ items: IntegrationToken[] }>('GET', '/tokens')).items,
    // Not retried: a token create is not idempotent, and a lost answer's secret is gone anyway.
    createToken: (input = {}) => request<CreatedIntegrationToken>('POST', '/tokens', { body: input, retry: false }),
    revokeToken: (id) => request<void>('DELETE', `/tokens/${encodeURIComponent(id)}`),
    readOnlyAccess: () => request<ReadOnlyAccessOffer>('GET', '/read-only-access'),
    grantReadOnlyAccess: () => request<ReadOnlyAccessGrant>('POST', '/read-only-access', { body: {}, retry: false }),
    revokeReadOnlyAccess: () => request<void>('DELETE', '/read-only-access'),
  }
}
