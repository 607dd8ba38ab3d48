import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify'
import type { FastifyPluginAsyncZod, ZodTypeProvider } from 'fastify-type-provider-zod'
import type { Tenantry } from 'tenantry'
import type { ServerConfig } from './server-config.js'

/**
 * The app as a feature sees it: Fastify whose route schemas are zod. A route's `params`,
 * `querystring`, `body` and `response` schemas validate the request, serialize the answer
 * and are the OpenAPI document (`/openapi.json`), so the three cannot drift apart.
 */
export type ServerInstance = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>

/** What every feature plugin is given. */
export interface FeatureOptions {
  tenantry: Tenantry
  /** The config's validated `server` section. */
  config: ServerConfig
  /** Public URL of the server, e.g. `http://127.0.0.1:3000`. */
  baseURL: string
}

/**
 * A server feature: one folder (`index.ts`, `routes.ts`, `schemas.ts`, `error-codes.ts`, tests
 * beside them) exporting one Fastify plugin. Wrapped in `fastify-plugin` only when it must reach
 * the routes of its siblings (a hook on every request, a request decorator, the OpenAPI
 * collector); otherwise its hooks and error handler stay within its own routes.
 *
 * @example
 * export const tokens: TenantFeature = async (app, options) => {
 *   tokenRoutes(app, options)
 * }
 */
export type ServerFeature<O extends FeatureOptions = FeatureOptions> = FastifyPluginAsyncZod<O>

/**
 * A feature served under a tenant. It is registered twice, the same way: under `/api/t/:slug`
 * (the tenant named in the path) and under `/api/tenant` (the caller's active tenant, or a
 * token's own). Its routes run only after the request was admitted to the tenant
 * (`request.tenant` is set), must reach tenant data inside `inTenant`, and declare only their
 * own params: the `slug` of the first prefix is added to every route's params by the scope.
 */
export type TenantFeature = ServerFeature<FeatureOptions>

/** A route's hooks of one kind (none, one or a list) with `hook` added after them: for `onRoute` hooks that give routes one. */
export function withRouteHook<T>(hooks: T | T[] | undefined, hook: T): T[] {
  return [...(hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]), hook]
}
