import { jsonRequest, TenantryClientError } from '@tenantry/client'

/**
 * The console's calls to Tenantry routes that `@tenantry/client` has no typed face for yet
 * (integration tokens, the admin API), on the same origin with the session cookie. Failures
 * are `TenantryClientError`s with the server's code and message, like the client's own.
 */
export function api<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  return jsonRequest<T>(path, { method, body })
}

/** What to show for a failure: the API's message (and code), never a blank page. */
export function describeError(error: unknown): string {
  if (error instanceof TenantryClientError) return `${error.message} (${error.code})`
  if (error instanceof Error) return error.message
  return String(error)
}
