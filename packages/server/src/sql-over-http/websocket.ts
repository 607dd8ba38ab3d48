import websocket from '@fastify/websocket'
import type { FastifyBaseLogger } from 'fastify'
import type { Tenantry } from 'tenantry'
import type { WebSocket } from 'ws'
import { toHttpError } from '../errors.js'
import type { ServerInstance } from '../feature.js'
import { authenticateToken } from '../tokens/token-auth.js'
import { cursorEntries, runRequest, storeSql, toHranaError, HranaProtocolError, type CursorEntry, type HranaError, type HranaRequest } from './hrana.js'
import { decodeClientMsg, encodeServerMsg, ProtobufDecodeError } from './protobuf.js'
import { hranaBatch, hranaStmt } from './schemas.js'
import { tokenTenant, translate, type OpenStream, type StreamPool, type TokenPrincipal } from './streams.js'

export interface WebSocketOptions {
  /** Streams one connection may hold open (each also counts against its tenant's and token's). @default 8 */
  maxStreamsPerSocket?: number
  /** Requests one connection may have waiting for their answer (`@libsql/client` runs up to 20 at once, three requests each). @default 128 */
  maxPendingRequests?: number
  /** Largest message accepted, in bytes; a larger one closes the connection (1009). @default 1048576 */
  maxMessageBytes?: number
  /** A connection with nothing asked and nothing running for this long is closed (clients reconnect). @default 120000 */
  idleMs?: number
  /** How often the server pings; a peer that did not answer the previous ping is cut off. @default 30000 */
  pingMs?: number
  /** A connection that has not sent an accepted `hello` by then is closed. @default 10000 */
  helloTimeoutMs?: number
}

/** The subprotocols offered, best first (a client that offers several gets the first of these it offers). */
const SUBPROTOCOLS = ['hrana3-protobuf', 'hrana3', 'hrana2', 'hrana1'] as const

/** The subprotocol whose messages are binary protobuf (protobuf.ts); the others' are JSON text. */
const PROTOBUF_SUBPROTOCOL = 'hrana3-protobuf'

/** WebSocket close codes used here (RFC 6455). */
const CLOSE = { normal: 1000, goingAway: 1001, protocol: 1002, unsupported: 1003, policy: 1008 } as const

/** How long shutdown waits for clients to answer the close before cutting their sockets. */
const SHUTDOWN_GRACE_MS = 500

/** Messages received but not yet taken (waiting on a `hello`'s verification) at most, in number and bytes. */
const MAX_QUEUED_MESSAGES = 4096
const MAX_QUEUED_BYTES = 16 * 1024 * 1024

/** Cursor entries sent in one `fetch_cursor` answer at most, whatever the client asks. */
const MAX_FETCH = 1000
/**
 * About how many bytes of values one `fetch_cursor` answer holds at most (Hrana lets an answer
 * carry fewer entries than asked; the client fetches again). Small answers keep the server's
 * memory flat while a cursor streams: an answer of 1000 wide rows is a string of megabytes,
 * which V8 keeps in its large-object space until a full collection.
 */
const MAX_FETCH_BYTES = 64 * 1024

interface SocketStream {
  /** Set once the session opened; undefined while opening, or when opening failed. */
  stream: OpenStream | undefined
  /** Requests on one stream run in order: each waits for the previous one. */
  tail: Promise<void>
  /** Why the stream did not open: its later requests get the same error (the client pipelines them behind the open). */
  refused?: HranaError
}

interface SocketCursor {
  owner: SocketStream
  /** Set once its `open_cursor` has run on the stream (requests behind it wait on the stream's tail). */
  entries?: AsyncGenerator<CursorEntry>
  /** Why its `open_cursor` failed, answered to every `fetch_cursor` behind it. */
  failed?: HranaError
  done: boolean
}

type Message = Record<string, unknown>

/**
 * Hrana over WebSocket (subprotocols `hrana3-protobuf`, in binary messages, and `hrana3`,
 * `hrana2`, `hrana1`, in JSON text), at `/`, which is where `@libsql/client` connects for
 * `ws://host:port` and `libsql://host:port` URLs. A protobuf message is decoded into the JSON
 * shape and handled as a JSON one is; only the codec differs.
 *
 * - The tenant comes only from the token in `hello` (verified as the HTTP routes verify their
 *   `Authorization` header); cookies and the upgrade request's headers are never read, so a
 *   page on another origin cannot ride a signed-in browser (cross-site WebSocket hijacking).
 *   A later `hello` may renew the token, of the same tenant only; on every `open_stream` the
 *   token is verified again, so that revoking it stops the connection.
 * - Streams are the HTTP pipeline's (`StreamPool`): the same limits overall, per tenant and
 *   per token, the same executor sessions with their deadlines and statement shares, and the
 *   same request handlers (`runRequest`, `cursorEntries` in hrana.ts). Stored SQL texts belong
 *   to the connection, as the spec has it.
 * - Per connection: streams and pending requests capped, a message size cap, pings, an idle
 *   close, and a deadline for `hello`. What ends a stream (a deadline, a cap, a busy database)
 *   is that request's error; the stream is then closed and later requests on it fail.
 */
export async function hranaOverWebSocket(app: ServerInstance, options: { tenantry: Tenantry; pool: StreamPool } & WebSocketOptions): Promise<void> {
  const maxStreams = options.maxStreamsPerSocket ?? 8
  const maxPending = options.maxPendingRequests ?? 128
  const idleMs = options.idleMs ?? 120_000
  const pingMs = options.pingMs ?? 30_000
  const helloTimeoutMs = options.helloTimeoutMs ?? 10_000
  const sockets = new Set<WebSocket>()

  await app.register(websocket, {
    options: {
      maxPayload: options.maxMessageBytes ?? 1024 * 1024,
      // The client lists what it speaks; no subprotocol at all is Hrana 1.
      handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
      perMessageDeflate: false,
    },
    // At shutdown every connection is told (1001), and cut after a short grace: a client that
    // never answers the close must not hold the server's close.
    preClose: async function () {
      for (const socket of sockets) socket.close(CLOSE.goingAway, 'Server shutting down')
      const deadline = Date.now() + SHUTDOWN_GRACE_MS
      while (sockets.size && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
      for (const socket of sockets) socket.terminate()
    },
  })

  app.route({
    method: 'GET',
    url: '/',
    // Not part of the HTTP API: a plain GET is the app's usual 404.
    schema: { hide: true },
    handler: (_request, reply) => reply.callNotFound(),
    wsHandler: (socket, request) => {
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
      // Each statement-bearing message is one request of the token's tenant, counted against its
      // plan on the upgrade request, as a pipeline POST is.
      const countRequest = async (principal: TokenPrincipal) => {
        request.principal = principal
        request.tenant = await tokenTenant(options.tenantry, principal)
        await app.countTenantRequest(request)
      }
      const protobuf = socket.protocol === PROTOBUF_SUBPROTOCOL
      serveSocket(socket, app.log, options.tenantry, options.pool, countRequest, { maxStreams, maxPending, idleMs, pingMs, helloTimeoutMs }, protobuf)
    },
  })
}

function serveSocket(
  socket: WebSocket,
  log: FastifyBaseLogger,
  tenantry: Tenantry,
  pool: StreamPool,
  countRequest: (principal: TokenPrincipal) => Promise<void>,
  limits: { maxStreams: number; maxPending: number; idleMs: number; pingMs: number; helloTimeoutMs: number },
  protobuf: boolean,
): void {
  let principal: TokenPrincipal | undefined
  /** The token `principal` was verified from, kept to verify it again when a stream opens. */
  let token = ''
  /** Messages are taken in order; only a `hello` waits (on its token's verification) before the next. */
  let inbox: Promise<void> = Promise.resolve()
  const streams = new Map<number, SocketStream>()
  const cursors = new Map<number, SocketCursor>()
  /** The connection's stored SQL texts, read by all its streams. */
  const sqls = new Map<number, string>()
  let pending = 0
  /** Messages received and not yet taken (they wait while a `hello` is verified). */
  const queued = { count: 0, bytes: 0 }
  let lastActive = Date.now()
  let alive = true
  let ended = false

  const send = (message: object) => {
    if (socket.readyState !== socket.OPEN) return
    if (protobuf) socket.send(encodeServerMsg(message as Message))
    else socket.send(JSON.stringify(message))
  }
  const end = (code: number, reason: string) => {
    if (ended) return
    ended = true
    socket.close(code, reason)
  }

  const helloTimer = setTimeout(() => {
    if (!principal) end(CLOSE.policy, 'No hello in time')
  }, limits.helloTimeoutMs)
  const pinger = setInterval(() => {
    if (socket.readyState !== socket.OPEN) return
    if (!alive) {
      socket.terminate()
      return
    }
    if (pending === 0 && Date.now() - lastActive > limits.idleMs) {
      end(CLOSE.normal, 'Idle')
      return
    }
    alive = false
    socket.ping()
  }, limits.pingMs)
  socket.on('pong', () => {
    alive = true
  })

  socket.once('close', () => {
    ended = true
    clearTimeout(helloTimer)
    clearInterval(pinger)
    for (const cursor of cursors.values()) void cursor.entries?.return(undefined)
    cursors.clear()
    // The streams end with their connection, rolling back what they left open; a statement still
    // running is cut off by its session's close.
    for (const entry of streams.values()) if (entry.stream) void pool.close(entry.stream)
    streams.clear()
  })

  socket.on('message', (data, isBinary) => {
    lastActive = Date.now()
    if (ended) return
    let message: Message
    if (protobuf) {
      if (!isBinary) return end(CLOSE.unsupported, 'Only binary messages are accepted with hrana3-protobuf')
      try {
        message = decodeClientMsg(Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data)
      } catch (error) {
        if (!(error instanceof ProtobufDecodeError)) log.error({ err: error }, 'Hrana over WebSocket: a protobuf message failed to decode')
        return end(CLOSE.protocol, 'A message is not a valid ClientMsg')
      }
    } else {
      if (isBinary) return end(CLOSE.unsupported, 'Only JSON text messages are accepted')
      let parsed: unknown
      try {
        parsed = JSON.parse(String(data))
      } catch {
        return end(CLOSE.protocol, 'A message is not valid JSON')
      }
      if (!isObject(parsed)) return end(CLOSE.protocol, 'A message must be a JSON object')
      message = parsed
    }
    // Clients send their requests right behind `hello`, before it is answered: those wait here,
    // within a bound (past `maxPending` they are answered RATE_LIMITED one by one once taken).
    const size = messageSize(data)
    queued.count++
    queued.bytes += size
    if (queued.count > MAX_QUEUED_MESSAGES || queued.bytes > MAX_QUEUED_BYTES) return end(CLOSE.policy, 'Too many messages waiting')
    inbox = inbox
      .then(() => {
        queued.count--
        queued.bytes -= size
        return take(message)
      })
      .catch((error: unknown) => {
        log.error({ err: error }, 'Hrana over WebSocket: message failed')
        end(CLOSE.protocol, 'Internal error')
      })
  })

  async function take(message: Message): Promise<void> {
    if (ended) return
    if (message.type === 'hello') return hello(message)
    // Close reasons are fixed texts: a client's own text could pass the 123 bytes a reason may hold.
    if (message.type !== 'request') return end(CLOSE.protocol, 'Unknown message type')
    const requestId = message.request_id
    if (!Number.isSafeInteger(requestId)) return end(CLOSE.protocol, 'A request needs an integer request_id')
    if (!principal) return end(CLOSE.protocol, 'A request before an accepted hello')
    const request = message.request
    if (!isObject(request)) return end(CLOSE.protocol, 'A request needs a request object')
    if (pending >= limits.maxPending) {
      return send({ type: 'response_error', request_id: requestId, error: { code: 'RATE_LIMITED', message: `More than ${limits.maxPending} requests pending on this connection` } })
    }
    pending++
    const answered = (outcome: { ok: Message } | { error: HranaError }) => {
      pending--
      lastActive = Date.now()
      if ('ok' in outcome) send({ type: 'response_ok', request_id: requestId, response: outcome.ok })
      else send({ type: 'response_error', request_id: requestId, error: outcome.error })
    }
    dispatch(request, principal).then(answered, (error: unknown) => answered({ error: reportError(error) }))
  }

  async function hello(message: Message): Promise<void> {
    const jwt = typeof message.jwt === 'string' ? message.jwt : ''
    let verified: TokenPrincipal | undefined
    try {
      const found = await authenticateToken(tenantry, `Bearer ${jwt}`)
      if (found?.kind === 'token') verified = found
    } catch {
      // A bad token, like a missing one: refused below with one message for all cases.
    }
    if (!verified) return refuseHello('UNAUTHENTICATED', 'Hrana over WebSocket needs a valid integration token (tnt_…) in hello')
    // The connection's tenant is fixed by its first token: a later hello only renews it.
    if (principal && principal.tenantId !== verified.tenantId) return refuseHello('FORBIDDEN', "A later hello's token must be of the same tenant")
    principal = verified
    token = jwt
    clearTimeout(helloTimer)
    send({ type: 'hello_ok' })
  }

  function refuseHello(code: string, message: string): void {
    send({ type: 'hello_error', error: { code, message } })
    end(CLOSE.policy, 'Hello refused')
  }

  /** Runs one request; resolves to its response, rejects with what becomes its error. */
  async function dispatch(request: Message, caller: TokenPrincipal): Promise<{ ok: Message } | { error: HranaError }> {
    switch (request.type) {
      case 'open_stream': {
        const id = integer(request.stream_id, 'stream_id')
        if (streams.has(id)) throw new HranaProtocolError(`Stream ${id} is already open`)
        // Refused streams are kept until their close_stream, so that the requests behind them fail alike, within a bound.
        if (streams.size >= 4 * limits.maxStreams) throw new HranaProtocolError('Too many streams; close the ones refused')
        const entry: SocketStream = { stream: undefined, tail: Promise.resolve() }
        streams.set(id, entry)
        if ([...streams.values()].filter((e) => !e.refused).length > limits.maxStreams) {
          entry.refused = { code: 'RATE_LIMITED', message: `More than ${limits.maxStreams} streams open on this connection` }
          return { error: entry.refused }
        }
        const opening = (async () => {
          // Verified again, so that revoking a token stops connections that were opened with it.
          const current = await authenticateToken(tenantry, `Bearer ${token}`).catch(() => undefined)
          if (current?.kind !== 'token' || current.tenantId !== caller.tenantId) {
            end(CLOSE.policy, 'The token was revoked or expired')
            throw new HranaProtocolError('The token was revoked or expired')
          }
          const stream = await pool.open(current, sqls)
          // A `close_stream` sent right behind waits for this (its `tail`); a connection that ended does not.
          if (ended) await pool.close(stream)
          else entry.stream = stream
        })()
        entry.tail = opening.catch((error: unknown) => {
          entry.refused = hranaErrorOf(error)
        })
        await opening
        return { ok: { type: 'open_stream' } }
      }
      case 'close_stream': {
        const id = integer(request.stream_id, 'stream_id')
        const entry = streams.get(id)
        if (!entry) return { ok: { type: 'close_stream' } }
        streams.delete(id)
        for (const [cursorId, cursor] of cursors) if (cursor.owner === entry) closeCursor(cursorId)
        await entry.tail
        if (entry.stream) await pool.close(entry.stream)
        return { ok: { type: 'close_stream' } }
      }
      case 'store_sql':
        storeSql(sqls, integer(request.sql_id, 'sql_id'), request.sql as string)
        return { ok: { type: 'store_sql' } }
      case 'close_sql':
        sqls.delete(integer(request.sql_id, 'sql_id'))
        return { ok: { type: 'close_sql' } }
      case 'execute':
        return onStream(request, { type: 'execute', stmt: parse(hranaStmt, request.stmt, 'stmt') })
      case 'batch':
        return onStream(request, { type: 'batch', batch: parse(hranaBatch, request.batch, 'batch') })
      case 'sequence':
      case 'describe':
        return onStream(request, { type: request.type, ...sqlRef(request) })
      case 'get_autocommit':
        return onStream(request, { type: 'get_autocommit' })
      case 'open_cursor': {
        const cursorId = integer(request.cursor_id, 'cursor_id')
        if (cursors.has(cursorId)) throw new HranaProtocolError(`Cursor ${cursorId} is already open`)
        if (cursors.size >= limits.maxStreams) throw new HranaProtocolError('Too many open cursors')
        const batch = parse(hranaBatch, request.batch, 'batch')
        const owner = streams.get(integer(request.stream_id, 'stream_id'))
        if (!owner) throw new HranaProtocolError(`No open stream ${String(request.stream_id)}`)
        // Known at once, so that a `fetch_cursor` sent right behind finds it; it runs after this
        // request on the stream's tail, by which time `entries` is set (or `failed`).
        const cursor: SocketCursor = { owner, done: false }
        cursors.set(cursorId, cursor)
        return onEntry(request, async (stream, entry) => {
          if (readingCursor(entry, cursor)) return { error: CURSOR_OPEN }
          // Nothing runs yet: each `fetch_cursor` runs the steps as far as its entries need.
          cursor.entries = cursorEntries(stream, batch)
          return { ok: { type: 'open_cursor' } }
        }).then(
          (answer) => {
            if ('error' in answer) cursor.failed = answer.error
            return answer
          },
          (error: unknown) => {
            cursor.failed = hranaErrorOf(error)
            throw error
          },
        )
      }
      case 'fetch_cursor': {
        const cursorId = integer(request.cursor_id, 'cursor_id')
        const cursor = cursors.get(cursorId)
        if (!cursor) throw new HranaProtocolError(`No open cursor ${cursorId}`)
        const max = Math.min(Math.max(1, integer(request.max_count, 'max_count')), MAX_FETCH)
        return chain(cursor.owner, async () => {
          const entries: CursorEntry[] = []
          if (!cursor.entries) {
            cursor.done = true
            entries.push({ type: 'error', error: cursor.failed ?? { code: 'CURSOR_CLOSED', message: 'The cursor did not open' } })
          }
          let bytes = 0
          while (!cursor.done && entries.length < max && bytes < MAX_FETCH_BYTES) {
            let next: IteratorResult<CursorEntry>
            try {
              next = await cursor.entries!.next()
            } catch (error) {
              // What ends the stream ends the cursor with an error entry, as over HTTP.
              const http = toHttpError(translate(error))
              entries.push({ type: 'error', error: { code: http.code, message: http.message } })
              cursor.done = true
              if (cursor.owner.stream) await pool.close(cursor.owner.stream)
              break
            }
            if (next.done) cursor.done = true
            else {
              entries.push(next.value)
              bytes += entryBytes(next.value)
            }
          }
          return { ok: { type: 'fetch_cursor', entries, done: cursor.done } }
        })
      }
      case 'close_cursor': {
        const cursorId = integer(request.cursor_id, 'cursor_id')
        const cursor = cursors.get(cursorId)
        if (!cursor) return { ok: { type: 'close_cursor' } }
        cursors.delete(cursorId)
        // In the stream's order, and answered once its statement stopped: a request behind it runs on a free connection.
        await chain(cursor.owner, async () => {
          await cursor.entries?.return(undefined)
        })
        return { ok: { type: 'close_cursor' } }
      }
      default:
        throw new HranaProtocolError(`Unknown request type ${JSON.stringify(request.type)}`)
    }
  }

  /** Whether a cursor of the stream (other than `except`) is open and not read to its end. */
  function readingCursor(owner: SocketStream, except?: SocketCursor): boolean {
    for (const cursor of cursors.values()) if (cursor.owner === owner && cursor !== except && cursor.entries && !cursor.done) return true
    return false
  }

  function closeCursor(cursorId: number): void {
    const cursor = cursors.get(cursorId)
    if (!cursor) return
    cursors.delete(cursorId)
    void cursor.entries?.return(undefined)
  }

  /** A stream request, run by the one implementation both transports share (`runRequest`). */
  function onStream(request: Message, hrana: HranaRequest): Promise<{ ok: Message } | { error: HranaError }> {
    return onEntry(request, async (stream, entry) => {
      // The cursor's statement holds the stream's connection until it is read to its end or closed.
      if (hrana.type !== 'get_autocommit' && readingCursor(entry)) return { error: CURSOR_OPEN }
      const result = await runRequest(stream, hrana)
      return result.type === 'ok' ? { ok: result.response } : { error: result.error }
    })
  }

  /** Runs `work` on the request's stream, after the stream's earlier requests; what ends the stream closes it. */
  function onEntry(
    request: Message,
    work: (stream: OpenStream, owner: SocketStream) => Promise<{ ok: Message } | { error: HranaError }>,
  ): Promise<{ ok: Message } | { error: HranaError }> {
    const id = integer(request.stream_id, 'stream_id')
    const entry = streams.get(id)
    if (!entry) throw new HranaProtocolError(`No open stream ${id}`)
    return chain(entry, async () => {
      const stream = entry.stream
      if (entry.refused) return { error: entry.refused }
      if (!stream || stream.closed) return { error: { code: 'STREAM_CLOSED', message: 'The stream is closed' } }
      // In the stream's order, so that a request behind this one (a close_stream) waits for it.
      // Past the plan this request alone is refused (RATE_LIMITED); the stream stays open.
      if (COUNTED_REQUESTS.has(String(request.type))) await countRequest(principal!)
      try {
        return await work(stream, entry)
      } catch (error) {
        await pool.close(stream)
        throw error
      }
    })
  }

  function chain<T>(entry: SocketStream, work: () => Promise<T>): Promise<T> {
    const run = entry.tail.then(work)
    entry.tail = run.then(
      () => {},
      () => {},
    )
    return run
  }

  /** `hranaErrorOf`, logging what the server got wrong (5xx but a busy database). */
  function reportError(error: unknown): HranaError {
    const http = error instanceof HranaProtocolError ? undefined : toHttpError(translate(error))
    if (http && http.status >= 500 && http.code !== 'DATABASE_BUSY') log.error({ err: error }, 'Hrana over WebSocket request failed')
    return hranaErrorOf(error)
  }
}

/** What a request on a stream whose cursor is still being read gets (libSQL's clients wait for the cursor to close first). */
const CURSOR_OPEN: HranaError = {
  code: 'PROTOCOL_ERROR',
  message: 'A cursor is open on this stream: read it to its end or close it (close_cursor) first',
}

/** The requests that run SQL: each counts against the tenant's and the token's request rates. */
const COUNTED_REQUESTS = new Set(['execute', 'batch', 'sequence', 'describe', 'open_cursor'])

/** An error that ends a request, as its Hrana error: a protocol mistake, or what ended the stream (its HTTP code). */
function hranaErrorOf(error: unknown): HranaError {
  if (error instanceof HranaProtocolError) return toHranaError(error)
  const http = toHttpError(translate(error))
  return { code: http.code, message: http.message }
}

/** About the size of a cursor entry once encoded: its values' text, and a little for the rest. */
function entryBytes(entry: CursorEntry): number {
  if (entry.type !== 'row') return 64
  let bytes = 16
  for (const value of entry.row) bytes += 16 + ('value' in value ? String(value.value).length : 'base64' in value ? value.base64.length : 0)
  return bytes
}

function messageSize(data: Buffer | ArrayBuffer | Buffer[]): number {
  return Array.isArray(data) ? data.reduce((sum, part) => sum + part.length, 0) : data.byteLength
}

function isObject(value: unknown): value is Message {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function integer(value: unknown, name: string): number {
  if (!Number.isSafeInteger(value)) throw new HranaProtocolError(`${name} must be an integer`)
  return value as number
}

function parse<T>(schema: { safeParse(value: unknown): { success: true; data: T } | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } } }, value: unknown, name: string): T {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  throw new HranaProtocolError(`${[name, ...issue.path.map(String)].join('.')}: ${issue.message}`)
}

function sqlRef(request: Message): { sql?: string; sql_id?: number } {
  return {
    ...(typeof request.sql === 'string' ? { sql: request.sql } : {}),
    ...(typeof request.sql_id === 'number' ? { sql_id: request.sql_id } : {}),
  }
}
