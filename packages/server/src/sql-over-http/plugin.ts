import { randomBytes } from 'node:crypto'
import Database from 'better-sqlite3'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { SqliteEngine, type Tenantry } from 'tenantry'
import { HttpError, toHttpError } from '../errors.js'
import type { Principal } from '../principal.js'
import { authenticateToken } from '../tokens/token-auth.js'
import { runRequest, type HranaRequest, type HranaResult, type StreamState } from './hrana.js'

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
export async function sqlOverHttp(app: FastifyInstance, options: SqlOverHttpOptions): Promise<void> {
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

  app.get('/v2', async () => ({}))

  app.post('/v2/pipeline', async (request, reply) => {
    const principal = await requireToken(tenantry, request)
    const body = request.body as { baton?: unknown; requests?: unknown } | undefined
    if (!body || typeof body !== 'object' || !Array.isArray(body.requests)) {
      throw new HttpError(400, 'VALIDATION_FAILED', 'Expected { baton, requests: [...] }')
    }
    if (body.requests.length > maxRequests) throw new HttpError(400, 'VALIDATION_FAILED', `At most ${maxRequests} requests per pipeline`)

    let stream: OpenStream
    if (body.baton !== undefined && body.baton !== null) {
      const found = typeof body.baton === 'string' ? streams.get(body.baton) : undefined
      // A baton is bound to the token that opened its stream: another token cannot continue it.
      if (!found || found.tokenId !== principal.tokenId) {
        throw new HttpError(400, 'INVALID_BATON', 'Unknown or expired baton: the stream was closed (idle too long, or already used)')
      }
      // Single use: the answer carries the next baton.
      streams.delete(body.baton as string)
      clearTimeout(found.timer)
      stream = found
    } else {
      const perToken = [...streams.values()].filter((s) => s.tokenId === principal.tokenId).length
      if (streams.size >= maxStreams || perToken >= maxPerToken) {
        throw new HttpError(429, 'RATE_LIMITED', 'Too many open SQL streams; close transactions you no longer use')
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
  })
}

/** The token principal of the request, or 401: SQL-over-HTTP accepts integration tokens only. */
async function requireToken(tenantry: Tenantry, request: FastifyRequest): Promise<TokenPrincipal> {
  // Verified again even when a global hook already did: revocation must stop a stream mid-way.
  const principal = await authenticateToken(tenantry, request.headers.authorization)
  if (!principal || principal.kind !== 'token') {
    throw new HttpError(401, 'UNAUTHENTICATED', 'SQL-over-HTTP needs an integration token: Authorization: Bearer tnt_…')
  }
  return principal
}

/** A connection of its own on the token's tenant file, after checking the placement allows raw SQL. */
async function openStream(tenantry: Tenantry, principal: TokenPrincipal, maxRows: number): Promise<OpenStream> {
  const tenant = await tenantry.router.resolve({ id: principal.tenantId })
  const engine = await tenantry.dataSources.engine(tenant.placement.dataSourceId)
  // Only where the database itself confines raw SQL: the tenant's own SQLite file.
  if (tenant.placement.isolation !== 'database' || !(engine instanceof SqliteEngine)) {
    throw new HttpError(
      403,
      'SQL_UNAVAILABLE',
      `SQL-over-HTTP is offered only for tenants with database isolation on SQLite, not ${tenant.placement.isolation} isolation on ${engine.name}`,
    )
  }
  const path = engine.pathOf({ tenantId: tenant.id, isolation: tenant.placement.isolation, locator: tenant.placement.locator })
  const db = new Database(path, { readonly: principal.readOnly, fileMustExist: true, timeout: 5000 })
  try {
    // The only PRAGMAs on this connection are ours, set before any statement of the client's.
    if (!principal.readOnly) db.pragma('foreign_keys = ON')
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
