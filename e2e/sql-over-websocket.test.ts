/**
 * Hrana over WebSocket as libSQL's own clients speak it: `@libsql/client` with `ws://` and
 * `libsql://…?tls=0` URLs (Hrana 2), `@libsql/hrana-client` at Hrana 3 (cursors,
 * `get_autocommit`), and raw sockets for what no client sends (a cookie instead of a token,
 * a second hello of another tenant, a peer that never answers the close at shutdown).
 */
import { connect } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient, LibsqlError, type Client } from '@libsql/client'
import * as hrana from '@libsql/hrana-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createTenantry, type Tenantry } from 'tenantry'
import { startServer, type RunningServer } from '@tenantry/server'
import { tempDir } from 'tenantry/testing'

const MIGRATIONS = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))
const A_DEADLINE_MS = 1500
const ATTACKER_STREAMS = 3
const SOCKET_STREAMS = 4
const SOCKET_PENDING = 12
const NEVER_ENDS = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c'

const dir = tempDir('tenantry-sql-ws-')
let tenantry: Tenantry
let server: RunningServer
let port: number
const tokens = {} as Record<'rw' | 'ro' | 'other', string>
const clients: Client[] = []

function client(authToken: string, url = `ws://127.0.0.1:${port}`): Client {
  const c = createClient({ url, authToken })
  clients.push(c)
  return c
}

/** A raw Hrana socket: sends `messages` in order, collects what comes back until `count` messages (`untilClose`: and the close). */
async function raw(
  messages: object[],
  count: number,
  options: { protocol?: string; headers?: Record<string, string>; untilClose?: boolean } = {},
): Promise<{ received: any[]; closed: number | undefined }> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`, options.protocol ?? 'hrana2', { headers: options.headers ?? {} })
  const received: any[] = []
  let closed: number | undefined
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.once('open', () => {
      for (const m of messages) socket.send(JSON.stringify(m))
    })
    socket.on('message', (data) => {
      received.push(JSON.parse(String(data)))
      if (received.length >= count && !options.untilClose) resolve()
    })
    socket.once('close', (code) => {
      closed = code
      resolve()
    })
  })
  socket.close()
  return { received, closed }
}

/** A raw Hrana 2 connection kept open: `request` sends one request and resolves to its answer. */
async function connection(token: string) {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`, 'hrana2')
  const answers = new Map<number, (message: any) => void>()
  let nextId = 1
  const closed: Promise<number> = new Promise((resolve) => socket.once('close', (code) => resolve(code)))
  socket.on('message', (data) => {
    const message = JSON.parse(String(data))
    answers.get(message.request_id)?.(message)
  })
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  const hello = new Promise<any>((resolve) => socket.once('message', (data) => resolve(JSON.parse(String(data)))))
  socket.send(JSON.stringify({ type: 'hello', jwt: token }))
  expect(await hello).toEqual({ type: 'hello_ok' })
  return {
    socket,
    closed,
    request(request: object): Promise<any> {
      const id = nextId++
      const answer = new Promise((resolve) => answers.set(id, resolve))
      socket.send(JSON.stringify({ type: 'request', request_id: id, request }))
      return answer
    },
  }
}

/** A pipeline over HTTP with the same token. */
async function pipeline(token: string, sql: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/v2/pipeline`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql } }, { type: 'close' }] }),
  })
  await response.text()
  return response.status
}

beforeAll(async () => {
  tenantry = await createTenantry({
    home: join(dir.path, 'home'),
    migrations: { tenant: MIGRATIONS },
    dataSources: [{ id: 'local', engine: 'sqlite', rawSql: { statementTimeoutMs: 10_000, transactionTimeoutMs: 5_000 } }],
    server: {
      sqlOverHttp: {
        tenants: { attacker: { statementTimeoutMs: A_DEADLINE_MS, maxStreams: ATTACKER_STREAMS } },
        webSocket: { maxStreamsPerSocket: SOCKET_STREAMS, maxPendingRequests: SOCKET_PENDING, maxMessageBytes: 64 * 1024, idleMs: 3_000, pingMs: 500 },
      },
      http: { shutdownTimeout: 10_000 },
    },
  })
  await tenantry.tenants.create({ slug: 'acme' })
  await tenantry.tenants.create({ slug: 'attacker' })
  await tenantry.withTenant('acme', () => tenantry.db().insertInto('jobs').values({ id: 1, company: 'Acme', title: 'Engineer', start_date: '2020-01-01' }).execute())
  tokens.rw = (await tenantry.tokens.create('acme', { readOnly: false, name: 'rw' })).token
  tokens.ro = (await tenantry.tokens.create('acme', { readOnly: true, name: 'ro' })).token
  tokens.other = (await tenantry.tokens.create('attacker', { readOnly: false, name: 'a' })).token
  server = await startServer({ tenantry, port: 0, handleSignals: false, repair: false, app: { logger: false } })
  port = Number(new URL(server.url).port)
})

afterAll(async () => {
  for (const c of clients) c.close()
  await server?.close()
  await tenantry?.close()
  dir.cleanup()
})

describe('@libsql/client over ws:// and libsql://', () => {
  it('executes with every parameter form, on ws:// and on libsql://…?tls=0', async () => {
    for (const url of [`ws://127.0.0.1:${port}`, `libsql://127.0.0.1:${port}?tls=0`]) {
      const db = client(tokens.ro, url)
      const found = await db.execute({ sql: 'SELECT company FROM jobs WHERE id = ?1 AND title = :t', args: [1, 'Engineer'] })
      expect(found.rows[0]!.company).toBe('Acme')
      const named = await db.execute({ sql: 'SELECT :a AS a, @b AS b, $c AS c', args: { a: 1, b: 'two', c: null } })
      expect({ ...named.rows[0] }).toEqual({ a: 1, b: 'two', c: null })
      const blob = await db.execute({ sql: 'SELECT ? AS b, ? AS big', args: [new Uint8Array([1, 2, 3]), 2n ** 40n] })
      expect(new Uint8Array(blob.rows[0]!.b as ArrayBuffer)).toEqual(new Uint8Array([1, 2, 3]))
      expect(blob.rows[0]!.big).toBe(2 ** 40)
    }
  })

  it('runs a batch, a write transaction, a read transaction and executeMultiple', async () => {
    const db = client(tokens.rw)
    await db.batch(
      [
        { sql: 'INSERT INTO jobs (id, company, title, start_date) VALUES (?, ?, ?, ?)', args: [10, 'Batch', 'a', '2021-01-01'] },
        { sql: 'UPDATE jobs SET title = ? WHERE id = ?', args: ['b', 10] },
      ],
      'write',
    )
    const tx = await db.transaction('write')
    await tx.execute({ sql: 'INSERT INTO jobs (id, company, title, start_date) VALUES (11, ?, ?, ?)', args: ['Tx', 'c', '2021-01-01'] })
    await tx.execute('UPDATE jobs SET title = title || title WHERE id = 11')
    await tx.commit()
    const rolledBack = await db.transaction('write')
    await rolledBack.execute("INSERT INTO jobs (id, company, title, start_date) VALUES (12, 'Gone', 'x', '2021-01-01')")
    await rolledBack.rollback()
    await db.executeMultiple(`
      INSERT INTO jobs (id, company, title, start_date) VALUES (13, 'Seq; Co', 'a', '2021-01-01');
      UPDATE jobs SET title = 'd' WHERE id = 13;
    `)
    const read = await client(tokens.ro).transaction('read')
    const rows = (await read.execute('SELECT id, title FROM jobs WHERE id >= 10 ORDER BY id')).rows.map((r) => [r.id, r.title])
    await read.commit()
    expect(rows).toEqual([
      [10, 'b'],
      [11, 'cc'],
      [13, 'd'],
    ])
  })

  it('reports SQLite error codes as libSQL does, and refuses a read-only token\'s write', async () => {
    const rw = client(tokens.rw)
    const error = await rw.execute("INSERT INTO jobs (id, company, title, start_date) VALUES (1, 'Dup', 'x', '2020-01-01')").catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LibsqlError)
    expect((error as LibsqlError).code).toBe('SQLITE_CONSTRAINT')
    // The connection and its next stream go on after an error.
    expect((await rw.execute('SELECT count(*) AS n FROM jobs')).rows[0]!.n).toBeGreaterThan(0)

    const ro = client(tokens.ro)
    const refused = await ro.execute("UPDATE jobs SET title = 'x' WHERE id = 1").catch((e: unknown) => e)
    expect((refused as LibsqlError).code).toBe('READ_ONLY')
    const inTx = await ro.transaction('write')
    await expect(inTx.execute("DELETE FROM jobs")).rejects.toMatchObject({ code: 'READ_ONLY' })
    inTx.close()
    expect((await client(tokens.ro).execute('SELECT title FROM jobs WHERE id = 1')).rows[0]!.title).toBe('Engineer')
  })

  it('refuses a bad token', async () => {
    await expect(client('tnt_not-a-real-token').execute('SELECT 1')).rejects.toThrow(/token/)
    await expect(client('').execute('SELECT 1')).rejects.toThrow()
  })
})

describe('Hrana 3 over WebSocket (@libsql/hrana-client)', () => {
  it('reads batches as cursors and answers get_autocommit', async () => {
    const c = hrana.openWs(`ws://127.0.0.1:${port}`, tokens.rw, 3)
    try {
      expect(await c.getVersion()).toBe(3)
      const stream = c.openStream()
      expect(await stream.getAutocommit()).toBe(true)
      const batch = stream.batch(true)
      const begin = batch.step()
      void begin.run('BEGIN')
      const rows = batch.step().condition(hrana.BatchCond.ok(begin)).query('SELECT id FROM jobs WHERE id IN (1, 10) ORDER BY id')
      const bad = batch.step().run('SELECT * FROM no_such_table')
      await batch.execute()
      expect((await rows)!.rows.map((r) => r.id)).toEqual([1, 10])
      await expect(bad).rejects.toThrow(/no such table/)
      expect(await stream.getAutocommit()).toBe(false)
      await stream.run('ROLLBACK')
      expect(await stream.getAutocommit()).toBe(true)
      stream.close()
    } finally {
      c.close()
    }
  })
})

describe('authentication', () => {
  it('answers hello_error and closes for a bad or missing token; a cookie does not count', async () => {
    const bad = await raw([{ type: 'hello', jwt: 'tnt_bogus' }], 1, { untilClose: true })
    expect(bad.received[0]).toMatchObject({ type: 'hello_error', error: { code: 'UNAUTHENTICATED' } })
    expect(bad.closed).toBe(1008)
    // Cross-site WebSocket hijacking: a signed-in browser's cookie and headers are never read.
    const cookie = await raw([{ type: 'hello' }, { type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } }], 1, {
      headers: { cookie: 'better-auth.session_token=anything', authorization: `Bearer ${tokens.rw}` },
    })
    expect(cookie.received[0]).toMatchObject({ type: 'hello_error' })
  })

  it("refuses a second hello with another tenant's token, and keeps the first tenant", async () => {
    const { received, closed } = await raw(
      [
        { type: 'hello', jwt: tokens.ro },
        { type: 'hello', jwt: tokens.other },
      ],
      2,
      { untilClose: true },
    )
    expect(received[0]).toEqual({ type: 'hello_ok' })
    expect(received[1]).toMatchObject({ type: 'hello_error', error: { code: 'FORBIDDEN' } })
    expect(closed).toBe(1008)
  })

  it('a revoked token opens no more streams: the connection is closed at its next open_stream', async () => {
    const made = await tenantry.tokens.create('acme', { readOnly: true, name: 'soon revoked' })
    const c = await connection(made.token)
    expect(await c.request({ type: 'open_stream', stream_id: 1 })).toMatchObject({ type: 'response_ok' })
    await tenantry.tokens.revoke(made.record.id)
    void c.request({ type: 'open_stream', stream_id: 2 })
    expect(await c.closed).toBe(1008)
  })

  it('a plain GET / (no upgrade) is the usual 404', async () => {
    const response = await fetch(`http://127.0.0.1:${port}/`)
    expect(response.status).toBe(404)
    expect(await response.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'Not found' } })
  })

  it('answers protocol mistakes as errors of their request', async () => {
    const { received } = await raw(
      [
        { type: 'hello', jwt: tokens.ro },
        { type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } },
        { type: 'request', request_id: 2, request: { type: 'execute', stream_id: 1, stmt: { sql: 'SELECT 1', argz: [] } } },
        { type: 'request', request_id: 3, request: { type: 'execute', stream_id: 9, stmt: { sql: 'SELECT 1' } } },
        { type: 'request', request_id: 4, request: { type: 'execute', stream_id: 1, stmt: { sql: 'SELECT 2 AS two' } } },
      ],
      5,
    )
    const byId = new Map(received.slice(1).map((m) => [m.request_id, m]))
    expect(byId.get(2)).toMatchObject({ type: 'response_error', error: { code: 'PROTOCOL_ERROR', message: expect.stringMatching(/argz/) } })
    expect(byId.get(3)).toMatchObject({ type: 'response_error', error: { code: 'PROTOCOL_ERROR' } })
    expect(byId.get(4)).toMatchObject({ type: 'response_ok', response: { type: 'execute', result: { rows: [[{ type: 'integer', value: '2' }]] } } })
  })
})

describe('caps', () => {
  it("counts a connection's streams against its tenant's share, which HTTP shares too, and caps them per connection", async () => {
    const a = await connection(tokens.other)
    for (let id = 1; id <= ATTACKER_STREAMS; id++) expect(await a.request({ type: 'open_stream', stream_id: id })).toMatchObject({ type: 'response_ok' })
    // The tenant's share is taken: another stream, over the socket or HTTP, is refused.
    expect(await a.request({ type: 'open_stream', stream_id: 99 })).toMatchObject({ type: 'response_error', error: { code: 'RATE_LIMITED' } })
    expect(await pipeline(tokens.other, 'SELECT 1')).toBe(429)
    // Another tenant is not affected.
    expect(await pipeline(tokens.ro, 'SELECT 1')).toBe(200)
    // Closing a stream gives its place back.
    expect(await a.request({ type: 'close_stream', stream_id: 1 })).toMatchObject({ type: 'response_ok' })
    expect(await pipeline(tokens.other, 'SELECT 1')).toBe(200)
    // Closing the connection gives every place back.
    a.socket.close()
    await a.closed
    await expect.poll(() => pipeline(tokens.other, 'SELECT 1')).toBe(200)

    const b = await connection(tokens.rw)
    for (let id = 1; id <= SOCKET_STREAMS; id++) expect(await b.request({ type: 'open_stream', stream_id: id })).toMatchObject({ type: 'response_ok' })
    expect(await b.request({ type: 'open_stream', stream_id: 99 })).toMatchObject({ type: 'response_error', error: { code: 'RATE_LIMITED' } })
    b.socket.close()
  })

  it("answers a client's streams past the connection's cap with RATE_LIMITED; within it, all run", async () => {
    const eager = createClient({ url: `ws://127.0.0.1:${port}`, authToken: tokens.ro, concurrency: 20 })
    const tame = createClient({ url: `ws://127.0.0.1:${port}`, authToken: tokens.ro, concurrency: SOCKET_STREAMS })
    clients.push(eager, tame)
    const over = await Promise.allSettled(Array.from({ length: 12 }, () => eager.execute('SELECT 1')))
    const refused = over.filter((r) => r.status === 'rejected')
    expect(refused.length).toBeGreaterThan(0)
    for (const r of refused) expect((r.reason as LibsqlError).code).toBe('RATE_LIMITED')
    const within = await Promise.all(Array.from({ length: 12 }, () => tame.execute('SELECT 1 AS one')))
    expect(within.map((r) => r.rows[0]!.one)).toEqual(Array(12).fill(1))
  })

  it('caps the requests pending on one connection', async () => {
    const c = await connection(tokens.other)
    expect(await c.request({ type: 'open_stream', stream_id: 1 })).toMatchObject({ type: 'response_ok' })
    // One runaway holds the stream until its deadline; the requests behind it wait, up to the cap.
    const answers = [c.request({ type: 'execute', stream_id: 1, stmt: { sql: NEVER_ENDS } })]
    for (let i = 1; i <= SOCKET_PENDING; i++) answers.push(c.request({ type: 'execute', stream_id: 1, stmt: { sql: 'SELECT 1' } }))
    const over = await answers[SOCKET_PENDING]!
    expect(over).toMatchObject({ type: 'response_error', error: { code: 'RATE_LIMITED' } })
    const [runaway, ...rest] = await Promise.all(answers.slice(0, SOCKET_PENDING))
    expect(runaway).toMatchObject({ type: 'response_error', error: { code: 'STATEMENT_TIMEOUT' } })
    // What ends a stream closes it: the requests queued behind are refused, the connection goes on.
    for (const answer of rest) expect(answer).toMatchObject({ type: 'response_error', error: { code: 'STREAM_CLOSED' } })
    expect(await c.request({ type: 'close_stream', stream_id: 1 })).toMatchObject({ type: 'response_ok' })
    expect(await c.request({ type: 'open_stream', stream_id: 1 })).toMatchObject({ type: 'response_ok' })
    c.socket.close()
  })

  it('closes a connection that sends a message over the size cap (1009), and one that stays idle', async () => {
    const big = await connection(tokens.ro)
    big.socket.send(JSON.stringify({ type: 'request', request_id: 1, request: { type: 'store_sql', sql_id: 1, sql: `SELECT '${'x'.repeat(70_000)}'` } }))
    expect(await big.closed).toBe(1009)
    const idle = await connection(tokens.ro)
    expect(await idle.request({ type: 'open_stream', stream_id: 1 })).toMatchObject({ type: 'response_ok' })
    // Pings keep a live peer; inactivity past idleMs (3 s) closes it normally.
    expect(await idle.closed).toBe(1000)
  })
})

describe('load isolation and shutdown', () => {
  it("stops a runaway statement at its deadline while another tenant's WebSocket client keeps answering", async () => {
    const attacker = client(tokens.other)
    const bystander = client(tokens.ro)
    await bystander.execute('SELECT 1')
    const started = Date.now()
    const runaway = attacker.execute(NEVER_ENDS).catch((e: unknown) => e)
    let answered = 0
    while (Date.now() - started < A_DEADLINE_MS / 2) {
      expect((await bystander.execute('SELECT company FROM jobs WHERE id = 1')).rows[0]!.company).toBe('Acme')
      answered++
      // Paced: as fast as the server answers, the bystander's own token ran past its rate limit (600 a minute) on a quick run.
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    const error = await runaway
    expect(Date.now() - started).toBeLessThan(A_DEADLINE_MS + 1000)
    expect((error as LibsqlError).code).toBe('STATEMENT_TIMEOUT')
    expect(answered).toBeGreaterThan(0)
    // The attacker's connection goes on with its next statement.
    expect((await attacker.execute('SELECT 1 AS one')).rows[0]!.one).toBe(1)
  })

  it('closes promptly with sockets open, one of them a peer that never answers the close', async () => {
    const open = client(tokens.rw)
    await open.execute('SELECT 1')
    const tx = await open.transaction('write')
    await tx.execute("INSERT INTO jobs (id, company, title, start_date) VALUES (50, 'Open', 'x', '2021-01-01')")
    // A bare TCP peer that completes the upgrade and then reads nothing more.
    const silent = connect(port, '127.0.0.1')
    await new Promise<void>((resolve) => {
      silent.write(
        `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: hrana2\r\n\r\n`,
      )
      silent.once('data', () => resolve())
    })
    silent.pause()
    const started = Date.now()
    expect(await server.close()).toBe(true)
    // Well before the shutdown bound (10 s): the sockets were closed, not waited for.
    expect(Date.now() - started).toBeLessThan(5_000)
    silent.destroy()
    // The open transaction was rolled back.
    const n = await tenantry.withTenant('acme', () => tenantry.db().selectFrom('jobs').select('id').where('id', '=', 50).execute())
    expect(n).toEqual([])
  })
})
