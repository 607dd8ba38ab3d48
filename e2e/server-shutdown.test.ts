import { spawn, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, it } from 'vitest'
import { tempDir } from 'tenantry/testing'

// Issue 8, item 10: SIGTERM must stop accepting, end in-flight work within a bound, and exit;
// before, a request that never finished kept the process alive. The real server, in its own process.

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))
const CHILD = fileURLToPath(new URL('./fixtures/serve-child.ts', import.meta.url))
/** Liveness bound on top of the configured shutdown bound: process start-up and a busy machine. */
const SLACK_MS = 8_000

const dirs: Array<ReturnType<typeof tempDir>> = []
afterAll(() => dirs.forEach((d) => d.cleanup()))

interface Served {
  child: ChildProcess
  url: string
  /** Resolves with the exit code (or signal) and everything the process printed. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>
}

async function serve(shutdownTimeoutMs: number): Promise<Served> {
  const home = tempDir('tenantry-shutdown-')
  dirs.push(home)
  // tsconfig.test.json's paths: the child runs the packages' source, as the tests do.
  const env: NodeJS.ProcessEnv = { ...process.env, TSX_TSCONFIG_PATH: 'tsconfig.test.json', TENANTRY_HOME: home.path, BETTER_AUTH_SECRET: 'x'.repeat(32) }
  delete env.TENANTRY_CATALOG_URL
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, home.path, String(shutdownTimeoutMs)], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, output })),
  )
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /^listening (\S+)$/m.exec(output)
      if (match) resolve(match[1]!)
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
    void exited.then(() => reject(new Error(`the server exited before listening:\n${output}`)))
  })
  return { child, url, exited }
}

/** Whether a new TCP connection to `url` is accepted. */
function accepts(url: string): Promise<boolean> {
  const { port, hostname } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname)
    socket.on('connect', () => (socket.destroy(), resolve(true)))
    socket.on('error', () => resolve(false))
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function timed<T>(promise: Promise<T>, boundMs: number, what: string): Promise<T> {
  return Promise.race([promise, sleep(boundMs).then(() => Promise.reject(new Error(`${what} after ${boundMs} ms`)))])
}

describe('graceful shutdown', () => {
  it('on SIGTERM refuses new connections, cuts off a request that outlives the bound, and exits', async ({ expect }) => {
    const bound = 2_000
    const server = await serve(bound)
    try {
      const inFlight = fetch(`${server.url}/slow?ms=120000`).then(
        (r) => `answered ${r.status}`,
        () => 'cut off',
      )
      await sleep(300)
      const signalledAt = Date.now()
      server.child.kill('SIGTERM')
      await sleep(300)
      expect(await accepts(server.url)).toBe(false)
      const exit = await timed(server.exited, bound + SLACK_MS, 'still running')
      expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(bound - 100)
      expect(exit.code, exit.output).toBe(1)
      expect(await inFlight).toBe('cut off')
      expect(exit.output).toContain('shutdown: requests still in flight at the bound are cut off')
    } finally {
      server.child.kill('SIGKILL')
    }
  })

  it('lets a request in flight finish within the bound, then exits 0', async ({ expect }) => {
    const server = await serve(20_000)
    try {
      const inFlight = fetch(`${server.url}/slow?ms=1500`).then(async (r) => ({ status: r.status, body: await r.json() }))
      await sleep(300)
      server.child.kill('SIGTERM')
      expect(await inFlight).toEqual({ status: 200, body: { waited: 1500 } })
      const exit = await timed(server.exited, SLACK_MS, 'still running after its only request finished')
      expect(exit.code, exit.output).toBe(0)
    } finally {
      server.child.kill('SIGKILL')
    }
  })

  it('exits at once on a second SIGTERM', async ({ expect }) => {
    const server = await serve(60_000)
    try {
      void fetch(`${server.url}/slow?ms=120000`).catch(() => {})
      await sleep(300)
      server.child.kill('SIGTERM')
      await sleep(300)
      server.child.kill('SIGTERM')
      const exit = await timed(server.exited, SLACK_MS, 'still running after a second SIGTERM')
      expect(exit.code, exit.output).toBe(1)
      expect(exit.output).toContain('second signal during shutdown: exiting now')
    } finally {
      server.child.kill('SIGKILL')
    }
  })
})
