import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { Tenantry } from 'tenantry'
import { registerAdminRoutes } from './admin/routes.js'
import { authenticate, platformAdminSet } from './auth/authenticate.js'
import { createTenantryAuth, migrateAuthSchema, type TenantryAuth } from './auth/index.js'
import { registerAuthRoutes } from './auth/routes.js'
import { registerDataRoutes } from './data/routes.js'
import { toHttpError } from './errors.js'
import { registerMetrics } from './observability/metrics.js'
import { parseServerConfig, type ServerConfig } from './server-config.js'
import { tenantPreHandler, type TenantSource } from './tenants/resolve-tenant.js'
import { registerMeRoutes } from './tenants/routes.js'
import './principal.js'
import { sqlOverHttp } from './sql-over-http/index.js'
import { registerTokenRoutes } from './tokens/routes.js'

/** What a feature gets to add routes under a tenant (`/api/t/:slug/...` and `/api/tenant/...`). */
export interface TenantRouteContext {
  tenantry: Tenantry
  config: ServerConfig
  /** `path` under `/api/t/:slug`, `active` under `/api/tenant`. */
  source: TenantSource
}

export interface CreateAppOptions {
  tenantry: Tenantry
  /** Public URL of the server, for OAuth redirects and trusted origins. @default config server.baseURL ?? BETTER_AUTH_URL ?? 'http://127.0.0.1:3000' */
  baseURL?: string
  /** Largest request body accepted, in bytes. @default 1048576 */
  bodyLimit?: number
  /** pino options (merged over the defaults, which redact credentials) or `false`. @default { level: process.env.LOG_LEVEL ?? 'info', redact } */
  logger?: FastifyServerOptions['logger']
  /** @default process.env */
  env?: NodeJS.ProcessEnv
  /**
   * Extra routes registered under both tenant prefixes, after tenant admission: they run with
   * `request.tenant` set and must call `inTenant` (or `tenantry.withTenant`) for tenant data.
   */
  tenantRoutes?: Array<(scope: FastifyInstance, context: TenantRouteContext) => void | Promise<void>>
  /** Extra routes outside any tenant (they see `request.principal`). */
  routes?: Array<(app: FastifyInstance) => void | Promise<void>>
}

/** Paths under which requests never carry a principal: Better Auth judges its own, the rest are public. */
const UNAUTHENTICATED_PREFIXES = ['/api/auth/', '/healthz', '/metrics', '/docs', '/openapi.json']

/** Never in a log line: credentials in headers, and secrets anywhere in a logged object. */
export const LOG_REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.password',
  '*.token',
  '*.secret',
  '*.clientSecret',
]

/** The Tenantry HTTP app: a thin face over `core` (see ARCHITECTURE.md, One request, walked). */
export async function createApp(options: CreateAppOptions): Promise<FastifyInstance & { auth: TenantryAuth }> {
  const { tenantry } = options
  const env = options.env ?? process.env
  const config = parseServerConfig(tenantry.config.server)
  const baseURL = options.baseURL ?? config.baseURL ?? env.BETTER_AUTH_URL ?? 'http://127.0.0.1:3000'
  const defaults = { level: env.LOG_LEVEL ?? 'info', redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' } }
  const logger =
    options.logger === undefined || options.logger === true
      ? defaults
      : options.logger && typeof options.logger === 'object'
        ? { ...defaults, ...options.logger }
        : options.logger
  // Fastify's own request lines are off: the app logs one line per request itself, with the tenant on it.
  const app = Fastify({ bodyLimit: options.bodyLimit ?? 1024 * 1024, logger, logController: new LogController({ disableRequestLogging: true }) })

  const auth = createTenantryAuth({
    tenantry,
    baseURL,
    env,
    log: (level, message) => app.log[level]({ component: 'better-auth' }, message),
  })
  await migrateAuthSchema(auth)
  const platformAdmins = platformAdminSet(config.platformAdmins, env)

  // Route schemas document the API; input is validated by zod from the declarations, one way for every route.
  app.setValidatorCompiler(() => () => true)

  app.setErrorHandler((error, request, reply) => {
    const http = toHttpError(error)
    if (http.status >= 500) request.log.error({ err: error }, 'request failed')
    void reply.status(http.status).send({ error: { code: http.code, message: http.message } })
  })
  app.setNotFoundHandler((_request, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: 'Not found' } })
  })

  // One line per request, after tenant resolution, so it carries the tenant id; no headers, no query string.
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url ?? null,
        path: request.url.split('?')[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        tenantId: request.tenant?.id ?? null,
        principal: request.principal?.kind ?? null,
      },
      'request completed',
    )
  })

  await app.register(swagger, {
    openapi: {
      info: { title: 'Tenantry', version: '0.1.0', description: 'Tenants, memberships, the data API and administration' },
      components: {
        securitySchemes: {
          session: { type: 'apiKey', in: 'cookie', name: 'better-auth.session_token' },
          token: { type: 'http', scheme: 'bearer', description: 'an integration token, tnt_…' },
        },
      },
      security: [{ session: [] }, { token: [] }],
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  registerMetrics(app, { topTenants: config.metrics.topTenants })

  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0]!
    if (UNAUTHENTICATED_PREFIXES.some((p) => (p.endsWith('/') ? path.startsWith(p) : path === p || path.startsWith(`${p}/`)))) return
    const principal = await authenticate(request, { tenantry, auth, platformAdmins })
    if (principal) request.principal = principal
  })

  await registerAuthRoutes(app, auth, baseURL)

  app.get('/healthz', { schema: { hide: true } }, async () => {
    await tenantry.catalog.countTenants(['ready'])
    return { status: 'ok' }
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  registerMeRoutes(app, tenantry, auth)
  registerAdminRoutes(app, tenantry)

  const scopes: Array<[string, TenantSource, string]> = [
    ['/api/t/:slug', 'path', 'data (tenant by slug)'],
    ['/api/tenant', 'active', 'data (active tenant)'],
  ]
  for (const [prefix, source, tag] of scopes) {
    await app.register(
      async (scope) => {
        // onRequest: a caller the tenant does not admit is turned away before its body is even read.
        scope.addHook('onRequest', tenantPreHandler(tenantry, source))
        registerDataRoutes(scope, tenantry, config, tag)
        registerTokenRoutes(scope, tenantry, baseURL)
        for (const add of options.tenantRoutes ?? []) await add(scope, { tenantry, config, source })
      },
      { prefix },
    )
  }
  for (const add of options.routes ?? []) await add(app)
  await app.register(sqlOverHttp, { tenantry: options.tenantry })

  return Object.assign(app, { auth }) as FastifyInstance & { auth: TenantryAuth }
}
