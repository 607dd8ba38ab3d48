/**
 * Who is calling. Identity only ever comes from a verified credential: a Better Auth
 * session or a hashed integration token. A tenant named in a path or header is a request
 * that a membership (or the token's own tenant) must allow.
 */
export type Principal =
  | { kind: 'user'; userId: string; email: string; platformAdmin: boolean; activeTenantId: string | null }
  | { kind: 'token'; tokenId: string; tenantId: string; readOnly: boolean }

/** The tenant a request was admitted to, with the caller's rights in it. */
export interface AdmittedTenant {
  id: string
  slug: string
  /** `owner` / `admin` / `member` for users; `token` for integration tokens. */
  role: 'owner' | 'admin' | 'member' | 'token'
  readOnly: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the authentication hook; `undefined` for anonymous requests. */
    principal?: Principal
    /** Set by tenant resolution on routes under a tenant. */
    tenant?: AdmittedTenant
  }
}
