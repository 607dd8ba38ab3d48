import { TenantryClientError } from './errors.js'

/**
 * The one way the client talks to a Tenantry server: the tenant's prefix, the credentials (a
 * token, else the session cookie), the server's `{ error: { code, message } }` answers as
 * `TenantryClientError`s, and retries of passing failures. Every write carries an
 * `Idempotency-Key`, and a retried write carries the SAME key, so a write whose answer was lost
 * (a timeout, a dropped connection, a 503) is applied once, however often it is sent.
 */

export interface ServerTarget {
  /** The server's origin (and path prefix, if any), e.g. `https://api.example.com`. */
  baseUrl: string
  /** The tenant's slug (`/api/t/<slug>/…`); without one, the caller's active tenant (`/api/tenant/…`). */
  tenant?: string
  /**
   * An integration token sent as `Authorization: Bearer …`. Without one, the session cookie is
   * sent (`credentials: 'include'`): an app on another origin needs it in the server's
   * `server.cors.origins`.
   */
  token?: string | (() => string | undefined | Promise<string | undefined>)
  /** @default globalThis.fetch */
  fetch?: typeof fetch
  /** Retries of a request that failed in passing (no answer, 408, 503, 429). */
  retry?: RetryOptions
}

export interface RetryOptions {
  /** Tries after the first. @default 3 */
  retries?: number
  /** The first wait; each next one doubles, with jitter, up to `maxDelayMs`. @default 250 */
  baseDelayMs?: number
  /** @default 5000 */
  maxDelayMs?: number
}

export interface RequestOptions {
  body?: unknown
  params?: URLSearchParams
  /** The write's idempotency key. @default a new one (crypto.randomUUID()) for every write */
  idempotencyKey?: string
  signal?: AbortSignal
  /** Retry passing failures. @default true */
  retry?: boolean
}

/** Methods that change something: they carry an idempotency key. */
const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** Statuses worth sending the same request again for: a deadline, a busy database, a rate limit. */
const PASSING = new Set([408, 429, 503])

/**
 * Whether `error` is a failure that the same request may not hit again: no answer at all, a
 * passing status, or the same key held by a write still running (whose answer a retry replays).
 */
export function isPassingFailure(error: unknown): boolean {
  return error instanceof TenantryClientError && (error.code === 'NETWORK_ERROR' || error.code === 'IDEMPOTENCY_KEY_IN_USE' || PASSING.has(error.status))
}

export type Requester = <T>(method: string, path: string, options?: RequestOptions) => Promise<T>

/** The requester of `target`'s tenant: `path` is under `/api/t/<slug>` or `/api/tenant`. */
export function tenantRequester(target: ServerTarget): Requester {
  const doFetch = target.fetch ?? globalThis.fetch.bind(globalThis)
  const root = `${target.baseUrl.replace(/\/+$/, '')}${target.tenant !== undefined ? `/api/t/${encodeURIComponent(target.tenant)}` : '/api/tenant'}`
  const retries = target.retry?.retries ?? 3
  const baseDelayMs = target.retry?.baseDelayMs ?? 250
  const maxDelayMs = target.retry?.maxDelayMs ?? 5000

  const once = async <T>(method: string, path: string, options: RequestOptions, key: string | undefined): Promise<T> => {
    const token = typeof target.token === 'function' ? await target.token() : target.token
    const headers: Record<string, string> = {}
    if (token) headers.authorization = `Bearer ${token}`
    if (key) headers['idempotency-key'] = key
    const query = options.params?.toString() ? `?${options.params}` : ''
    return jsonRequest<T>(`${root}${path}${query}`, {
      method,
      headers,
      body: options.body,
      credentials: token ? 'omit' : 'include',
      signal: options.signal,
      fetch: doFetch,
    })
  }

  return async <T>(method: string, path: string, options: RequestOptions = {}): Promise<T> => {
    const key = WRITES.has(method) ? (options.idempotencyKey ?? crypto.randomUUID()) : undefined
    for (let attempt = 0; ; attempt++) {
      try {
        return await once<T>(method, path, options, key)
      } catch (error) {
        if (options.retry === false || attempt >= retries || !isPassingFailure(error)) throw error
        const backoff = Math.min(maxDelayMs, baseDelayMs * 2 ** attempt) * (0.5 + Math.random() / 2)
        const hinted = (error as { retryAfterMs?: number }).retryAfterMs
        await sleep(Math.min(maxDelayMs, Math.max(backoff, hinted ?? 0)), options.signal)
      }
    }
  }
}

/** Waits `ms`, or rejects when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal!.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export interface JsonRequestInit {
  method: string
  /** Sent as JSON (with its content type) unless undefined. */
  body?: unknown
  headers?: Record<string, string>
  credentials?: 'include' | 'omit' | 'same-origin'
  signal?: AbortSignal | undefined
  /** @default globalThis.fetch */
  fetch?: typeof fetch
}

/**
 * One call to a Tenantry JSON route: the parsed answer (undefined for 204), or the failure as a
 * `TenantryClientError` with the server's `{ error: { code, message } }` (and `retryAfterMs`
 * from `Retry-After`); a server that cannot be reached is `NETWORK_ERROR` (status 0), an abort
 * the signal's reason. Shared by the backends, auth and the console, so every failure reads alike.
 */
export async function jsonRequest<T>(url: string, init: JsonRequestInit): Promise<T> {
  const doFetch = init.fetch ?? globalThis.fetch.bind(globalThis)
  const headers: Record<string, string> = { accept: 'application/json', ...init.headers }
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  let response: Response
  try {
    response = await doFetch(url, {
      method: init.method,
      headers,
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      credentials: init.credentials ?? 'include',
      ...(init.signal ? { signal: init.signal } : {}),
    })
  } catch (error) {
    if (init.signal?.aborted) throw init.signal.reason ?? error
    throw new TenantryClientError('NETWORK_ERROR', `The server could not be reached: ${(error as Error).message}`, 0, { cause: error })
  }
  if (response.status === 204) return undefined as T
  const text = await response.text()
  let parsed: unknown
  try {
    parsed = text ? JSON.parse(text) : undefined
  } catch {
    parsed = undefined
  }
  if (!response.ok) {
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error
    const code = typeof error?.code === 'string' ? error.code : `HTTP_${response.status}`
    const message = typeof error?.message === 'string' ? error.message : `The server answered ${response.status}`
    const failure = new TenantryClientError(code, message, response.status)
    const after = Number(response.headers.get('retry-after'))
    if (Number.isFinite(after) && after > 0) Object.assign(failure, { retryAfterMs: after * 1000 })
    throw failure
  }
  return parsed as T
}
