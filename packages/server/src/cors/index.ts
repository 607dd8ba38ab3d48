import fastifyCors from '@fastify/cors'
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { ServerInstance } from '../feature.js'
import type { CorsConfig } from '../server-config.js'

/**
 * Paths a listed origin may call from its own pages: the data API and everything else under
 * `/api/` (sign-in, the user's tenants), and SQL-over-HTTP's pipelines. Health, metrics and the
 * docs are for operators, not for apps.
 */
const CORS_PATHS = ['/api/', '/v2/', '/v3/', '/v3-protobuf/']

/** Methods the routes above use; a preflight asking for another gets no permission for it. */
const METHODS = ['GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE']

/** Request headers an app may send cross-origin: JSON bodies, integration tokens, writes' idempotency keys, a file's byte range. */
const ALLOWED_HEADERS = ['content-type', 'authorization', 'idempotency-key', 'range']

/** Answer headers an app may read cross-origin: when to retry after a 429 or 503, whether a write was a replay, a file's range. */
const EXPOSED_HEADERS = ['retry-after', 'idempotent-replayed', 'content-range', 'accept-ranges']

/**
 * The origins of apps served elsewhere that may call the server from a browser: the config's
 * `server.cors.origins` and `TENANTRY_TRUSTED_ORIGINS`. One list: the same origins are Better
 * Auth's trusted origins (beside the server's own), so a listed app both reads answers (CORS)
 * and passes the Origin check on cookie-authenticated writes (auth/index.ts); no origin is
 * trusted by one check and not the other.
 */
export function allowedOrigins(config: CorsConfig, env: NodeJS.ProcessEnv): string[] {
  const fromEnv = (env.TENANTRY_TRUSTED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean)
  return [...new Set([...config.origins, ...fromEnv])]
}

export interface CorsOptions {
  /** Exact origins (`https://app.example.com`): a request from any other gets no CORS header at all. */
  origins: readonly string[]
  /** How long a browser may cache a preflight's answer, in seconds. */
  maxAge: number
}

/**
 * CORS with `@fastify/cors`, for apps on another origin (the browser SDK, `@tenantry/client`).
 * A listed origin gets its own origin back with `Access-Control-Allow-Credentials: true`, so it
 * may send the session cookie; an unlisted one gets nothing (its preflight is a 404 like any
 * unknown route), and never `*`. Preflights are answered in the first `onRequest` hook, before
 * authentication and rate limits, which a browser's preflight (no cookie, no token) cannot pass.
 *
 * CORS only lets a page read answers: it is no defence. A cookie-authenticated write must still
 * carry a trusted Origin (auth/index.ts), and the listed origins are trusted there too.
 * WebSocket upgrades are left alone (they have no preflight; the socket's own handshake judges
 * its origin).
 */
export const cors = fp(
  async (app: ServerInstance, options: CorsOptions) => {
    const origins = new Set(options.origins)
    // No origin listed (the default): no request could get a CORS header, so no hook runs for any.
    if (origins.size === 0) return
    const applies = (request: FastifyRequest) => {
      const origin = request.headers.origin
      if (!origin || !origins.has(origin)) return false
      if (request.headers.upgrade?.toLowerCase() === 'websocket') return false
      const path = request.url.split('?')[0]!
      return CORS_PATHS.some((p) => path.startsWith(p) || path === p.slice(0, -1))
    }
    await app.register(fastifyCors, {
      hook: 'onRequest',
      delegator: (request, callback) =>
        callback(null, {
          origin: applies(request) ? request.headers.origin! : false,
          credentials: true,
          methods: METHODS,
          allowedHeaders: ALLOWED_HEADERS,
          exposedHeaders: EXPOSED_HEADERS,
          maxAge: options.maxAge,
          strictPreflight: false,
        }),
    })
  },
  { name: 'tenantry-cors', fastify: '5.x' },
)
