import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Tenantry } from 'tenantry'
import { toHttpError } from './errors.js'
import './principal.js'

export interface CreateAppOptions {
  tenantry: Tenantry
  /** Largest request body accepted, in bytes. @default 1048576 */
  bodyLimit?: number
  /** pino options or `false`. @default { level: process.env.LOG_LEVEL ?? 'info' } */
  logger?: FastifyServerOptions['logger']
}

/** The Tenantry HTTP app: a thin face over `core` (see ARCHITECTURE.md, One request, walked). */
export async function createApp(options: CreateAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    logger: options.logger ?? { level: process.env.LOG_LEVEL ?? 'info' },
  })

  app.setErrorHandler((error, request, reply) => {
    const http = toHttpError(error)
    if (http.status >= 500) request.log.error({ err: error }, 'request failed')
    void reply.status(http.status).send({ error: { code: http.code, message: http.message } })
  })
  app.setNotFoundHandler((_request, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: 'Not found' } })
  })

  app.get('/healthz', async () => {
    await options.tenantry.catalog.countTenants(['ready'])
    return { status: 'ok' }
  })

  return app
}
