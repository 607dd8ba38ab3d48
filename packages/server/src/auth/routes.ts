import type { FastifyInstance } from 'fastify'
import { toFetchHeaders } from './authenticate.js'
import { CLIENT_IP_HEADER, type TenantryAuth } from './better-auth.js'

/** Response headers Fastify computes itself for the body it sends. */
const SKIPPED_HEADERS = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'set-cookie'])

/**
 * Mounts Better Auth's handler at `/api/auth/*`. Bodies reach it as the raw bytes the
 * client sent (JSON or form posts from OAuth providers alike): Better Auth validates them
 * against its own zod schemas, so these routes declare none and stay out of our OpenAPI
 * document. Its answers, errors included, are passed on as Better Auth wrote them
 * (`{ code, message }`), so that its own client (`better-auth/client`) reads them.
 */
export async function betterAuthRoutes(app: FastifyInstance, auth: TenantryAuth, baseURL: string): Promise<void> {
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))

    scope.route({
      method: ['GET', 'POST'],
      url: '/api/auth/*',
      schema: { hide: true },
      handler: async (request, reply) => {
        const url = new URL(request.url, baseURL)
        const body = request.body instanceof Buffer && request.method !== 'GET' ? request.body : undefined
        const headers = toFetchHeaders(request)
        // Better Auth's rate limiter reads the address from here: never a client's own claim.
        headers.set(CLIENT_IP_HEADER, request.ip)
        const response = await auth.handler(new Request(url, { method: request.method, headers, ...(body ? { body } : {}) }))
        reply.status(response.status)
        response.headers.forEach((value, name) => {
          if (!SKIPPED_HEADERS.has(name)) void reply.header(name, value)
        })
        const cookies = response.headers.getSetCookie()
        if (cookies.length) void reply.header('set-cookie', cookies)
        const payload = Buffer.from(await response.arrayBuffer())
        return reply.send(payload.length ? payload : undefined)
      },
    })
  })
}
