import { randomBytes } from 'node:crypto'
import { PassThrough } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Tenantry } from 'tenantry'
import { HttpError, toHttpError } from '../errors.js'
import type { ServerInstance } from '../feature.js'
import { noQuery } from '../schemas.js'
import { parseServerConfig } from '../server-config.js'
import { authenticateToken } from '../tokens/token-auth.js'
import { jsonLine, LineWriter, ReaderGone, type ItemEncoder } from './line-writer.js'
import { cursorEntries, runRequest, type HranaBatch, type HranaRequest, type HranaResult } from './hrana.js'
import { decodeCursorBody, decodePipelineBody, encodeCursorItem, encodePipelineResponse, PROTOBUF_CONTENT_TYPE, ProtobufDecodeError } from './protobuf.js'
import { cursorBody, cursorResponse, pipelineBody, pipelineResponse, sqlErrorResponse, versionResponse } from './schemas.js'
import { StreamPool, tokenTenant, translate, type OpenStream, type TokenPrincipal } from './streams.js'
import { hranaOverWebSocket, type WebSocketOptions } from './websocket.js'

export interface SqlOverHttpOptions {
  tenantry: Tenantry
  /** An idle stream (a `client.transaction()` between requests) is closed, and rolled back, after this. @default config `server.sqlOverHttp.streamIdleMs` ?? 10000 */
  streamIdleMs?: number
  /** Open streams at most, across all tokens. @default config `server.sqlOverHttp.maxStreams` ?? 128 */
  maxStreams?: number
  /** Open streams at most per token. @default config `server.sqlOverHttp.maxStreamsPerToken` ?? 8 */
  maxStreamsPerToken?: number
  /** Open streams at most per tenant. @default config `server.sqlOverHttp.maxStreamsPerTenant` ?? a quarter of `maxStreams` */
  maxStreamsPerTenant?: number
  /** Rows one statement may return at most, within the data source's `rawSql.maxRows`. @default the data source's */
  maxRows?: number
  /** Requests in one pipeline at most. @default 1000 */
  maxRequests?: number
  /** Hrana over WebSocket (`ws://` and `libsql://` URLs, at `/`): its per-connection caps. */
  webSocket?: WebSocketOptions
}

/**
 * SQL-over-HTTP: libSQL's Hrana protocol (versions 2 and 3, JSON, and version 3 in protobuf) so
 * that `@libsql/client` works unmodified with `createClient({ url, authToken })`.
 *
 * - `GET /v2`, `GET /v3` and `GET /v3-protobuf` answer the version probes; `POST /v2/pipeline`,
 *   `POST /v3/pipeline` and `POST /v3-protobuf/pipeline` run a pipeline; `POST /v3/cursor` and
 *   `POST /v3-protobuf/cursor` run a batch read as a cursor. The protobuf routes only decode and
 *   encode (protobuf.ts): the requests run in the same handlers as JSON's.
 *   Hrana over WebSocket is served at `/` (websocket.ts), with the same streams and handlers.
 * - The tenant comes only from the token (`Authorization: Bearer tnt_…`); sessions are not accepted.
 * - Offered only where the engine offers raw sessions for the tenant's placement (SQLite,
 *   `database` isolation): a connection of its own on the tenant's file, never the router's,
 *   read-only at the engine level for read-only tokens. Statements run in the engine's executor
 *   processes, never on this event loop, each under a deadline and the statement guard.
 * - Streams: a pipeline without a baton opens a stream; unless it ends with `close`, the
 *   answer carries a new baton that continues it (how `client.transaction()` works). A
 *   baton is single-use, bound to its token, and dropped (rolling back) after `streamIdleMs`.
 *   Streams are limited overall, per tenant and per token, so one tenant cannot take them all.
 * - What ends a pipeline is answered with its status: `STATEMENT_TIMEOUT` and
 *   `TRANSACTION_TIMEOUT` (408), `RESULT_TOO_LARGE` (422), `RATE_LIMITED` (429) and
 *   `DATABASE_BUSY` (503), the last two with `Retry-After`. The stream is then closed.
 *
 * Register without `fastify-plugin`: its error handler stays within these routes.
 */
export async function sqlOverHttp(app: ServerInstance, options: SqlOverHttpOptions): Promise<void> {
  const { tenantry } = options
  const config = parseServerConfig(tenantry.config.server).sqlOverHttp
  const idleMs = options.streamIdleMs ?? config.streamIdleMs ?? 10_000
  const maxStreams = options.maxStreams ?? config.maxStreams ?? 128
  const maxPerToken = options.maxStreamsPerToken ?? config.maxStreamsPerToken ?? 8
  const maxPerTenant = options.maxStreamsPerTenant ?? config.maxStreamsPerTenant ?? Math.max(1, Math.floor(maxStreams / 4))
  const maxRequests = options.maxRequests ?? 1000
  /** Idle streams, by the baton that continues them. */
  const streams = new Map<string, OpenStream>()
  /** Every open stream of both transports, under one set of limits. */
  const pool = new StreamPool(tenantry, config, { maxStreams, maxPerToken, maxPerTenant, maxRows: options.maxRows })
  // Closing a session inside a transaction rolls it back.
  const closeStream = (stream: OpenStream) => pool.close(stream)
  const closeIdle = (baton: string) => {
    const stream = streams.get(baton)
    if (!stream) return
    streams.delete(baton)
    void closeStream(stream)
  }

  // Hrana over WebSocket at `/`: the same streams, limits and request handlers.
  await hranaOverWebSocket(app, { tenantry, pool, ...definedOnly(config.webSocket), ...options.webSocket })

  app.addHook('onClose', async () => {
    for (const baton of [...streams.keys()]) closeIdle(baton)
    // The executor processes stop with the server, whoever owns Tenantry; they start again on demand.
    await pool.closeAll()
  })

  // Errors on these routes are answered so that both our clients ({ error: { code, message } })
  // and libSQL's (a top-level `message`, content type exactly application/json) read them.
  app.setErrorHandler((error, request, reply) => {
    const http = toHttpError(error)
    if (http.status >= 500 && http.code !== 'DATABASE_BUSY') request.log.error({ err: error }, 'SQL-over-HTTP request failed')
    sendError(reply, http)
  })

  const tags = ['SQL-over-HTTP']
  const errors = { '4xx': sqlErrorResponse, '5xx': sqlErrorResponse }

  // Hrana 2 and 3 over HTTP, JSON encoding: v3 adds `get_autocommit`, the `is_autocommit`
  // condition and cursors. Note that `@libsql/client` (up to 0.18) opens HTTP connections at
  // version 2 without probing; `@libsql/hrana-client` asked for version 3 probes
  // `/v3-protobuf` only (its JSON `/v3` entry is commented out): v3 JSON serves clients that
  // speak it themselves.
  for (const version of ['v2', 'v3'] as const) {
    app.get(
      `/${version}`,
      { schema: { tags, summary: `Hrana ${version.slice(1)} version probe`, querystring: noQuery, response: { 200: versionResponse, ...errors } } },
      async () => ({}),
    )
  }

  // Hrana 3 in protobuf (`@libsql/hrana-client` at version 3 probes this first). Not in the
  // OpenAPI document, which describes JSON bodies: the messages are the spec's (protobuf.ts).
  app.get('/v3-protobuf', { schema: { hide: true, querystring: noQuery } }, async () => ({}))

  // Protobuf bodies, decoded into the JSON encoding's shape, which the routes' schemas then
  // check as they check JSON: a field of the wrong kind is the same 400. Bytes that are no
  // message at all are a 400 too; a protobuf body anywhere else, a 415.
  app.addContentTypeParser(PROTOBUF_CONTENT_TYPE, { parseAs: 'buffer' }, (request, body, done) => {
    const decoder = PROTOBUF_DECODERS[request.routeOptions.url ?? '']
    if (!decoder) return done(new HttpError('UNSUPPORTED_MEDIA_TYPE', `${PROTOBUF_CONTENT_TYPE} is accepted only by /v3-protobuf/pipeline and /v3-protobuf/cursor`), undefined)
    try {
      done(null, decoder(body as Buffer))
    } catch (error) {
      if (error instanceof ProtobufDecodeError) return done(new HttpError('VALIDATION_FAILED', error.message), undefined)
      done(error as Error, undefined)
    }
  })
  /** The protobuf routes take protobuf only: a JSON body there is a client that mixed its encodings up. */
  const protobufOnly = async (request: FastifyRequest) => {
    const type = String(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    if (type !== PROTOBUF_CONTENT_TYPE) throw new HttpError('UNSUPPORTED_MEDIA_TYPE', `Send the body as ${PROTOBUF_CONTENT_TYPE} (a Hrana 3 protobuf message)`)
  }

  /** The stream a request continues (its baton) or opens, under the stream limits. */
  const takeStream = async (principal: TokenPrincipal, baton: string | null | undefined): Promise<OpenStream> => {
    if (baton !== undefined && baton !== null) {
      const found = streams.get(baton)
      // A baton is bound to the token that opened its stream: another token cannot continue it.
      if (!found || found.tokenId !== principal.tokenId) {
        throw new HttpError('INVALID_BATON', 'Unknown or expired baton: the stream was closed (idle too long, or already used)')
      }
      // Single use: the answer carries the next baton.
      streams.delete(baton)
      clearTimeout(found.timer)
      return found
    }
    return pool.open(principal)
  }

  /** Runs `work` on the stream; what ends it closes the stream (rolling back). Returns the next baton, or null once closed. */
  const onStream = async (stream: OpenStream, work: () => Promise<void>): Promise<string | null> => {
    try {
      await work()
    } catch (error) {
      // The client gets no baton back: the stream ends here, rolling back what it left open.
      await closeStream(stream)
      throw translate(error)
    }
    if (stream.closed) {
      await closeStream(stream)
      return null
    }
    const next = randomBytes(24).toString('base64url')
    stream.timer = setTimeout(() => closeIdle(next), idleMs)
    stream.timer.unref()
    streams.set(next, stream)
    return next
  }

  // The token is checked before the body is read: a caller without one learns nothing more.
  // Its tenant is the request's, so the tenant's and the token's request rates count it (the
  // rate-limit hook runs after this one).
  const onRequest = async (request: FastifyRequest) => {
    const principal = await requireToken(tenantry, request)
    request.principal = principal
    request.tenant = await tokenTenant(tenantry, principal)
  }

  /** Runs a pipeline (either encoding's body, once decoded and checked) and gives its answer. */
  const runPipeline = async (principal: TokenPrincipal, body: { baton?: string | null | undefined; requests: unknown[] }) => {
    const stream = await takeStream(principal, body.baton)
    const results: HranaResult[] = []
    const baton = await onStream(stream, async () => {
      for (const item of body.requests as HranaRequest[]) results.push(await runRequest(stream, item))
    })
    return { baton, base_url: null, results }
  }

  for (const version of ['v2', 'v3'] as const) {
    app.post(
      `/${version}/pipeline`,
      {
        onRequest,
        schema: {
          tags,
          summary: `Run a Hrana ${version.slice(1)} pipeline on the token's tenant (libSQL's protocol: use @libsql/client)`,
          security: [{ token: [] }],
          querystring: noQuery,
          body: pipelineBody(maxRequests),
          response: { 200: pipelineResponse, ...errors },
        },
      },
      async (request, reply) => {
        const answer = await runPipeline(request.principal as TokenPrincipal, request.body)
        void reply.type('application/json')
        return answer
      },
    )
  }

  app.post(
    '/v3-protobuf/pipeline',
    { onRequest, preValidation: protobufOnly, schema: { hide: true, querystring: noQuery, body: pipelineBody(maxRequests) } },
    async (request, reply) => {
      const answer = await runPipeline(request.principal as TokenPrincipal, request.body)
      void reply.type(PROTOBUF_CONTENT_TYPE)
      return Buffer.from(encodePipelineResponse(answer))
    },
  )

  /**
   * Runs a batch as a cursor on the request's stream, and answers with its items as they come,
   * each encoded by `encode` (newline-separated JSON, or length-delimited protobuf).
   */
  const runCursor = async (request: FastifyRequest, reply: FastifyReply, body: { baton?: string | null | undefined; batch: unknown }, contentType: string, encode: ItemEncoder) => {
    const stream = await takeStream(request.principal as TokenPrincipal, body.baton)
    streamCursor(request, reply, stream, body.batch as HranaBatch, contentType, encode)
    return reply
  }

  app.post(
    '/v3/cursor',
    {
      onRequest,
      schema: {
        tags,
        summary: "Run a Hrana 3 batch on the token's tenant and read its results as a cursor",
        description:
          'The answer is newline-separated JSON: first `{ baton, base_url }`, then the entries `step_begin`, `row`, `step_end` or `step_error` of each step. ' +
          "Rows are read from the database as the client reads the answer, a batch at a time, so a cursor is not held to the pipeline's row and size caps " +
          "(a statement that writes still is); each statement stops at its deadline, and a client that stops reading is cut off then.",
        security: [{ token: [] }],
        querystring: noQuery,
        body: cursorBody,
        response: { 200: cursorResponse, ...errors },
      },
    },
    async (request, reply) => runCursor(request, reply, request.body, 'application/json', jsonLine),
  )

  app.post(
    '/v3-protobuf/cursor',
    { onRequest, preValidation: protobufOnly, schema: { hide: true, querystring: noQuery, body: cursorBody } },
    async (request, reply) => runCursor(request, reply, request.body, PROTOBUF_CONTENT_TYPE, encodeCursorItem as ItemEncoder),
  )

  /** Answers with the cursor's items as they are read from the database (see `/v3/cursor`'s description). */
  function streamCursor(request: FastifyRequest, reply: FastifyReply, stream: OpenStream, batch: HranaBatch, contentType: string, encode: ItemEncoder): void {
    // Written as the rows come, a batch at a time from the executor, waiting for the client to
    // read them (backpressure): nothing holds a whole result. The status is sent first, so what
    // ends the stream from here on is an `error` entry, and the baton sent up front is then unknown.
    const out = new PassThrough()
    // A client that goes away mid-cursor ends its stream (rolling back), not a wait forever.
    reply.raw.once('close', () => out.destroy())
    const lines = new LineWriter(out, undefined, encode)
    const watch = {
      // A client that stops reading holds its statement's executor until the statement's
      // deadline, which ends the statement: the client, blocked, is then cut off.
      statement: (signal: AbortSignal) =>
        signal.addEventListener(
          'abort',
          () => {
            if (lines.waiting) reply.raw.destroy()
          },
          { once: true },
        ),
    }
    const baton = randomBytes(24).toString('base64url')
    // A stream payload is piped as it is, past the schema's serializer.
    void reply.type(contentType).send(out as unknown as string)
    void (async () => {
      try {
        await lines.write({ baton, base_url: null })
        // The request's own mistake ends in an `error` entry, and the stream goes on.
        for await (const entry of cursorEntries(stream, batch, watch)) await lines.write(entry)
      } catch (error) {
        if (error instanceof ReaderGone) {
          await closeStream(stream)
          return
        } else {
          const http = toHttpError(translate(error))
          if (http.status >= 500 && http.code !== 'DATABASE_BUSY') request.log.error({ err: error }, 'SQL-over-HTTP cursor failed')
          lines.end({ type: 'error', error: { code: http.code, message: http.message } })
          await closeStream(stream)
          return
        }
      }
      if (stream.closed) await closeStream(stream)
      else {
        stream.timer = setTimeout(() => closeIdle(baton), idleMs)
        stream.timer.unref()
        streams.set(baton, stream)
      }
      lines.end()
    })()
  }
}

/** The protobuf routes' body decoders, by route. */
const PROTOBUF_DECODERS: Record<string, (body: Buffer) => unknown> = {
  '/v3-protobuf/pipeline': decodePipelineBody,
  '/v3-protobuf/cursor': decodeCursorBody,
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

function sendError(reply: FastifyReply, error: HttpError): void {
  // "Try again shortly" answers say when: a busy database or executor, a limit reached.
  if (error.status === 429 || error.status === 503) {
    const cause = error.cause as { details?: { retryAfterSeconds?: unknown } } | undefined
    const seconds = cause?.details?.retryAfterSeconds
    void reply.header('retry-after', String(typeof seconds === 'number' ? seconds : 1))
  }
  // As bytes: Fastify would add `; charset=utf-8` to a string's type, and libSQL's clients read
  // the message only when the type is exactly application/json (else "HTTP status 422" alone).
  void reply
    .status(error.status)
    .header('content-type', 'application/json')
    .send(Buffer.from(JSON.stringify({ message: error.message, code: error.code, error: { code: error.code, message: error.message } })))
}

/** The keys that are set: `exactOptionalPropertyTypes` keeps an explicit `undefined` from overriding a default. */
function definedOnly<T extends object>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> }
}
