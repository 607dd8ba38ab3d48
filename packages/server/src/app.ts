import Fastify, { LogController, type FastifyServerOptions } from 'fastify'
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod'
import type { Tenantry } from 'tenantry'
import { admin } from './admin/index.js'
import { authentication, createTenantryAuth, migrateAuthSchema, platformAdminSet, type TenantryAuth } from './auth/index.js'
import { dataApi } from './data/index.js'
import { toHttpError } from './errors.js'
import type { FeatureOptions, ServerFeature, ServerInstance, TenantFeature } from './feature.js'
import { observability } from './observability/index.js'
import { openapi } from './openapi/index.js'
import './principal.js'
import { readOnlyAccess } from './read-only-access/index.js'
import { parseServerConfig } from './server-config.js'
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
}

/** The app `createApp` builds: Fastify with zod schemas, and the Better Auth instance it signs in with. */
export type TenantryApp = ServerInstance & { auth: TenantryAuth }

/**
 * Paths the authentication feature leaves alone: Better Auth judges its own credentials,
 * SQL-over-HTTP verifies its token itself (once per pipeline), the rest are public.
 */
const PUBLIC_PATHS = ['/api/auth/', '/v2', '/healthz', '/metrics', '/docs', '/openapi.json']

/** The features served under every tenant prefix, in order, before `CreateAppOptions.tenantFeatures`. */
const TENANT_FEATURES: readonly TenantFeature[] = [dataApi, tokens, readOnlyAccess]

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
  // Fastify's own request lines are off: the observability feature logs one per request, with the tenant on it.
  const app = Fastify({
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    logger,
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<ZodTypeProvider>()

  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  // Bodies are JSON. Fastify also parses text/plain by default, which would reach a JSON route
  // as a string; without a parser, any other content type is a 415.
  app.removeContentTypeParser('text/plain')

  app.setErrorHandler((error, request, reply) => {
    const http = toHttpError(error)
    if (http.status >= 500) request.log.error({ err: error }, 'request failed')
    void reply.status(http.status).send({ error: { code: http.code, message: http.message } })
  })
  app.setNotFoundHandler((_request, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: 'Not found' } })
  })

  const auth = createTenantryAuth({
    tenantry,
    baseURL,
    env,
    log: (level, message) => app.log[level]({ component: 'better-auth' }, message),
    logger: app.log,
  })
  await migrateAuthSchema(auth)
  const organizations = new Organizations(auth, tenantry, app.log)
  const base: FeatureOptions = { tenantry, config, baseURL }

  // First: it documents the routes registered after it.
  await app.register(openapi, { version: '0.1.0' })
  await app.register(observability, base)
  await app.register(authentication, {
    tenantry,
    auth,
    organizations,
    baseURL,
    platformAdmins: platformAdminSet(config.platformAdmins, env),
    publicPaths: PUBLIC_PATHS,
  })
  await app.register(tenants, { ...base, organizations, features: [...TENANT_FEATURES, ...(options.tenantFeatures ?? [])] })
  await app.register(admin, { ...base, organizations })
  for (const feature of options.features ?? []) await app.register(feature, base)
  await app.register(sqlOverHttp, { tenantry })

  return Object.assign(app, { auth })
}
