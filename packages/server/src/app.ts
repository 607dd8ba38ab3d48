import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyServerOptions } from 'fastify'
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod'
import { TenantryError, type Tenantry } from 'tenantry'
import { admin } from './admin/index.js'
import { authentication, createTenantryAuth, migrateAuthSchema, platformAdminSet, type EmailSender, type TenantryAuth } from './auth/index.js'
import { claims } from './claims/index.js'
import { consoleFallback } from './console/index.js'
import { allowedOrigins, cors } from './cors/index.js'
import { dataApi } from './data/index.js'
import { SERVER_ERROR_CODES } from './error-codes.js'
import { toHttpError } from './errors.js'
import type { FeatureOptions, ServerFeature, ServerInstance, TenantFeature } from './feature.js'
import { observability } from './observability/index.js'
import { openapi } from './openapi/index.js'
import './principal.js'
import { rateLimits } from './rate-limits/index.js'
import { readOnlyAccess } from './read-only-access/index.js'
import { lazyChild } from './observability/lazy-child.js'
import { parseServerConfig } from './server-config.js'
import { services } from './services/index.js'
import { sqlOverHttp } from './sql-over-http/index.js'
import { Organizations, tenants } from './tenants/index.js'
import { tokens } from './tokens/index.js'

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
   * More features served under every tenant (`/api/t/:slug/…` and `/api/tenant/…`), after the
   * built-in ones. Their routes run with `request.tenant` admitted, reach tenant data inside
   * `inTenant`, and declare their schemas in zod like every route (see `TenantFeature`).
   */
  tenantFeatures?: readonly TenantFeature[]
  /** More features outside any tenant (they see `request.principal`). */
  features?: readonly ServerFeature[]
  /** How the server sends email (e.g. telling an account's owner that someone signed up with their email). @default logs that one was due */
  sendEmail?: EmailSender
  /**
   * The web console's build, served at `/` (see console/index.ts); `false` serves none.
   * @default $TENANTRY_CONSOLE_DIR, else the installed `@tenantry/console` package's `dist/`
   */
  consoleDir?: string | false
}

/** The app `createApp` builds: Fastify with zod schemas, and the Better Auth instance it signs in with. */
export type TenantryApp = ServerInstance & { auth: TenantryAuth }

/**
 * Paths the authentication feature leaves alone: Better Auth judges its own credentials,
 * SQL-over-HTTP verifies its token itself (once per pipeline), the rest are public.
 */
const PUBLIC_PATHS = ['/api/auth/', '/v2', '/healthz', '/metrics', '/docs', '/openapi.json']

/** The features served under every tenant prefix, in order, before `CreateAppOptions.tenantFeatures`. */
const TENANT_FEATURES: readonly TenantFeature[] = [dataApi, claims, tokens, readOnlyAccess, services]

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

/**
 * A connection Node gave up on before it became a request (headers too slow or malformed):
 * answered in the API's error shape where the socket still takes it, and logged as one debug
 * line with no stack trace, since under a slow-client attack there is one per connection.
 */
function clientErrorHandler(this: { log: FastifyBaseLogger }, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  this.log.debug({ code: error.code ?? null }, `client connection dropped: ${error.message}`)
  if (socket.writable) {
    const [status, code, message] =
      error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'REQUEST_TIMEOUT', SERVER_ERROR_CODES.REQUEST_TIMEOUT]
        : error.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'HEADERS_TOO_LARGE', SERVER_ERROR_CODES.HEADERS_TOO_LARGE]
          : [400, 'VALIDATION_FAILED', 'The request is not valid HTTP']
    const body = JSON.stringify({ error: { code, message } })
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  }
  socket.destroy()
}

/**
 * The Tenantry HTTP app: a thin face over `core` (see docs/architecture.md, One request,
 * walked), made of one Fastify plugin per feature. Every route declares its params, query,
 * body and answers in zod: they validate the request (unknown fields are refused by name),
 * serialize the answer and are the OpenAPI document.
 */
export async function createApp(options: CreateAppOptions): Promise<TenantryApp> {
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
  const { http } = config
  // Fastify's own request lines are off: the observability feature logs one per request, with the tenant on it.
  const app = Fastify({
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // Path parameters up to 128 characters (claim ids): find-my-way answers 414 past 100 by default.
    routerOptions: { maxParamLength: 200 },
    logger,
    logController: new LogController({ disableRequestLogging: true }),
    // Each request's child logger (its request id) is made only when a line is written: pino's
    // `child` costs µs per request, and most requests write nothing below the access line.
    childLoggerFactory: (logger, bindings, options) => (options.level || options.serializers ? logger.child(bindings, options) : lazyChild(logger, bindings)),
    // Node and Fastify wait for slow clients forever (requestTimeout 0) or for minutes (headers):
    // a client sending a byte a second would hold its socket, and a file descriptor, that long.
    connectionTimeout: http.idleTimeout,
    keepAliveTimeout: http.keepAliveTimeout,
    requestTimeout: http.requestTimeout,
    maxRequestsPerSocket: http.maxRequestsPerSocket,
    // Node checks those deadlines every 30 s by default, which would let a slow client stay 30 s past them.
    http: { headersTimeout: http.headersTimeout, connectionsCheckingInterval: Math.min(1_000, http.headersTimeout) },
    clientErrorHandler,
    // Whose X-Forwarded-For is believed for `request.ip`, which every limit by address (and
    // Better Auth's sign-in throttle) keys on: nobody's by default, or a client could pick its own.
    // A hop count is given as proxy-addr reads it (the nearest `n` hops are trusted).
    trustProxy: typeof config.trustProxy === 'number' ? trustHops(config.trustProxy) : config.trustProxy,
  }).withTypeProvider<ZodTypeProvider>()

  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  // Bodies are JSON. Fastify also parses text/plain by default, which would reach a JSON route
  // as a string; without a parser, any other content type is a 415.
  app.removeContentTypeParser('text/plain')

  // Answers that finish while the server shuts down close their connection: an idle keep-alive
  // socket would otherwise hold the shutdown until keepAliveTimeout.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  // A refusal (429) is held a moment before it goes out (`server.limits.refusalDelayMs`): a
  // flood of retries on many connections then costs this loop a timer per connection per delay.
  const refusalDelayMs = config.limits.enabled ? config.limits.refusalDelayMs : 0
  // Callback style: every answer passes here, and all but refusals pass at once, without a promise.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close')
    else if (reply.statusCode === 429 && refusalDelayMs > 0) return void setTimeout(() => done(null, payload), refusalDelayMs)
    done(null, payload)
  })

  app.setErrorHandler((error, request, reply) => {
    const http = toHttpError(error)
    if (http.status >= 500) request.log.error({ err: error }, 'request failed')
    void reply.status(http.status).send({ error: { code: http.code, message: http.message } })
  })
  // The web console answers the GETs no route does (outside the API's paths); the rest is the API's 404.
  const serveConsole = await consoleFallback(app, { env, ...(options.consoleDir !== undefined ? { dir: options.consoleDir } : {}) })
  app.setNotFoundHandler(async (request, reply) => {
    if (await serveConsole(request, reply)) return reply
    return reply.status(404).send({ error: { code: 'NOT_FOUND', message: 'Not found' } })
  })

  // One list of other origins: CORS answers them, and Better Auth (and so the Origin check on
  // cookie-authenticated writes) trusts them.
  const corsOrigins = allowedOrigins(config.cors, env)
  const auth = createTenantryAuth({
    tenantry,
    baseURL,
    env,
    corsOrigins,
    log: (level, message) => app.log[level]({ component: 'better-auth' }, message),
    logger: app.log,
    signInLimit: config.limits.enabled ? { max: config.limits.signIn, windowSeconds: Math.ceil(config.limits.window / 1000) } : false,
    ...(options.sendEmail ? { sendEmail: options.sendEmail } : {}),
  })
  await migrateAuthSchema(auth)
  const organizations = new Organizations(auth, tenantry, app.log)
  // An erased tenant's memberships end: core cannot reach Better Auth, so the server removes the
  // tenant's organization (and with it its members and invitations) from the erase itself.
  const stopErasing = tenantry.tenants.onErase(async (tenant) => ({ organizations: await organizations.removeForTenant(tenant.id) }))
  app.addHook('onClose', async () => stopErasing())
  const base: FeatureOptions = { tenantry, config, baseURL }

  // First: it documents the routes registered after it.
  await app.register(openapi, { version: '0.1.0' })
  const metricsToken = config.metrics.token ?? env.TENANTRY_METRICS_TOKEN
  if (metricsToken !== undefined && metricsToken.length < 16) {
    throw new TenantryError('INVALID_CONFIG', 'TENANTRY_METRICS_TOKEN: use at least 16 characters')
  }
  await app.register(observability, { ...base, ...(metricsToken ? { metricsToken } : {}) })
  // Before authentication and limits: a preflight carries no credentials and is answered here.
  await app.register(cors, { origins: corsOrigins, maxAge: config.cors.maxAge })
  await app.register(authentication, {
    tenantry,
    auth,
    organizations,
    baseURL,
    platformAdmins: platformAdminSet(config.platformAdmins, env),
    publicPaths: PUBLIC_PATHS,
  })
  // After authentication (limits are per tenant, token, user or address), before the routes it limits.
  const redisUrl = config.redis ?? env.TENANTRY_REDIS_URL
  await app.register(rateLimits, { config, tenantry, selfAuthenticatedPaths: ['/v2', '/v3', '/v3-protobuf'], ...(redisUrl ? { redisUrl } : {}) })
  await app.register(tenants, { ...base, organizations, features: [...TENANT_FEATURES, ...(options.tenantFeatures ?? [])] })
  await app.register(admin, { ...base, organizations })
  for (const feature of options.features ?? []) await app.register(feature, base)
  await app.register(sqlOverHttp, { tenantry })

  return Object.assign(app, { auth })
}

/** Trusts the nearest `hops` proxies, as Fastify does for a number (its types only take a function). */
function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops
}
