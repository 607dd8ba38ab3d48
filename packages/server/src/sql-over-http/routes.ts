import { randomBytes } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Tenantry } from 'tenantry'
import { HttpError, toHttpError } from '../errors.js'
import type { ServerInstance } from '../feature.js'
import type { Principal } from '../principal.js'
import { noQuery } from '../schemas.js'
import { authenticateToken } from '../tokens/token-auth.js'
import { runRequest, type HranaRequest, type HranaResult, type StreamState } from './hrana.js'
import { pipelineBody, pipelineResponse, sqlErrorResponse, versionResponse } from './schemas.js'

export interface SqlOverHttpOptions {
  tenantry: Tenantry
  /** An idle stream (a `client.transaction()` between requests) is closed, and rolled back, after this. @default 10000 */
  streamIdleMs?: number
  /** Open streams at most, across all tokens. @default 128 */
  maxStreams?: number
  /** Open streams at most per token. @default 8 */
  maxStreamsPerToken?: number
  /** Rows one statement may return at most. @default 10000 */
  maxRows?: number
  /** Requests in one pipeline at most. @default 1000 */
  maxRequests?: number
}

interface OpenStream extends StreamState {
  readonly tokenId: string
  timer: NodeJS.Timeout
}

type TokenPrincipal = Extract<Principal, { kind: 'token' }>

/**
 * SQL-over-HTTP: libSQL's Hrana protocol (version 2, JSON) so that `@libsql/client`
 * works unmodified with `createClient({ url, authToken })`.
 *
 * - `GET /v2` answers the version probe; `POST /v2/pipeline` runs a pipeline.
 * - The tenant comes only from the token (`Authorization: Bearer tnt_…`); sessions are not accepted.
 * - Offered only for tenants with `database` isolation on SQLite: their own file, opened on a
 *   connection of its own (never the router's), read-only at the engine level for read-only
 *   tokens. Every statement passes `prepareGuarded` (see statement-guard.ts).
 * - Streams: a pipeline without a baton opens a stream; unless it ends with `close`, the
 *   answer carries a new baton that continues it (how `client.transaction()` works). A
 *   baton is single-use, bound to its token, and dropped (rolling back) after `streamIdleMs`.
 *
 * Register without `fastify-plugin`: its error handler stays within these routes.
 */
export async function sqlOverHttp(app: ServerInstance, options: SqlOverHttpOptions): Promise<void> {
  const { tenantry } = options
  const idleMs = options.streamIdleMs ?? 10_000
  const maxStreams = options.maxStreams ?? 128
  const maxPerToken = options.maxStreamsPerToken ?? 8
  const maxRows = options.maxRows ?? 10_000
  const maxRequests = options.maxRequests ?? 1000
  const streams = new Map<string, OpenStream>()

  const closeStream = (baton: string) => {
    const stream = streams.get(baton)
    if (!stream) return
    streams.delete(baton)
    clearTimeout(stream.timer)
    stream.closed = true
    // Closing a connection inside a transaction rolls it back.
    stream.db.close()
  }

  app.addHook('onClose', async () => {
    for (const baton of [...streams.keys()]) closeStream(baton)
  })

  // Errors on these routes are answered so that both our clients ({ error: { code, message } })
  // and libSQL's (a top-level `message`, content type exactly application/json) read them.
  app.setErrorHandler((error, request, reply) => {
    const http = toHttpError(error)
    if (http.status >= 500) request.log.error({ err: error }, 'SQL-over-HTTP request failed')
    sendError(reply, http)
  })

  const tags = ['SQL-over-HTTP']
  const errors = { '4xx': sqlErrorResponse, '5xx': sqlErrorResponse }

  app.get(
    '/v2',
    { schema: { tags, summary: 'Hrana version probe', querystring: noQuery, response: { 200: versionResponse, ...errors } } },
    async () => ({}),
  )

  app.post(
    '/v2/pipeline',
    {
      // The token is checked before the body is read: a caller without one learns nothing more.
      onRequest: async (request) => {
        request.principal = await requireToken(tenantry, request)
      },
      schema: {
        tags,
        summary: "Run a Hrana pipeline on the token's tenant (libSQL's protocol: use @libsql/client)",
        security: [{ token: [] }],
        querystring: noQuery,
        body: pipelineBody(maxRequests),
        response: { 200: pipelineResponse, ...errors },
      },
    },
    async (request, reply) => {
      const principal = request.principal as TokenPrincipal
      const body = request.body

      let stream: OpenStream
      if (body.baton !== undefined && body.baton !== null) {
        const found = streams.get(body.baton)
        // A baton is bound to the token that opened its stream: another token cannot continue it.
        if (!found || found.tokenId !== principal.tokenId) {
          throw new HttpError('INVALID_BATON', 'Unknown or expired baton: the stream was closed (idle too long, or already used)')
        }
        // Single use: the answer carries the next baton.
        streams.delete(body.baton)
        clearTimeout(found.timer)
        stream = found
      } else {
        const perToken = [...streams.values()].filter((s) => s.tokenId === principal.tokenId).length
        if (streams.size >= maxStreams || perToken >= maxPerToken) {
          throw new HttpError('RATE_LIMITED', 'Too many open SQL streams; close transactions you no longer use')
        }
        stream = await openStream(tenantry, principal, maxRows)
      }

      const results: HranaResult[] = []
      try {
        for (const item of body.requests as HranaRequest[]) results.push(runRequest(stream, item))
      } catch (error) {
        stream.db.close()
        throw error
      }

      let baton: string | null = null
      if (stream.closed) {
        if (stream.db.open) stream.db.close()
      } else {
        baton = randomBytes(24).toString('base64url')
        stream.timer = setTimeout(() => closeStream(baton!), idleMs)
        stream.timer.unref()
        streams.set(baton, stream)
      }
      void reply.type('application/json')
      return { baton, base_url: null, results }
    },
  )
}

/** The token principal of the request, or 401: SQL-over-HTTP accepts integration tokens only. */
async function requireToken(tenantry: Tenantry, request: FastifyRequest): Promise<TokenPrincipal> {
  // Verified on every pipeline, a stream's continuations included: revocation must stop a stream mid-way.
  const principal = await authenticateToken(tenantry, request.headers.authorization)
  if (!principal || principal.kind !== 'token') {
    throw new HttpError('UNAUTHENTICATED', 'SQL-over-HTTP needs an integration token: Authorization: Bearer tnt_…')
  }
  return principal
}

/** A connection of its own on the token's tenant, after checking the engine offers raw sessions for its placement. */
async function openStream(tenantry: Tenantry, principal: TokenPrincipal, maxRows: number): Promise<OpenStream> {
  const tenant = await tenantry.router.resolve({ id: principal.tenantId })
  const engine = await tenantry.dataSources.engine(tenant.placement.dataSourceId)
  // Only where the database itself confines raw SQL (the tenant's own SQLite file): the engine says where.
  const sessions = engine.rawSession
  if (!sessions?.isolations.includes(tenant.placement.isolation)) {
    throw new HttpError(
      'SQL_UNAVAILABLE',
      `SQL-over-HTTP is not offered for tenants with ${tenant.placement.isolation} isolation on ${engine.name}${sessions ? `, only ${sessions.isolations.join(' and ')} isolation` : ''}`,
    )
  }
  const placement = { tenantId: tenant.id, isolation: tenant.placement.isolation, locator: tenant.placement.locator }
  const { database: db } = await sessions.open(placement, { readOnly: principal.readOnly })
  try {
    // The engine set its PRAGMAs; this one is the protocol's (Hrana integers are 64-bit), set before any statement of the client's.
    db.defaultSafeIntegers(true)
  } catch (error) {
    db.close()
    throw error
  }
  return { db, readOnly: principal.readOnly, sqls: new Map(), closed: false, maxRows, tokenId: principal.tokenId, timer: undefined as unknown as NodeJS.Timeout }
}

function sendError(reply: FastifyReply, error: HttpError): void {
  void reply
    .status(error.status)
    .header('content-type', 'application/json')
    .send(JSON.stringify({ message: error.message, code: error.code, error: { code: error.code, message: error.message } }))
}
