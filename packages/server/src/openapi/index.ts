import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { z } from 'zod'
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod'
import type { ServerInstance } from '../feature.js'
import { errorResponse } from '../schemas.js'

/**
 * The OpenAPI document at `/openapi.json` and its page at `/docs`, generated from the zod
 * schemas every route declares (the same ones that validate requests). Every documented route
 * also answers errors as `{ error: { code, message } }`: the statuses each can answer (429 with
 * `Retry-After`, 401/403/404, 408/413/415/422/503 where they apply) are declared here once for
 * all of them, not per route.
 * Wrapped in `fastify-plugin`: it must see the routes of the whole app. Register it first.
 */
export const openapi = fp(
  async (app: ServerInstance, options: { version: string }) => {
    app.addHook('onRoute', withErrorResponses)
    await app.register(swagger, {
      openapi: {
        info: { title: 'Tenantry', version: options.version, description: 'Tenants, memberships, the data API and administration' },
        components: {
          securitySchemes: {
            session: { type: 'apiKey', in: 'cookie', name: 'better-auth.session_token' },
            token: { type: 'http', scheme: 'bearer', description: 'an integration token, tnt_…' },
          },
        },
        security: [{ session: [] }, { token: [] }],
      },
      transform,
      // Schemas named with `.meta({ id })` (the recursive ones) become components/schemas.
      transformObject: jsonSchemaTransformObject,
    })
    await app.register(swaggerUi, { routePrefix: '/docs' })
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  },
  { name: 'tenantry-openapi', fastify: '5.x' },
)

/** Why a route may answer each error status: the OpenAPI description of that answer. */
const ERROR_STATUSES = {
  400: 'Invalid input: an unknown or malformed parameter, field or value (VALIDATION_FAILED, INVALID_OPTION…)',
  401: 'No valid credentials: no session or token, or an expired or revoked one (UNAUTHENTICATED)',
  403: 'Not allowed: a role, a platform admin or write access is needed, or a quota is reached (FORBIDDEN, READ_ONLY, QUOTA_EXCEEDED)',
  404: 'No such tenant or row, or one the caller may not see (TENANT_NOT_FOUND, NOT_FOUND)',
  408: 'Too slow: the request was not received in time, or a statement ran past its deadline (REQUEST_TIMEOUT, STATEMENT_TIMEOUT)',
  413: 'The body is larger than the server accepts (PAYLOAD_TOO_LARGE)',
  415: 'The body is not JSON (UNSUPPORTED_MEDIA_TYPE)',
  409: 'Conflict: the database refused the change (CONSTRAINT_VIOLATION), or a write with the same Idempotency-Key is still running (IDEMPOTENCY_KEY_IN_USE)',
  422: 'A result larger than the tenant may read at once (RESULT_TOO_LARGE), or an Idempotency-Key sent again with a different request (IDEMPOTENCY_KEY_REUSED)',
  429: 'Rate limited: too many requests from this address, user, token or tenant, or too many at once (RATE_LIMITED, CONCURRENCY_LIMITED); retry after Retry-After',
  503: 'Busy: the tenant database is locked by another writer or every executor is busy (DATABASE_BUSY); retry after Retry-After',
} as const
export type ErrorStatus = keyof typeof ERROR_STATUSES

/** Answers that tell the client when to try again. */
export const RETRY_AFTER_STATUSES: readonly ErrorStatus[] = [429, 503]

/** Routes served inside a tenant (its database is reached): deadlines, locks and 404 for an unknown tenant. */
const TENANT_ROUTE = /^\/(api\/t\/|api\/tenant(\/|$)|v2(\/|$)|v3(\/|$))/
const SQL_OVER_HTTP_ROUTE = /^\/v[23](\/|$)/
const DATA_ROUTE = /^\/api\/(t\/:slug|tenant)\/data\//
/** Documented routes that answer without credentials: the Hrana version probes. */
const PUBLIC_ROUTE = /^\/v[23]$/

/**
 * The error statuses a route can answer, from what it is: every documented route can be
 * refused as invalid (400), too slow (408) and rate limited (429), and needs credentials (401,
 * 403), but for the Hrana version probes; one with path parameters or under a tenant can name what does not exist
 * (404); one with a body can be sent too much or not JSON (413, 415); one served inside a tenant
 * can find its database busy (503); SQL-over-HTTP can read past its row cap (422); a data API
 * write can meet a constraint or an idempotency key in use (409) or reuse a key (422).
 */
export function errorStatusesOf(route: Pick<RouteOptions, 'url' | 'method' | 'schema'>): ErrorStatus[] {
  if (PUBLIC_ROUTE.test(route.url)) return [400, 408, 429]
  const statuses: ErrorStatus[] = [400, 401, 403, 408, 429]
  const tenantRoute = TENANT_ROUTE.test(route.url)
  if (route.url.includes(':') || tenantRoute) statuses.push(404)
  if (route.schema?.body) statuses.push(413, 415)
  if (SQL_OVER_HTTP_ROUTE.test(route.url) && route.schema?.body) statuses.push(422)
  // The data API's writes: a constraint or a key in use (409), a key reused (422).
  if (DATA_ROUTE.test(route.url) && [route.method].flat().some((m) => m !== 'GET' && m !== 'HEAD')) statuses.push(409, 422)
  if (tenantRoute) statuses.push(503)
  return statuses.sort((a, b) => a - b)
}

/**
 * Declares the error answers of a documented route: each status it can answer (see
 * `errorStatusesOf`), described, with the server's one error body (or the route's own `4xx` /
 * `5xx` body, a superset, where it declares one), and `4xx` / `5xx` for the rest. A status
 * the route declares itself is kept.
 */
function withErrorResponses(route: RouteOptions): void {
  if (!route.schema || route.schema.hide) return
  const response = (route.schema.response ?? {}) as Record<string, z.ZodType>
  const clientError = response['4xx'] ?? errorResponse
  const serverError = response['5xx'] ?? errorResponse
  const declared: Record<string, unknown> = { '4xx': clientError, '5xx': serverError }
  for (const status of errorStatusesOf(route)) declared[status] = clientError.describe(ERROR_STATUSES[status])
  route.schema = { ...route.schema, response: { ...declared, ...response } }
}

/**
 * jsonSchemaTransform, then the `Retry-After` header on the answers that carry it (a zod
 * schema describes a body, not headers).
 */
const transform: typeof jsonSchemaTransform = (input) => {
  const out = jsonSchemaTransform(input)
  const response = (out.schema as { response?: Record<string, Record<string, unknown>> }).response
  for (const status of RETRY_AFTER_STATUSES) {
    const answer = response?.[status]
    if (answer) answer.headers = { 'retry-after': { type: 'integer', minimum: 1, description: 'Seconds to wait before retrying' } }
  }
  return out
}
