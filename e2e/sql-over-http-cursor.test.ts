/**
 * Hrana 3 cursors stream (issue 15): a result far past the pipeline's caps read through
 * `/v3/cursor` and over WebSocket (`fetch_cursor`) with libSQL's own protocol client
 * (`@libsql/hrana-client`, which `@libsql/client` is built on), while the server process and its
 * executor processes, measured from outside, grow by less than a bound; a client that stops
 * reading holds its executor until the statement's deadline only, one that goes away frees it
 * at once, and the statement guard and read-only tokens apply to cursor statements.
 *
 * The server runs in its own process (e2e/fixtures/serve-config-child.ts), so that what this
 * process holds (the client keeps every row it reads) is not counted as the server's.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as hrana from '@libsql/hrana-client'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createTenantry } from 'tenantry'
import { tempDir } from 'tenantry/testing'

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))
const CHILD = fileURLToPath(new URL('./fixtures/serve-config-child.ts', import.meta.url))
const MIGRATIONS = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))
const MIB = 1024 * 1024
/** About 100 MB of values: twenty times the pipeline's 10,000-row cap, six times its 16 MiB one. */
const ROWS = 200_000
const TEXT_BYTES = 500
/** What the server and each executor process may grow by while a cursor reads all of it. */
const GROWTH_BOUND = 64 * MIB
/** The deadline of the tenant whose client stops reading. */
const SLOW_DEADLINE_MS = 3000
const ENDLESS = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x, hex(randomblob(200)) FROM c`

const dir = tempDir('tenantry-sql-cursor-')
const home = join(dir.path, 'home')
const config = {
  home,
  migrations: { tenant: MIGRATIONS },
  dataSources: [{ id: 'local', engine: 'sqlite', rawSql: { statementTimeoutMs: 60_000, queueTimeoutMs: 300 } }],
  server: {
    sqlOverHttp: {
      // One statement at a time for these tenants: whether a cursor still holds its executor shows at once.
      tenants: { big: { maxStatements: 1 }, slow: { statementTimeoutMs: SLOW_DEADLINE_MS, maxStatements: 1 } },
    },
  },
}
const tokens = {} as Record<'bigRw' | 'bigRo' | 'slow' | 'other', string>
let child: ChildProcess
let url: string

beforeAll(async () => {
  const tenantry = await createTenantry({ ...config, dataSources: [{ id: 'local', engine: 'sqlite' }], server: {} })
  for (const slug of ['big', 'slow', 'other']) await tenantry.tenants.create({ slug })
  await tenantry.withTenant('big', () =>
    sql`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${ROWS})
        INSERT INTO jobs (id, company, title, start_date, description)
        SELECT x, 'Company ' || x, 'Title', '2020-01-01', substr(printf('%d-', x) || hex(randomblob(${TEXT_BYTES})), 1, ${TEXT_BYTES}) FROM c`.execute(tenantry.db()),
  )
  tokens.bigRw = (await tenantry.tokens.create('big', { readOnly: false })).token
  tokens.bigRo = (await tenantry.tokens.create('big', { readOnly: true })).token
  tokens.slow = (await tenantry.tokens.create('slow', { readOnly: true })).token
  tokens.other = (await tenantry.tokens.create('other', { readOnly: true })).token
  await tenantry.close()

  // tsconfig.test.json's paths: the child runs the packages' source, as the tests do.
  const env: NodeJS.ProcessEnv = { ...process.env, TSX_TSCONFIG_PATH: 'tsconfig.test.json', TENANTRY_HOME: home, BETTER_AUTH_SECRET: 'x'.repeat(32) }
  delete env.TENANTRY_CATALOG_URL
  child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config)], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  url = await new Promise<string>((resolve, reject) => {
    const seen = (chunk: Buffer) => {
      output += String(chunk)
      const match = /listening (\S+)/.exec(output)
      if (match) resolve(match[1]!)
    }
    child.stdout!.on('data', seen)
    child.stderr!.on('data', seen)
    child.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening:\n${output}`)))
  })
}, 180_000)

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  }
  dir.cleanup()
})

/** The server's executor processes: its children running executor-process. */
function executorPids(): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(child.pid), '-f', 'executor-process'], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
  } catch {
    return []
  }
}

function status(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!match) throw new Error(`no ${field} for ${pid}`)
  return Number(match[1]) * 1024
}

/**
 * Runs `work` and answers how much each of the server's processes grew at its peak over its
 * resident memory before: the kernel's high-water mark, reset first (`clear_refs` 5).
 */
async function growthDuring(work: () => Promise<void>): Promise<{ server: number; executors: number[] }> {
  const pids = [child.pid!, ...executorPids()]
  const before = new Map(pids.map((pid) => [pid, (writeFileSync(`/proc/${pid}/clear_refs`, '5'), status(pid, 'VmRSS'))]))
  await work()
  const growth = pids.map((pid) => status(pid, 'VmHWM') - before.get(pid)!)
  return { server: growth[0]!, executors: growth.slice(1) }
}

/** A pipeline over HTTP: its status and body. */
async function pipeline(token: string, sqlText: string): Promise<{ status: number; body: any }> {
  const response = await fetch(`${url}/v3/pipeline`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql: sqlText } }, { type: 'close' }] }),
  })
  return { status: response.status, body: await response.json() }
}

/**
 * `@libsql/hrana-client` over HTTP with its own JSON Hrana 3 endpoint (`/v3`, `/v3/cursor`),
 * which upstream lists but leaves commented out of what it probes (it probes `/v3-protobuf`
 * only, then falls back to Hrana 2, where there are no cursors).
 */
async function httpClient(token: string): Promise<hrana.HttpClient> {
  const client = hrana.openHttp(url, token)
  // Settled first: the client sets its endpoint once its (Hrana 2) promise resolves.
  expect(await client.getVersion()).toBe(2)
  const v3json = { versionPath: 'v3', pipelinePath: 'v3/pipeline', cursorPath: 'v3/cursor', version: 3, encoding: 'json' } as const
  const internals = client as unknown as { _endpointPromise: Promise<typeof v3json>; _endpoint: typeof v3json }
  internals._endpointPromise = Promise.resolve(v3json)
  internals._endpoint = v3json
  expect(await client.getVersion()).toBe(3)
  return client
}

/** The error a step's promise rejects with (observed at once: the batch rejects them before it resolves). */
function failure(step: Promise<unknown>): Promise<unknown> {
  return step.then(
    () => new Error('the step succeeded'),
    (error: unknown) => error,
  )
}

/** Reads the whole table through a batch run as a cursor; checks every row; the number read. */
async function readAll(stream: hrana.Stream): Promise<number> {
  const batch = stream.batch(true)
  const rows = batch.step().query(['SELECT id, description FROM jobs WHERE id > ? ORDER BY id', [0]])
  await batch.execute()
  const result = (await rows)!
  let wrong = 0
  result.rows.forEach((row, i) => {
    if (row[0] !== i + 1 || String(row[1]).length !== TEXT_BYTES) wrong++
  })
  expect(wrong).toBe(0)
  return result.rows.length
}

/**
 * Reads the whole table through `client` twice: once to warm (the executors are up and the
 * table's pages were read once), then measured: every row arrives, and neither the server nor
 * any executor grew by the bound.
 */
async function readWholeInBoundedMemory(client: { openStream(): hrana.Stream }): Promise<void> {
  expect(await readAll(client.openStream())).toBe(ROWS)
  let read = 0
  const growth = await growthDuring(async () => {
    read = await readAll(client.openStream())
  })
  expect(read).toBe(ROWS)
  expect(growth.server).toBeLessThan(GROWTH_BOUND)
  for (const executor of growth.executors) expect(executor).toBeLessThan(GROWTH_BOUND)
}

describe('a cursor past the pipeline caps', () => {
  it('is refused in a pipeline (the caps hold there) and read whole through /v3/cursor, the server and its executors growing by < 64 MB', async () => {
    const refused = await pipeline(tokens.bigRo, 'SELECT id, description FROM jobs ORDER BY id')
    expect(refused.status).toBe(422)
    expect(refused.body.error.code).toBe('RESULT_TOO_LARGE')

    const client = await httpClient(tokens.bigRo)
    try {
      await readWholeInBoundedMemory(client)
    } finally {
      client.close()
    }
  }, 180_000)

  it('is read whole through /v3-protobuf/cursor (Hrana 3 in protobuf, what the client negotiates at version 3), growing by < 64 MB', async () => {
    const paths = new Set<string>()
    const counting = (request: Request) => {
      paths.add(new URL(request.url).pathname)
      return fetch(request)
    }
    const client = hrana.openHttp(url, tokens.bigRo, counting as unknown as typeof fetch, 3)
    try {
      expect(await client.getVersion()).toBe(3)
      await readWholeInBoundedMemory(client)
      expect([...paths].sort()).toEqual(['/v3-protobuf', '/v3-protobuf/cursor'])
    } finally {
      client.close()
    }
  }, 180_000)

  it('is read whole over WebSocket (Hrana 3 in protobuf, fetch_cursor), the server and its executors growing by < 64 MB', async () => {
    // hrana-client at version 3 offers hrana3-protobuf first, which the server chooses.
    const client = hrana.openWs(url.replace('http:', 'ws:'), tokens.bigRw, 3)
    try {
      expect(await client.getVersion()).toBe(3)
      await readWholeInBoundedMemory(client)
    } finally {
      client.close()
    }
  }, 180_000)
})

describe('clients that stop or go away', () => {
  it('a client that stops reading holds its executor until the deadline, then is cut off; other tenants answer meanwhile', async () => {
    const response = await fetch(`${url}/v3/cursor`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.slow}`, 'content-type': 'application/json' },
      body: JSON.stringify({ baton: null, batch: { steps: [{ stmt: { sql: ENDLESS } }] } }),
    })
    expect(response.status).toBe(200)
    const reader = response.body!.getReader()
    expect((await reader.read()).done).toBe(false)
    // Reading no more: the server's writes wait on the socket, and the statement holds the tenant's one place.
    await expect.poll(async () => (await pipeline(tokens.slow, 'SELECT 1')).status, { timeout: 10_000 }).toBe(429)
    expect(await pipeline(tokens.other, 'SELECT count(*) FROM jobs')).toMatchObject({ status: 200 })
    // Past the deadline the statement ends, its executor is free, and the tenant runs again.
    await expect.poll(async () => (await pipeline(tokens.slow, 'SELECT 1')).status, { timeout: SLOW_DEADLINE_MS + 15_000, interval: 500 }).toBe(200)
    // The client that stopped was cut off: what is left of its answer ends in an error, not in a clean end.
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) return 'ended'
      })(),
    ).rejects.toThrow()
  }, 60_000)

  it('a client that goes away mid-cursor over HTTP frees the executor at once (long before the deadline)', async () => {
    const abort = new AbortController()
    const response = await fetch(`${url}/v3/cursor`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.bigRo}`, 'content-type': 'application/json' },
      body: JSON.stringify({ baton: null, batch: { steps: [{ stmt: { sql: ENDLESS } }] } }),
      signal: abort.signal,
    })
    const reader = response.body!.getReader()
    for (let i = 0; i < 20; i++) await reader.read()
    expect(await pipeline(tokens.bigRo, 'SELECT 1')).toMatchObject({ status: 429 })
    abort.abort()
    // The deadline is 60 s: only the disconnect can free the tenant's one place within this wait.
    await expect.poll(async () => (await pipeline(tokens.bigRo, 'SELECT 1')).status, { timeout: 15_000, interval: 200 }).toBe(200)
  }, 60_000)

  it('a WebSocket that closes mid-cursor frees the executor at once', async () => {
    const { socket, request } = await rawSocket(tokens.bigRo)
    expect(await request({ type: 'open_stream', stream_id: 1 })).toMatchObject({ type: 'response_ok' })
    expect(await request({ type: 'open_cursor', stream_id: 1, cursor_id: 1, batch: { steps: [{ stmt: { sql: ENDLESS } }] } })).toMatchObject({ type: 'response_ok' })
    const fetched = await request({ type: 'fetch_cursor', cursor_id: 1, max_count: 100 })
    expect(fetched.response.entries).toHaveLength(100)
    expect(fetched.response.done).toBe(false)
    expect(await pipeline(tokens.bigRo, 'SELECT 1')).toMatchObject({ status: 429 })
    socket.terminate()
    await expect.poll(async () => (await pipeline(tokens.bigRo, 'SELECT 1')).status, { timeout: 15_000, interval: 200 }).toBe(200)
  }, 60_000)

  it('a stream with a cursor being read answers other requests with a protocol error; after close_cursor it goes on', async () => {
    const { socket, request } = await rawSocket(tokens.bigRo)
    try {
      await request({ type: 'open_stream', stream_id: 1 })
      await request({ type: 'open_cursor', stream_id: 1, cursor_id: 1, batch: { steps: [{ stmt: { sql: ENDLESS } }] } })
      expect((await request({ type: 'fetch_cursor', cursor_id: 1, max_count: 10 })).response.entries).toHaveLength(10)
      expect(await request({ type: 'execute', stream_id: 1, stmt: { sql: 'SELECT 1' } })).toMatchObject({
        type: 'response_error',
        error: { code: 'PROTOCOL_ERROR', message: expect.stringContaining('cursor') },
      })
      expect(await request({ type: 'open_cursor', stream_id: 1, cursor_id: 2, batch: { steps: [{ stmt: { sql: 'SELECT 1' } }] } })).toMatchObject({
        type: 'response_error',
        error: { code: 'PROTOCOL_ERROR' },
      })
      expect(await request({ type: 'close_cursor', cursor_id: 1 })).toMatchObject({ type: 'response_ok' })
      expect(await request({ type: 'execute', stream_id: 1, stmt: { sql: 'SELECT count(*) FROM jobs' } })).toMatchObject({
        type: 'response_ok',
        response: { result: { rows: [[{ type: 'integer', value: String(ROWS) }]] } },
      })
    } finally {
      socket.terminate()
    }
  }, 60_000)
})

/** A raw Hrana 3 WebSocket past its hello: `request` sends one request and resolves to its answer. */
async function rawSocket(token: string): Promise<{ socket: WebSocket; request(request: object): Promise<any> }> {
  const socket = new WebSocket(url.replace('http:', 'ws:'), 'hrana3')
  const waiting = new Map<number, (message: any) => void>()
  let hello: ((message: any) => void) | undefined
  socket.on('message', (data) => {
    const message = JSON.parse(String(data))
    if (message.type.startsWith('hello')) hello?.(message)
    else waiting.get(message.request_id)?.(message)
  })
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  const helloAnswer = new Promise<any>((resolve) => (hello = resolve))
  socket.send(JSON.stringify({ type: 'hello', jwt: token }))
  expect(await helloAnswer).toEqual({ type: 'hello_ok' })
  let nextId = 1
  return {
    socket,
    request(request: object) {
      const id = nextId++
      const answer = new Promise<any>((resolve) => waiting.set(id, resolve))
      socket.send(JSON.stringify({ type: 'request', request_id: id, request }))
      return answer
    },
  }
}

describe('rules on cursor statements', () => {
  it('a read-only token reads through a cursor, and its writes and every schema change fail as their step', async () => {
    const client = await httpClient(tokens.bigRo)
    const ws = hrana.openWs(url.replace('http:', 'ws:'), tokens.bigRo, 3)
    try {
      expect(await ws.getVersion()).toBe(3)
      for (const stream of [client.openStream(), ws.openStream()]) {
        const batch = stream.batch(true)
        const write = failure(batch.step().run("INSERT INTO jobs (company, title, start_date) VALUES ('x', 'y', '2020-01-01')"))
        const drop = failure(batch.step().run('DROP TABLE jobs'))
        const attach = failure(batch.step().run("ATTACH 'elsewhere.db' AS x"))
        const count = batch.step().queryValue('SELECT count(*) FROM jobs')
        await batch.execute()
        expect(await write).toMatchObject({ code: 'READ_ONLY' })
        expect(await drop).toMatchObject({ code: 'SQL_FORBIDDEN' })
        expect(await attach).toMatchObject({ code: 'SQL_FORBIDDEN' })
        expect((await count)!.value).toBe(ROWS)
      }
    } finally {
      client.close()
      ws.close()
    }
  })

  it('a read-write token writes through a cursor, and a schema change still fails', async () => {
    const client = await httpClient(tokens.bigRw)
    try {
      const stream = client.openStream()
      const batch = stream.batch(true)
      const inserted = batch.step().query(`INSERT INTO jobs (id, company, title, start_date) VALUES (${ROWS + 1}, 'new', 'y', '2020-01-01') RETURNING id`)
      const created = failure(batch.step().run('CREATE TABLE t (x)'))
      await batch.execute()
      expect((await inserted)!.rows.map((row) => row[0])).toEqual([ROWS + 1])
      expect(await created).toMatchObject({ code: 'SQL_FORBIDDEN' })
      const cleanup = stream.batch(true)
      const removed = cleanup.step().run(`DELETE FROM jobs WHERE id = ${ROWS + 1}`)
      await cleanup.execute()
      expect((await removed)!.affectedRowCount).toBe(1)
    } finally {
      client.close()
    }
  })
})
