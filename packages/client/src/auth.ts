import { createAuthClient } from 'better-auth/client'
import { TenantryClientError } from './errors.js'
import { jsonRequest } from './http.js'
import { membersClient, type AuthFetch, type MembersClient } from './members.js'

/**
 * Signing in from the browser: a thin, typed wrapper over Better Auth's own client
 * (`better-auth/client`), which the server mounts at `/api/auth` and answers in its native
 * shape, plus the Tenantry routes around it: the providers the server has configured
 * (`GET /api/sign-in-providers`), the user's tenants (`GET /api/me`) and switching the active
 * one (`POST /api/me/active-tenant`). Every failure is a `TenantryClientError` carrying the
 * server's code and message, as the collections' errors are.
 *
 * No Node built-ins: this runs in the browser (and in any runtime with `fetch`).
 */

export interface AuthOptions {
  /** The server's origin (and path prefix, if any), e.g. `https://api.example.com`; `''` or the page's origin for the same origin. */
  baseUrl: string
  /** @default globalThis.fetch */
  fetch?: typeof fetch
}

/** A sign-in provider the server has configured besides email + password. */
export interface AuthProvider {
  /** `github`, `google`, or `oidc` (the generic OpenID provider). */
  id: string
  /** What a button should say, e.g. `GitHub`. */
  name: string
  /** `social`: Better Auth's built-in providers; `oauth2`: the generic OpenID one. */
  kind: 'social' | 'oauth2'
}

/** The signed-in user, as Better Auth's session holds them. */
export interface SessionUser {
  id: string
  email: string
  name: string
  image: string | null
  emailVerified: boolean
}

export interface Session {
  user: SessionUser
  /** When the session ends (ISO date). */
  expiresAt: string
}

/** A tenant the user belongs to: their personal workspace or an organization's. */
export interface Workspace {
  id: string
  slug: string
  name: string
  /** `ready`, `suspended`, …: only ready tenants serve data. */
  status: string
  role: 'owner' | 'admin' | 'member'
}

/** `GET /api/me` for a signed-in user. */
export interface Me {
  user: { id: string; email: string; platformAdmin: boolean }
  /** The tenant `/api/tenant/…` (and a remote backend without `tenant`) serves. */
  activeTenant: Workspace | null
  /** Oldest membership first. */
  tenants: Workspace[]
}

export interface TenantryAuthClient {
  /** Better Auth's own client, for what this wrapper does not cover (creating organizations, password reset…). */
  readonly betterAuth: ReturnType<typeof createAuthClient>
  /** The providers the server offers besides email + password (none when it has none configured). */
  providers(): Promise<AuthProvider[]>
  /**
   * Creates an account, then signs in. The server emails a link that verifies the address and
   * then goes to `callbackURL` (default: the server's `/`, the console). The server never signs in on sign-up (its answer must
   * not tell whether the email already had an account), so a taken email fails at the sign-in
   * step with `INVALID_EMAIL_OR_PASSWORD` unless the password is the account's own.
   */
  signUp(input: { email: string; password: string; name?: string; callbackURL?: string }): Promise<Session>
  signIn(input: { email: string; password: string }): Promise<Session>
  /**
   * Starts a social or OpenID sign-in: answers the provider's URL, and goes there unless
   * `navigate` is `false`. The provider sends the user back to `callbackURL`.
   */
  signInWith(provider: AuthProvider | string, options?: { callbackURL?: string; navigate?: boolean }): Promise<string>
  signOut(): Promise<void>
  /** The current session, or `null` when signed out. */
  session(): Promise<Session | null>
  /**
   * Calls `listener` with the session now and whenever it changes (sign-in, sign-out, another
   * tab's sign-out…); answers a function that stops it.
   */
  onSessionChange(listener: (session: Session | null) => void): () => void
  /** The user, their tenants and the active one; `null` when signed out. */
  me(): Promise<Me | null>
  /** Makes `slug` (a tenant the user belongs to) the session's active tenant. */
  switchTenant(slug: string): Promise<Workspace>
  /**
   * Sends (again) the signed-in user's verification email: its link verifies the address and
   * goes to `callbackURL` (default: the server's `/`). Accepting invitations needs a verified
   * email. Fails with `EMAIL_ALREADY_VERIFIED` when it is.
   */
  sendVerificationEmail(options?: { callbackURL?: string }): Promise<void>
  /** Members and invitations of the user's workspaces (see `MembersClient`). */
  readonly members: MembersClient
}

/** The page's address, where there is one (a browser); typed here so the module needs no DOM types. */
const pageLocation = () => (globalThis as { location?: { origin: string; href: string; assign(url: string): void } }).location

type BetterAuthError = { code?: string; message?: string; status: number; statusText?: string }

/** Better Auth's `{ error }` as a client error: its code (e.g. `INVALID_EMAIL_OR_PASSWORD`) and message. */
function toClientError(error: BetterAuthError): TenantryClientError {
  const code = error.code || `HTTP_${error.status}`
  return new TenantryClientError(code, error.message || error.statusText || `The server answered ${error.status}`, error.status)
}

function toSession(data: unknown): Session | null {
  const value = data as { user?: Record<string, unknown>; session?: Record<string, unknown> } | null | undefined
  if (!value?.user || !value.session) return null
  const user = value.user
  const date = (v: unknown) => (v instanceof Date ? v.toISOString() : String(v))
  return {
    user: {
      id: String(user.id),
      email: String(user.email),
      name: String(user.name ?? ''),
      image: typeof user.image === 'string' ? user.image : null,
      emailVerified: user.emailVerified === true,
    },
    expiresAt: date(value.session.expiresAt),
  }
}

/**
 * Sign-in, session and tenants for a browser app.
 *
 * @example
 * const auth = createAuth({ baseUrl: location.origin })
 * await auth.signIn({ email, password })
 * const me = await auth.me()   // me.activeTenant.slug: the tenant a remote backend serves
 */
export function createAuth(options: AuthOptions): TenantryAuthClient {
  const base = options.baseUrl.replace(/\/+$/, '')
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  const betterAuth = createAuthClient({
    baseURL: `${base || pageLocation()?.origin || ''}/api/auth`,
    fetchOptions: { customFetchImpl: doFetch, credentials: 'include' },
  })

  /** Tenantry's own JSON routes (`{ error: { code, message } }` on failure). */
  const api = <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => jsonRequest<T>(`${base}${path}`, { method, body, fetch: doFetch })

  /** Runs a Better Auth call; its `{ data, error }` becomes a value or a thrown client error. */
  const call = async <T>(run: () => Promise<{ data: T | null; error: BetterAuthError | null }>): Promise<T> => {
    let result: { data: T | null; error: BetterAuthError | null }
    try {
      result = await run()
    } catch (error) {
      throw new TenantryClientError('NETWORK_ERROR', `The server could not be reached: ${(error as Error).message}`, 0, { cause: error })
    }
    if (result.error) throw toClientError(result.error)
    return result.data as T
  }

  const currentSession = async (): Promise<Session | null> => toSession(await call(() => betterAuth.getSession()))

  const signIn = async (input: { email: string; password: string }): Promise<Session> => {
    await call(() => betterAuth.signIn.email({ email: input.email, password: input.password }))
    const session = await currentSession()
    if (!session) throw new TenantryClientError('UNAUTHENTICATED', 'Signed in, but the server kept no session (are cookies blocked?)', 401)
    return session
  }

  /** Tells Better Auth's session store to refetch, so `onSessionChange` listeners hear of it. */
  const refreshSession = () => betterAuth.$store.notify('$sessionSignal')

  return {
    betterAuth,
    providers: async () => (await api<{ providers: AuthProvider[] }>('GET', '/api/sign-in-providers')).providers,
    signUp: async ({ email, password, name, callbackURL }) => {
      await call(() => betterAuth.signUp.email({ email, password, name: name ?? email.split('@')[0] ?? email, ...(callbackURL ? { callbackURL } : {}) }))
      return signIn({ email, password })
    },
    signIn,
    signInWith: async (provider, { callbackURL, navigate = true } = {}) => {
      const chosen = typeof provider === 'string' ? (await api<{ providers: AuthProvider[] }>('GET', '/api/sign-in-providers')).providers.find((p) => p.id === provider) : provider
      if (!chosen) throw new TenantryClientError('VALIDATION_FAILED', `The server has no sign-in provider "${String(provider)}"`, 400)
      const callback = callbackURL ?? pageLocation()?.href
      const path = chosen.kind === 'social' ? '/sign-in/social' : '/sign-in/oauth2'
      const body = { ...(chosen.kind === 'social' ? { provider: chosen.id } : { providerId: chosen.id }), ...(callback ? { callbackURL: callback } : {}), disableRedirect: true }
      const data = await call(() => betterAuth.$fetch<{ url?: string }>(path, { method: 'POST', body }) as Promise<{ data: { url?: string } | null; error: BetterAuthError | null }>)
      if (!data?.url) throw new TenantryClientError('HTTP_500', `The server gave no address for ${chosen.name}`, 500)
      if (navigate) pageLocation()?.assign(data.url)
      return data.url
    },
    signOut: async () => {
      await call(() => betterAuth.signOut())
    },
    session: currentSession,
    onSessionChange: (listener) => {
      let last: string | undefined
      return betterAuth.useSession.subscribe((state) => {
        if (state.isPending) return
        const session = toSession(state.data)
        const key = JSON.stringify(session)
        if (key === last) return
        last = key
        listener(session)
      })
    },
    me: async () => {
      try {
        const me = await api<Me | { token: unknown }>('GET', '/api/me')
        return 'user' in me ? me : null
      } catch (error) {
        if (error instanceof TenantryClientError && error.code === 'UNAUTHENTICATED') return null
        throw error
      }
    },
    switchTenant: async (slug) => {
      await api<{ activeTenant: { slug: string } }>('POST', '/api/me/active-tenant', { slug })
      refreshSession()
      const me = await api<Me>('GET', '/api/me')
      const active = me.activeTenant
      if (!active || active.slug !== slug) throw new TenantryClientError('TENANT_NOT_FOUND', `Could not switch to ${slug}`, 404)
      return active
    },
    sendVerificationEmail: async ({ callbackURL } = {}) => {
      const session = await currentSession()
      if (!session) throw new TenantryClientError('UNAUTHENTICATED', 'Sign in to verify your email', 401)
      await call(() => betterAuth.sendVerificationEmail({ email: session.user.email, ...(callbackURL ? { callbackURL } : {}) }))
      refreshSession()
    },
    members: membersClient(betterAuth.$fetch as unknown as AuthFetch, call),
  }
}
