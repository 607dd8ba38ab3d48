import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod'
import type { ServerInstance } from '../feature.js'
import { errorResponse } from '../schemas.js'

/**
 * The OpenAPI document at `/openapi.json` and its page at `/docs`, generated from the zod
 * schemas every route declares (the same ones that validate requests). Every documented route
 * also answers errors as `{ error: { code, message } }`, declared here once for all of them.
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
      transform: jsonSchemaTransform,
      // Schemas named with `.meta({ id })` (the recursive ones) become components/schemas.
      transformObject: jsonSchemaTransformObject,
    })
    await app.register(swaggerUi, { routePrefix: '/docs' })
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  },
  { name: 'tenantry-openapi', fastify: '5.x' },
)

/** Declares the error answers of a documented route (4xx and 5xx), unless it declares its own. */
function withErrorResponses(route: RouteOptions): void {
  if (!route.schema || route.schema.hide) return
  const response = (route.schema.response ?? {}) as Record<string, unknown>
  route.schema = { ...route.schema, response: { '4xx': errorResponse, '5xx': errorResponse, ...response } }
}
