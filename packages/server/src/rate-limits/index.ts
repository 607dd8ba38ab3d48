import rateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import type { Tenantry } from 'tenantry'
import { HttpError } from '../errors.js'
import { publicPathPattern } from '../auth/index.js'
import { withRouteHook, type ServerInstance } from '../feature.js'
import type { ServerConfig } from '../server-config.js'
import { limitsOf } from './tenant-limits.js'

export interface RateLimitsOptions {
  /** The config's validated `server` section: `limits`, and the per-slug layer of a tenant's plan. */
  config: ServerConfig
  /** Where a tenant's own plan is looked up (`tenantry.limits`, over `server.limits.tenants`). */
  tenantry: Tenantry
  /** Counts are kept here when given, so that every server process shares them; in memory otherwise. */
  redisUrl?: string
  /**
   * Paths that judge their own credentials after the request arrives (SQL-over-HTTP reads its
   * token from the body's requests): not counted as callers without credentials. A prefix
   * matches the path itself and what is under it.
   */
  selfAuthenticatedPaths?: readonly string[]
}

/** Prefix of every key the limits write in Redis. */
export const RATE_LIMIT_NAMESPACE = 'tenantry-rate-limit:'

/** How long start-up waits for Redis before serving with the limits uncounted. */
const REDIS_READY_WAIT_MS = 2_000

/** How often, at most, a failing limit store is logged: under load it fails on every request. */
const STORE_ERROR_LOG_INTERVAL_MS = 10_000

export { effectiveLimits, limitsOf, type EffectiveTenantLimits, type EffectiveLimit, type LimitSource } from './tenant-limits.js'

/**
 * Fair shares (issue 8): request rates counted with `@fastify/rate-limit`, per tenant (its
 * plan's `tenant` count, sessions and tokens together), per integration token (`token`, within
 * the tenant's), per signed-in user outside a tenant (`user`) and per IP address for callers
 * with no credentials (`anonymous`), each per `window`. A tenant's plan is its own in the
 * catalog, else the config's by slug (`limitsOf`). The address is `request.ip`, which follows
 * `X-Forwarded-For` only from the proxies `server.trustProxy` trusts. Over a limit is `429 RATE_LIMITED` with
 * `Retry-After`, so one tenant gets at most its share and the others are still served.
 *
 * With Redis the counts are shared by every server process; if Redis fails, requests are let
 * through (and the failure logged): a limiter outage must not become an API outage.
 *
 * Wrapped in `fastify-plugin`: its hooks must reach every route. Register it after
 * authentication (it reads `request.principal`) and before the routes it limits.
 */
export const rateLimits = fp(
  async (app: ServerInstance, { config, tenantry, redisUrl, selfAuthenticatedPaths = [] }: RateLimitsOptions) => {
    const limits = config.limits
    if (!limits.enabled) {
      app.decorate('countTenantRequest', async () => {})
      return
    }
    let lastStoreError = 0
    const storeFailed = (error: unknown): void => {
      if (Date.now() - lastStoreError < STORE_ERROR_LOG_INTERVAL_MS) return
      lastStoreError = Date.now()
      app.log.error({ err: error }, 'rate limit store failed; requests are let through unlimited until it recovers')
    }
    // A request waits on the limiter before anything else: no queue while Redis is unreachable
    // (such a request is let through at once), few retries, a short connect timeout.
    const redis = redisUrl
      ? new Redis(redisUrl, { connectTimeout: 1_000, maxRetriesPerRequest: 1, enableOfflineQueue: false, enableAutoPipelining: true })
      : undefined
    if (redis) {
      redis.on('error', (error: Error) => storeFailed(error))
      app.addHook('onClose', async () => {
        await redis.quit().catch(() => redis.disconnect())
      })
      // Serve counted from the first request when Redis is up; start anyway (uncounted) when it is not.
      await new Promise<void>((resolve) => {
        redis.once('ready', resolve)
        setTimeout(resolve, REDIS_READY_WAIT_MS).unref()
      })
    }
    await app.register(rateLimit, {
      global: false,
      timeWindow: limits.window,
      ...(redis ? { redis, nameSpace: RATE_LIMIT_NAMESPACE } : {}),
    })

    const limiter = (scope: string, key: (request: FastifyRequest) => string, max: (request: FastifyRequest) => Promise<number>) =>
      app.createRateLimit({ keyGenerator: (request) => `${scope}:${key(request)}`, max, timeWindow: limits.window })
    const byIp = limiter('ip', (r) => normalizeIP(r.ip), async () => limits.anonymous)
    const byUser = limiter('user', (r) => (r.principal?.kind === 'user' ? r.principal.userId : ''), async () => limits.user)
    // The tenant's plan: its own in the catalog (cached a few seconds), else the config's by slug.
    const rates = async (r: FastifyRequest) => (await limitsOf(tenantry, config, r.tenant!)).rates
    const byTenant = limiter('tenant', (r) => r.tenant!.id, async (r) => (await rates(r)).tenant)
    const byToken = limiter('token', (r) => (r.principal?.kind === 'token' ? r.principal.tokenId : ''), async (r) => (await rates(r)).token)

    /** Counts the request against `limit`; throws `RATE_LIMITED` past it. */
    async function count(limit: ReturnType<typeof limiter>, what: string, request: FastifyRequest, reply?: FastifyReply): Promise<void> {
      let result: Awaited<ReturnType<typeof limit>>
      try {
        result = await limit(request)
      } catch (error) {
        storeFailed(error)
        return
      }
      if (result.isAllowed) return
      // A token's request is counted twice (tenant, token): the headers tell the tighter of the two.
      const shown = reply?.getHeader('x-ratelimit-remaining')
      if (reply && (shown === undefined || result.remaining < Number(shown))) {
        void reply.header('x-ratelimit-limit', result.max)
        void reply.header('x-ratelimit-remaining', result.remaining)
        void reply.header('x-ratelimit-reset', result.ttlInSeconds)
      }
      if (!result.isExceeded) return
      const retryAfter = Math.max(1, result.ttlInSeconds)
      void reply?.header('retry-after', retryAfter)
      throw new HttpError('RATE_LIMITED', `Too many requests for this ${what}; retry in ${retryAfter} s`)
    }

    // Callers with no credentials, on every route (404s too), before a tenant route turns them
    // away: signing in and signing up are what a password guesser calls.
    const selfAuthenticated = publicPathPattern(selfAuthenticatedPaths)
    // Callback style: a signed-in request (most of them) passes without a promise.
    app.addHook('onRequest', (request, reply, done) => {
      if (request.principal || selfAuthenticated.test(request.url)) return done()
      count(byIp, 'address', request, reply).then(() => done(), done)
    })

    // Route-level, so that it runs after every scope's own hooks, once a tenant route has
    // admitted the request to its tenant.
    const countTenantRequest = async (request: FastifyRequest, reply?: FastifyReply) => {
      await count(byTenant, 'tenant', request, reply)
      if (request.principal?.kind === 'token') await count(byToken, 'token', request, reply)
    }
    app.decorate('countTenantRequest', countTenantRequest)
    const limitSignedIn: onRequestAsyncHookHandler = async (request, reply) => {
      const principal = request.principal
      if (!principal) return
      if (request.tenant) await countTenantRequest(request, reply)
      else if (principal.kind === 'user') await count(byUser, 'user', request, reply)
    }
    app.addHook('onRoute', (route: RouteOptions) => {
      route.onRequest = withRouteHook(route.onRequest, limitSignedIn)
    })
  },
  { name: 'tenantry-rate-limits', fastify: '5.x', dependencies: ['tenantry-authentication'] },
)

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Counts one request of `request.tenant` (and of its token, for a token principal) against
     * the tenant's plan, for requests the route hooks do not see one by one (messages of a
     * WebSocket, on its upgrade request). Past a limit it throws `RATE_LIMITED`, and sets
     * `Retry-After` and the `x-ratelimit-*` headers when there is a `reply`.
     */
    countTenantRequest(request: FastifyRequest, reply?: FastifyReply): Promise<void>
  }
}
