import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createTenantry, loadConfig, resolveConfig, type CreateTenantryOptions, type ResolvedConfig, type TenantryConfig } from 'tenantry'
import type { CreateAppOptions } from '../app.js'
import { startServer, type RunningServer } from '../start.js'

/**
 * The server test kit (`@tenantry/server/testing`): the real server on 127.0.0.1 and a random
 * port, over a fresh SQLite catalog in a temporary home, and a browser-like client.
 *
 * @example
 * const server = await startTestServer({ config: fileURLToPath(new URL('../tenantry.config.ts', import.meta.url)) })
 * const alice = await signUp(server, 'alice@example.com')
 * expect((await alice.get('/api/me')).status).toBe(200)
 * await server.stop()
 */

export interface StartTestServerOptions {
  /**
   * The config to serve: a config file's path, or a config object (relative paths in it resolve
   * against `root`). It must leave `home` and `catalogUrl` unset: the kit puts both in a
   * temporary directory, removed by `stop()`.
   * @default the nearest `tenantry.config.*` from the working directory up
   */
  config?: string | TenantryConfig
  /** Where relative paths of a config object resolve. @default process.cwd() */
  root?: string
  /** Environment of the server (merged over `process.env`; `TENANTRY_HOME` is the temporary home). */
  env?: NodeJS.ProcessEnv
  /** Passed to `createTenantry`. */
  tenantry?: CreateTenantryOptions
  /** The server's pino options, or `false`. @default false */
  logger?: CreateAppOptions['logger']
  /** Passed to `createApp` (extra features, body limit…). */
  app?: Omit<CreateAppOptions, 'tenantry' | 'logger' | 'env'>
}

export interface TestServer extends RunningServer {
  /** The temporary home: catalog, tenant files, the generated auth secret. */
  home: string
  /** Closes the server and Tenantry, and removes the home. */
  stop(): Promise<void>
}

/** Starts the real server over `options.config` in a temporary home. */
export async function startTestServer(options: StartTestServerOptions = {}): Promise<TestServer> {
  const home = mkdtempSync(join(tmpdir(), 'tenantry-server-'))
  const env: NodeJS.ProcessEnv = { ...process.env, TENANTRY_HOME: home, ...options.env }
  // A developer's shell must not point the test at a real catalog or a real secret.
  delete env.TENANTRY_CATALOG_URL
  delete env.BETTER_AUTH_SECRET
  delete env.BETTER_AUTH_URL
  let tenantry: Awaited<ReturnType<typeof createTenantry>> | undefined
  try {
    const config = await configFor(options, env)
    if (resolve(config.home) !== resolve(home) || config.catalogUrl !== join(home, 'catalog.db')) {
      throw new Error('startTestServer: the config sets home or catalogUrl; leave them unset so the test runs in a temporary home')
    }
    tenantry = await createTenantry(config, options.tenantry)
    const server = await startServer({
      tenantry,
      port: 0,
      host: '127.0.0.1',
      handleSignals: false,
      app: { ...options.app, logger: options.logger ?? false, env },
    })
    const owned = tenantry
    return {
      ...server,
      home,
      stop: async () => {
        try {
          await server.close()
          await owned.close()
        } finally {
          rmSync(home, { recursive: true, force: true })
        }
      },
    }
  } catch (error) {
    await tenantry?.close()
    rmSync(home, { recursive: true, force: true })
    throw error
  }
}

function configFor(options: StartTestServerOptions, env: NodeJS.ProcessEnv): Promise<ResolvedConfig> | ResolvedConfig {
  if (typeof options.config === 'object') return resolveConfig(options.config, { root: options.root ?? process.cwd(), env })
  return loadConfig(options.config, env)
}

export interface Reply<T = any> {
  status: number
  /** The body as JSON, or its text when it is not JSON. */
  body: T
  text: string
  headers: Headers
}

/** A browser-like client: keeps cookies, sends an Origin, never follows redirects by itself. */
export class Client {
  readonly cookies = new Map<string, string>()
  constructor(
    readonly baseURL: string,
    /** Sent with every request, e.g. `{ authorization: 'Bearer tnt_…' }`. */
    readonly headers: Record<string, string> = {},
  ) {}

  /** A string `body` is sent as is; anything else as JSON. `content-type` defaults to application/json. */
  async request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
    const url = path.startsWith('http') ? path : `${this.baseURL}${path}`
    const sameOrigin = url.startsWith(this.baseURL)
    const all: Record<string, string> = { ...this.headers, ...headers }
    if (sameOrigin) {
      all.origin ??= this.baseURL
      if (this.cookies.size) all.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    }
    let payload: string | undefined
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body)
      all['content-type'] ??= 'application/json'
    }
    const response = await fetch(url, { method, headers: all, body: payload, redirect: 'manual' })
    if (sameOrigin) {
      for (const cookie of response.headers.getSetCookie()) {
        const [pair] = cookie.split(';')
        const eq = pair!.indexOf('=')
        const name = pair!.slice(0, eq)
        const value = pair!.slice(eq + 1)
        if (value === '' || /max-age=0/i.test(cookie)) this.cookies.delete(name)
        else this.cookies.set(name, value)
      }
    }
    const text = await response.text()
    let parsed: unknown = text
    try {
      parsed = text ? JSON.parse(text) : undefined
    } catch {
      // Not JSON: `body` is the text itself.
    }
    return { status: response.status, body: parsed as T, text, headers: response.headers }
  }

  get<T = any>(path: string, headers?: Record<string, string>) {
    return this.request<T>('GET', path, undefined, headers)
  }
  /** Sends `{}` when no body is given, as a browser form of this API would. */
  post<T = any>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.request<T>('POST', path, body ?? {}, headers)
  }
  patch<T = any>(path: string, body?: unknown) {
    return this.request<T>('PATCH', path, body)
  }
  delete<T = any>(path: string, body?: unknown) {
    return this.request<T>('DELETE', path, body)
  }
}

/**
 * Signs a new user up (email + password), then signs them in, and returns their signed-in
 * client. Sign-up never signs in by itself (its answer must not reveal whether the email had
 * an account), so the helper signs in as the app's client would next. It signs in through
 * Better Auth server-side: the test's own sign-ins stay the only ones the per-address sign-in
 * limit counts.
 */
export async function signUp(server: Pick<RunningServer, 'url' | 'app'>, email: string, password = 'correct horse battery'): Promise<Client> {
  const client = new Client(server.url)
  const reply = await client.post('/api/auth/sign-up/email', { email, password, name: email.split('@')[0] })
  if (reply.status !== 200) throw new Error(`sign-up ${email}: ${reply.status} ${reply.text}`)
  const signIn = await server.app.auth.api.signInEmail({ body: { email, password }, asResponse: true })
  if (signIn.status !== 200) throw new Error(`sign-in after sign-up ${email}: ${signIn.status} ${await signIn.text()}`)
  for (const cookie of signIn.headers.getSetCookie()) {
    const [pair] = cookie.split(';')
    const eq = pair!.indexOf('=')
    client.cookies.set(pair!.slice(0, eq), pair!.slice(eq + 1))
  }
  return client
}

/**
 * Marks the user's email as verified, as an operator (or a verification email) would: a
 * platform admin's email must be verified. Through Better Auth, as the server itself does.
 */
export async function verifyEmail(server: Pick<RunningServer, 'app'>, email: string): Promise<void> {
  const context = await server.app.auth.$context
  await context.internalAdapter.updateUserByEmail(email.toLowerCase(), { emailVerified: true })
}
