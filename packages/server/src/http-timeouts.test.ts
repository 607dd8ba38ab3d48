import { connect, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { startTestServer, type TestServer } from '@tenantry/server/testing'

// Issue 8, item 6: slow request bodies (a byte at a time, no sign-in needed) held connections
// until the process ran out of file descriptors. Real sockets against the real server.

const HEADERS_TIMEOUT = 1_000
const REQUEST_TIMEOUT = 1_500
/** Liveness bound: the timeout, Node's check interval (1 s here), and a lot of slack for a busy machine. */
const CUT_OFF_WITHIN = 10_000

let server: TestServer
const lines: Array<Record<string, unknown>> = []
beforeAll(async () => {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  server = await startTestServer({
    config: {
      migrations: { tenant: {} },
      server: { http: { headersTimeout: HEADERS_TIMEOUT, requestTimeout: REQUEST_TIMEOUT } },
    },
    logger: { level: 'info', stream },
  })
})
afterAll(async () => server?.stop())

interface SlowClient {
  socket: Socket
  /** Resolves when the server closed the connection, with everything it answered. */
  closed: Promise<{ afterMs: number; answer: string }>
  stop(): void
}

/** Sends `head` then `drip` one byte a second, as a slow (or malicious) client does. */
function slowClient(head: string, drip: string): SlowClient {
  const { port, hostname } = new URL(server.url)
  const socket = connect(Number(port), hostname)
  const started = Date.now()
  let answer = ''
  socket.on('data', (chunk) => (answer += chunk.toString()))
  socket.on('error', () => {})
  let i = 0
  const timer = setInterval(() => {
    if (socket.writable && i < drip.length) socket.write(drip[i++]!)
  }, 1_000)
  const closed = new Promise<{ afterMs: number; answer: string }>((resolve) =>
    socket.on('close', () => {
      clearInterval(timer)
      resolve({ afterMs: Date.now() - started, answer })
    }),
  )
  socket.write(head)
  return { socket, closed, stop: () => (clearInterval(timer), socket.destroy()) }
}

const slowBody = () =>
  slowClient(
    'POST /api/auth/sign-up/email HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
    '"email":"slow@example.com"'.repeat(40),
  )
const slowHeaders = () => slowClient('GET /healthz HTTP/1.1\r\n', 'X-Slow: ' + 'a'.repeat(200))

function withinBound<T>(promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} still open after ${CUT_OFF_WITHIN} ms`)), CUT_OFF_WITHIN))])
}

describe('HTTP timeouts', () => {
  it('cuts off a client that sends its body one byte per second, with 408 REQUEST_TIMEOUT', async ({ expect }) => {
    const client = slowBody()
    try {
      const { afterMs, answer } = await withinBound(client.closed, 'a slow-body connection')
      expect(afterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT - 100)
      expect(answer).toMatch(/^HTTP\/1\.1 408 /)
      expect(answer).toContain('"code":"REQUEST_TIMEOUT"')
    } finally {
      client.stop()
    }
  })

  it('cuts off a client that sends its headers one byte per second', async ({ expect }) => {
    const client = slowHeaders()
    try {
      const { answer } = await withinBound(client.closed, 'a slow-headers connection')
      expect(answer).toMatch(/^HTTP\/1\.1 408 /)
    } finally {
      client.stop()
    }
  })

  it('serves a normal client while 40 slow clients are connected, and frees every slow connection', async ({ expect }) => {
    const clients = Array.from({ length: 40 }, (_, i) => (i % 2 ? slowBody() : slowHeaders()))
    try {
      await new Promise((r) => setTimeout(r, 200))
      const health = await fetch(`${server.url}/healthz`)
      expect(health.status).toBe(200)
      await withinBound(Promise.all(clients.map((c) => c.closed)), 'slow connections')
      const open = await new Promise<number>((resolve, reject) => server.app.server.getConnections((e, n) => (e ? reject(e) : resolve(n))))
      // At most the normal client's idle keep-alive connection is left.
      expect(open).toBeLessThanOrEqual(1)
    } finally {
      for (const c of clients) c.stop()
    }
  })

  it('logs an aborted request as one line without a stack trace', async ({ expect }) => {
    const before = lines.length
    const { port, hostname } = new URL(server.url)
    const socket = connect(Number(port), hostname)
    socket.on('error', () => {})
    socket.write('POST /api/auth/sign-in/email HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"email":')
    await new Promise((r) => setTimeout(r, 300))
    socket.destroy()
    await expect.poll(() => lines.length - before, { timeout: CUT_OFF_WITHIN }).toBeGreaterThan(0)
    await new Promise((r) => setTimeout(r, 500))
    const logged = lines.slice(before)
    expect(logged).toHaveLength(1)
    expect(logged[0]).toMatchObject({ msg: 'request aborted by the client', method: 'POST', path: '/api/auth/sign-in/email' })
    expect(JSON.stringify(logged)).not.toContain('stack')
  })
})
