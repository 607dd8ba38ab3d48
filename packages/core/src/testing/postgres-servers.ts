import { execFile, execFileSync, spawn } from 'node:child_process'
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'

const run = promisify(execFile)

/** Where the Postgres binaries (`initdb`, `pg_ctl`) are, and who runs them. */
export interface PostgresBinaries {
  /** The directory holding `initdb`, `pg_ctl` and `postgres`. */
  bin: string
  /** The OS user the servers run as when this process is root (Postgres refuses to run as root). */
  runAs?: { user: string; uid: number; gid: number }
}

/** A Postgres server of its own, started by `startPostgresServer`. */
export interface PostgresServer {
  /** The superuser's URL (`postgres`, trust auth, database `postgres`) on 127.0.0.1. */
  url: string
  port: number
  /** The temporary directory holding the data directory and the server's log. */
  directory: string
  /**
   * Shuts the server down, keeping its data, as an outage would (`fast`: connections are
   * ended; `immediate`: as a crash). `start()` brings it back on the same port.
   */
  shutDown(mode?: 'fast' | 'immediate'): Promise<void>
  /** Starts a server that was shut down; resolves once it accepts connections. */
  start(): Promise<void>
  /** Stops the server and removes its directory. Idempotent. */
  stop(): Promise<void>
}

export interface StartPostgresServerOptions {
  /** Extra `postgresql.conf` settings, e.g. `{ max_connections: '200' }`. */
  settings?: Record<string, string>
}

/** Servers not stopped yet: stopped at exit if a test forgot (or failed before its afterAll). */
const live = new Set<{ stopSync(): void }>()
let exitHookInstalled = false

/**
 * Finds the installed Postgres's `initdb` and `pg_ctl`: `TENANTRY_TEST_POSTGRES_BIN`, else the newest
 * `/usr/lib/postgresql/<version>/bin` (Debian, Ubuntu), else `pg_config --bindir`. When this
 * process is root, the servers run as `TENANTRY_TEST_POSTGRES_USER` (default `postgres`) through
 * `runuser`. Returns a reason string when they cannot be run, for `describe.skipIf`; under CI
 * (`CI=true`) that throws instead: a run that needed them must fail, never skip silently.
 */
export function findPostgresBinaries(): PostgresBinaries | { skip: string } {
  const unavailable = (reason: string) => {
    if (process.env.CI) throw new Error(`${reason}; CI requires it`)
    return { skip: reason }
  }
  const bin = postgresBinDir()
  if (!bin) return unavailable('Postgres server binaries (initdb, pg_ctl) were not found')
  if (process.getuid?.() !== 0) return { bin }
  const user = process.env.TENANTRY_TEST_POSTGRES_USER ?? 'postgres'
  try {
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim())
    execFileSync('runuser', ['--help'], { stdio: 'ignore' })
    return { bin, runAs: { user, uid, gid } }
  } catch {
    return unavailable(`running as root, Postgres needs another OS user (${user}) and runuser to start as`)
  }
}

function postgresBinDir(): string | undefined {
  const hasTools = (dir: string) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))
  const fromEnv = process.env.TENANTRY_TEST_POSTGRES_BIN
  if (fromEnv) return hasTools(fromEnv) ? fromEnv : undefined
  const root = '/usr/lib/postgresql'
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
    for (const version of versions) if (hasTools(join(root, version, 'bin'))) return join(root, version, 'bin')
  }
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    return hasTools(dir) ? dir : undefined
  } catch {
    return undefined
  }
}

/** A TCP port nobody listens on right now (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/**
 * Starts a new, empty Postgres server of its own: `initdb` (trust auth for local connections,
 * superuser `postgres`) in a fresh temporary directory, then `pg_ctl start` on a free port of
 * 127.0.0.1, with durability off (test data only). Call `stop()` in `afterAll`; servers still
 * running when the process exits are stopped then, and a watchdog process stops them and removes
 * their directory if this process is killed outright. Throws when the server cannot start.
 *
 * @example
 * const binaries = findPostgresBinaries()
 * describe.skipIf('skip' in binaries)('two servers', () => {
 *   let server: PostgresServer
 *   beforeAll(async () => { server = await startPostgresServer() })
 *   afterAll(() => server?.stop())
 * })
 */
export async function startPostgresServer(options: StartPostgresServerOptions = {}): Promise<PostgresServer> {
  const binaries = findPostgresBinaries()
  if ('skip' in binaries) throw new Error(binaries.skip)
  const { bin, runAs } = binaries
  const directory = mkdtempSync(join(tmpdir(), 'tenantry-pg-'))
  const data = join(directory, 'data')
  const log = join(directory, 'server.log')
  // Postgres refuses to run as root: as root, the directory belongs to the user it runs as.
  if (runAs) chownSync(directory, runAs.uid, runAs.gid)
  const command = (tool: string, args: string[]): [string, string[]] =>
    runAs ? ['runuser', ['-u', runAs.user, '--', join(bin, tool), ...args]] : [join(bin, tool), args]
  const pgCtl = (args: string[]) => command('pg_ctl', ['-D', data, ...args])
  const exec = async ([file, args]: [string, string[]]) => {
    await run(file, args, { cwd: directory, env: { ...process.env, LC_ALL: 'C' } })
  }

  let state: 'running' | 'down' | 'removed' = 'down'
  let watchdog: ReturnType<typeof spawn> | undefined
  const entry = {
    stopSync() {
      if (state === 'running') {
        const [file, args] = pgCtl(['stop', '-m', 'immediate'])
        try {
          execFileSync(file, args, { cwd: directory, stdio: 'ignore' })
        } catch {
          // already down
        }
      }
      state = 'removed'
      rmSync(directory, { recursive: true, force: true })
      live.delete(entry)
    },
  }
  live.add(entry)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once('exit', () => {
      for (const server of [...live]) server.stopSync()
    })
  }

  const logTail = () => {
    try {
      return readFileSync(log, 'utf8').split('\n').slice(-15).join('\n')
    } catch {
      return '(no server log)'
    }
  }
  const start = async () => {
    try {
      await exec(pgCtl(['start', '-w', '-t', '60', '-l', log]))
    } catch (error) {
      throw new Error(`pg_ctl start failed in ${directory}: ${(error as Error).message}\n${logTail()}`, { cause: error })
    }
    state = 'running'
  }

  let port = 0
  try {
    await exec(command('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']))
    const settings: Record<string, string> = {
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: "''", // TCP only: no socket file in a shared directory
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      shared_buffers: "'32MB'",
      max_connections: '100',
      ...options.settings,
    }
    appendFileSync(join(data, 'postgresql.conf'), `\n# tenantry test server\n${Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`)
    // Another process may take the free port before the server binds it: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort()
      appendFileSync(join(data, 'postgresql.conf'), `port = ${port}\n`) // the last setting wins
      try {
        await start()
        break
      } catch (error) {
        if (attempt >= 3 || !/could not bind|address already in use/i.test(logTail())) throw error
      }
    }
  } catch (error) {
    entry.stopSync()
    throw error
  }

  // If this process is killed (SIGKILL, a worker timeout), no exit hook runs: a detached
  // shell waits for it to go away, then stops the server and removes its directory.
  const [stopFile, stopArgs] = pgCtl(['stop', '-m', 'immediate'])
  watchdog = spawn(
    'sh',
    ['-c', 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; dir=$2; shift 2; "$@" >/dev/null 2>&1; rm -rf "$dir"', 'watchdog', String(process.pid), directory, stopFile, ...stopArgs],
    { detached: true, stdio: 'ignore' },
  )
  watchdog.unref()

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  await waitForConnections(url)
  return {
    url,
    port,
    directory,
    async shutDown(mode = 'fast') {
      if (state !== 'running') return
      await exec(pgCtl(['stop', '-w', '-m', mode]))
      state = 'down'
    },
    async start() {
      if (state === 'removed') throw new Error('This Postgres server was stopped and removed')
      if (state === 'running') return
      await start()
      await waitForConnections(url)
    },
    async stop() {
      if (state === 'removed') return
      if (state === 'running') {
        await exec(pgCtl(['stop', '-w', '-m', 'fast'])).catch(() => exec(pgCtl(['stop', '-m', 'immediate']))).catch(() => {})
        state = 'down'
      }
      if (watchdog?.pid) {
        try {
          process.kill(watchdog.pid)
        } catch {
          // already gone
        }
      }
      entry.stopSync()
    },
  }
}

/** `pg_ctl -w` waits for the server to be ready; this also proves a TCP login works. */
async function waitForConnections(url: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
    try {
      await client.connect()
      await client.query('select 1')
      return
    } catch (error) {
      if (attempt >= 40) throw error
      await new Promise((resolve) => setTimeout(resolve, 250))
    } finally {
      await client.end().catch(() => {})
    }
  }
}
