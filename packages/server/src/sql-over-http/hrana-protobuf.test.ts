/**
 * Hrana 3 in protobuf: `/v3-protobuf/*` over HTTP and the `hrana3-protobuf` WebSocket
 * subprotocol, with libSQL's own protocol client, `@libsql/hrana-client` 0.10, asked for
 * version 3 (which probes `/v3-protobuf` first over HTTP, and offers `hrana3-protobuf` first
 * over WebSocket). `@libsql/client` itself (up to 0.18) opens both transports at version 2, in
 * JSON; e2e/sql-over-http-clients.test.ts covers it, drizzle-orm and kysely-libsql.
 *
 * Which encoding ran is asserted from the requests the client sent (its `fetch`) and the
 * subprotocol the server chose.
 */
import * as hrana from '@libsql/hrana-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { TenantryConfig } from 'tenantry'
import { startTestServer, type TestServer } from '../testing/index.js'

/** The buffered caps of this server's pipelines: a cursor reads past them. */
const MAX_ROWS = 50
const BIG = 3 * MAX_ROWS
/** Requests per minute from one address without credentials (a WebSocket upgrade is one). */
const ANONYMOUS = 20

let server: TestServer
const tokens = {} as Record<'rw' | 'ro', string>
const clients: hrana.Client[] = []
/** Paths the HTTP clients requested, in order. */
const requested: string[] = []

const countingFetch = (request: Request) => {
  requested.push(new URL(request.url).pathname)
  return fetch(request)
}

const openHttp = (token: string) => {
  const client = hrana.openHttp(server.url, token, countingFetch as unknown as typeof fetch, undefined, 3)
  clients.push(client)
  return client
}

const openWs = (token: string) => {
  const client = hrana.openWs(server.url.replace('http:', 'ws:'), token, 3)
  clients.push(client)
  return client
}

beforeAll(async () => {
  server = await startTestServer({
    config: {
      dataSources: [{ id: 'local', engine: 'sqlite', rawSql: { maxRows: MAX_ROWS } }],
      // Few requests without credentials: the protobuf routes must count against the token, not the address.
      server: { limits: { anonymous: ANONYMOUS } },
      migrations: {
        tenant: {
          '0001_notes': {
            up: async (db) => {
              await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('title', 'text', (c) => c.notNull()).addColumn('data', 'blob').execute()
            },
          },
        },
      },
    } as TenantryConfig,
  })
  await server.tenantry.createTenant({ slug: 'acme' })
  await server.tenantry.withTenant('acme', () => server.tenantry.db().insertInto('notes').values([{ id: 1, title: 'one' }, { id: 2, title: 'two' }]).execute())
  tokens.rw = (await server.tenantry.tokens.create('acme', { readOnly: false })).token
  tokens.ro = (await server.tenantry.tokens.create('acme', { readOnly: true })).token
})

afterAll(async () => {
  for (const client of clients) client.close()
  await server?.stop()
})

/** What a step's promise rejects with. */
const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => new Error('it succeeded'),
    (error: unknown) => error,
  )

/** The same checks over both transports: statements, parameters, stored SQL, describe, sequence, errors, batches as cursors. */
async function exercise(client: hrana.Client): Promise<void> {
  const stream = client.openStream()
  try {
    // Every parameter form, mixed, as SQLite binds them.
    expect((await stream.queryValue(['SELECT title FROM notes WHERE id = ?2 AND ?1 = 1', [1, 2]])).value).toBe('two')
    expect(Array.from((await stream.queryRow(['SELECT ?, ?', [7, 'x']])).row!)).toEqual([7, 'x'])
    expect((await stream.queryValue(['SELECT :a || @b || $c', { a: 'x', b: 'y', c: 'z' }])).value).toBe('xyz')
    expect(Array.from((await stream.queryRow(['SELECT ?1, :n, ?1', { 1: 5, n: 'n' }])).row!)).toEqual([5, 'n', 5])
    // Values of every type, both ways: a 64-bit integer, a float, text, a blob, null.
    const big = 9007199254740993n
    stream.intMode = 'bigint'
    const row = (await stream.queryRow(['SELECT ?, ?, ?, ?, ?', [big, 1.5, 'ü', new Uint8Array([0, 1, 255]), null]])).row!
    expect([row[0], row[1], row[2], [...new Uint8Array(row[3] as ArrayBuffer)], row[4]]).toEqual([big, 1.5, 'ü', [0, 1, 255], null])
    stream.intMode = 'number'
    // Stored SQL: a stream's over HTTP, the connection's over WebSocket.
    const owner = (client instanceof hrana.WsClient ? client : stream) as { storeSql(sql: string): hrana.Sql }
    const stored = owner.storeSql('SELECT count(*) FROM notes WHERE id >= :min')
    expect((await stream.queryValue([stored, { min: 2 }])).value).toBe(1)
    stored.close()
    const described = await stream.describe('SELECT id, title FROM notes WHERE id = ? AND title = :t')
    expect(described).toMatchObject({ paramNames: [undefined, ':t'], columns: [{ name: 'id', decltype: 'INTEGER' }, { name: 'title', decltype: 'TEXT' }], isExplain: false, isReadonly: true })
    // A transaction: sequence, autocommit, a write, an error with its base code, rollback.
    expect(await stream.getAutocommit()).toBe(true)
    await stream.sequence("BEGIN; INSERT INTO notes (id, title) VALUES (3, 'three');")
    expect(await stream.getAutocommit()).toBe(false)
    const inserted = await stream.run("INSERT INTO notes (id, title) VALUES (4, 'four')")
    expect(inserted).toMatchObject({ affectedRowCount: 1, lastInsertRowid: 4n })
    expect(await failure(stream.run("INSERT INTO notes (id, title) VALUES (1, 'dup')"))).toMatchObject({ code: 'SQLITE_CONSTRAINT' })
    expect(await failure(stream.run('DROP TABLE notes'))).toMatchObject({ code: 'SQL_FORBIDDEN' })
    await stream.run('ROLLBACK')
    expect((await stream.queryValue('SELECT count(*) FROM notes')).value).toBe(2)

    // A batch (a cursor in Hrana 3) with conditions, and a result past the buffered row cap.
    const batch = stream.batch(true)
    const begin = batch.step()
    const beginDone = begin.run('BEGIN')
    const bigStep = batch.step().condition(hrana.BatchCond.ok(begin))
    const bigRows = bigStep.query(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${BIG}) SELECT x, 'row ' || x AS label FROM c`)
    const bad = batch.step().condition(hrana.BatchCond.ok(bigStep))
    const badDone = failure(bad.run("INSERT INTO notes (id, title) VALUES (1, 'dup')"))
    const after = batch.step().condition(hrana.BatchCond.and(batch, [hrana.BatchCond.error(bad), hrana.BatchCond.not(hrana.BatchCond.isAutocommit(batch))])).queryValue('SELECT count(*) FROM notes')
    const commit = batch.step().condition(hrana.BatchCond.not(hrana.BatchCond.isAutocommit(batch))).run('COMMIT')
    await batch.execute()
    await beginDone
    const rows = (await bigRows)!.rows
    expect(rows.length).toBe(BIG)
    expect(rows.every((r, i) => r[0] === i + 1 && r.label === `row ${i + 1}`)).toBe(true)
    expect(await badDone).toMatchObject({ code: 'SQLITE_CONSTRAINT' })
    expect((await after)!.value).toBe(2)
    expect(await commit).toBeDefined()
    expect(await stream.getAutocommit()).toBe(true)

    // A ROLLBACK inside a batch ends its transaction, which `is_autocommit` sees at once: the
    // step behind it, held to the transaction (as @libsql/client builds batches), is skipped.
    const rollback = stream.batch(true)
    const open = rollback.step()
    void open.run('BEGIN')
    const write = rollback.step().condition(hrana.BatchCond.ok(open))
    void write.run("INSERT INTO notes (id, title) VALUES (5, 'five')")
    const undo = rollback.step().condition(hrana.BatchCond.ok(write))
    void undo.run('ROLLBACK')
    const held = rollback.step().condition(hrana.BatchCond.and(rollback, [hrana.BatchCond.ok(undo), hrana.BatchCond.not(hrana.BatchCond.isAutocommit(rollback))]))
    const skipped = held.run("INSERT INTO notes (id, title) VALUES (6, 'six')")
    await rollback.execute()
    expect(await skipped).toBeUndefined()
    expect((await stream.queryValue('SELECT count(*) FROM notes')).value).toBe(2)
  } finally {
    stream.close()
  }
  // The same statement buffered (execute) stays within the caps.
  const other = client.openStream()
  try {
    expect(await failure(other.query(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${BIG}) SELECT x FROM c`))).toMatchObject({ code: 'RESULT_TOO_LARGE' })
  } finally {
    other.close()
  }
}

describe('Hrana 3 protobuf over HTTP (/v3-protobuf)', () => {
  it('is what @libsql/hrana-client at version 3 negotiates, and runs statements, parameters, describe, sequence, errors and cursor batches', async () => {
    requested.length = 0
    const client = openHttp(tokens.rw)
    expect(await client.getVersion()).toBe(3)
    await exercise(client)
    expect(requested[0]).toBe('/v3-protobuf')
    expect(requested.filter((p) => p === '/v3-protobuf/pipeline').length).toBeGreaterThan(5)
    expect(requested).toContain('/v3-protobuf/cursor')
    expect(requested.filter((p) => !p.startsWith('/v3-protobuf'))).toEqual([])
  })

  it('applies read-only tokens as the JSON routes do', async () => {
    const stream = openHttp(tokens.ro).openStream()
    try {
      expect(await failure(stream.run("UPDATE notes SET title = 'x'"))).toMatchObject({ code: 'READ_ONLY' })
      expect((await stream.queryValue('SELECT count(*) FROM notes')).value).toBe(2)
    } finally {
      stream.close()
    }
  })

  it('sends the extended SQLite code beside the base one, in Error field 3', async () => {
    const response = await fetch(`${server.url}/v3-protobuf/pipeline`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.rw}`, 'content-type': 'application/x-protobuf' },
      // PipelineReqBody { requests: [StreamRequest { execute: { stmt: { sql } } }, StreamRequest { close }] }
      body: pipelineBody("INSERT INTO notes (id, title) VALUES (1, 'dup')"),
    })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('application/x-protobuf')
    const text = Buffer.from(await response.arrayBuffer()).toString('latin1')
    expect(text).toContain('SQLITE_CONSTRAINT_PRIMARYKEY')
    expect(text).toMatch(/SQLITE_CONSTRAINT[^_]/)
  })

  it('counts its requests against the token, not as requests without credentials by address', async () => {
    const statuses: number[] = []
    for (let i = 0; i < ANONYMOUS + 5; i++) {
      const response = await fetch(`${server.url}/v3-protobuf/pipeline`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.ro}`, 'content-type': 'application/x-protobuf' },
        body: pipelineBody('SELECT 1'),
      })
      statuses.push(response.status)
    }
    expect(new Set(statuses)).toEqual(new Set([200]))
  })

  it('answers bad protobuf with a 400, a JSON body with a 415, and no token with a 401', async () => {
    const post = (path: string, body: Uint8Array | string, type: string, token: string | null = tokens.rw) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body })
    // Not a message at all (a truncated length-delimited field).
    for (const path of ['/v3-protobuf/pipeline', '/v3-protobuf/cursor']) {
      const garbage = await post(path, new Uint8Array([0x12, 0x40, 0x01]), 'application/x-protobuf')
      expect(garbage.status).toBe(400)
      expect(await garbage.json()).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/not a valid Hrana/) })
    }
    // A well-formed message with a request of no type.
    const empty = await post('/v3-protobuf/pipeline', new Uint8Array([0x12, 0x00]), 'application/x-protobuf')
    expect(empty.status).toBe(400)
    expect(await empty.json()).toMatchObject({ code: 'VALIDATION_FAILED' })
    const json = await post('/v3-protobuf/pipeline', JSON.stringify({ requests: [] }), 'application/json')
    expect(json.status).toBe(415)
    expect(await json.json()).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' })
    const elsewhere = await post('/v2/pipeline', pipelineBody('SELECT 1'), 'application/x-protobuf')
    expect(elsewhere.status).toBe(415)
    const anonymous = await post('/v3-protobuf/pipeline', pipelineBody('SELECT 1'), 'application/x-protobuf', null)
    expect(anonymous.status).toBe(401)
  })
})

describe('Hrana 3 protobuf over WebSocket (hrana3-protobuf)', () => {
  it('is the subprotocol chosen when offered, and runs the same requests', async () => {
    const client = openWs(tokens.rw)
    expect(await client.getVersion()).toBe(3)
    expect(await chosenSubprotocol(['hrana3-protobuf', 'hrana3', 'hrana2'])).toBe('hrana3-protobuf')
    expect(await chosenSubprotocol(['hrana3', 'hrana2'])).toBe('hrana3')
    await exercise(client)
  })

  it('closes a connection that sends a text message or bytes that are no ClientMsg', async () => {
    for (const message of ['{"type":"hello"}', new Uint8Array([0x0a, 0x40])]) {
      const socket = new WebSocket(server.url.replace('http:', 'ws:'), ['hrana3-protobuf'])
      const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)))
      await new Promise((resolve) => socket.once('open', resolve))
      socket.send(message)
      expect(await closed).toBe(typeof message === 'string' ? 1003 : 1002)
    }
  })
})

/** The subprotocol the server picks from `offered`. */
async function chosenSubprotocol(offered: string[]): Promise<string> {
  const socket = new WebSocket(server.url.replace('http:', 'ws:'), offered)
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  const chosen = socket.protocol
  socket.close()
  return chosen
}

/** A PipelineReqBody running `sql` then closing, encoded by hand (field numbers from the spec). */
function pipelineBody(sql: string): Uint8Array {
  const text = Buffer.from(sql)
  const field = (tag: number, bytes: Uint8Array) => Buffer.concat([Buffer.from([(tag << 3) | 2]), varint(bytes.length), bytes])
  const stmt = field(1, text)
  const execute = field(2, field(1, stmt))
  const close = field(1, new Uint8Array())
  return Buffer.concat([field(2, execute), field(2, close)])
}

function varint(n: number): Buffer {
  const bytes: number[] = []
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  bytes.push(n)
  return Buffer.from(bytes)
}
