import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import pg from 'pg'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { findPostgresBinaries, startPostgresServer, type PostgresServer } from './postgres-servers.js'

const binaries = findPostgresBinaries()
const HELPER = new URL('./postgres-servers.ts', import.meta.url).href

async function query(url: string, sql: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  await client.connect()
  try {
    return (await client.query(sql)).rows
  } finally {
    await client.end()
  }
}

/** Waits (bounded) until `check` holds: cleanup by an exit hook or a watchdog is not instant. */
const eventually = (check: () => boolean, what: string) => vi.waitFor(() => expect(check(), what).toBe(true), { timeout: 20_000, interval: 200 })

/** Starts a server in a child process, which then exits (`exit`) or waits to be SIGKILLed (`hang`). */
function serverInChild(end: 'exit' | 'hang'): Promise<{ child: ReturnType<typeof spawn>; directory: string; url: string }> {
  const code = `const { startPostgresServer } = await import(${JSON.stringify(HELPER)})
const server = await startPostgresServer()
console.log(JSON.stringify({ directory: server.directory, url: server.url }))
${end === 'exit' ? 'process.exit(0)' : 'setInterval(() => {}, 1000)'}`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line) resolve({ child, ...(JSON.parse(line) as { directory: string; url: string }) })
    })
    child.once('exit', (code) => setTimeout(() => reject(new Error(`child exited (${code}) before starting a server: ${out}`)), 100))
  })
}

async function reachable(url: string): Promise<boolean> {
  return query(url, 'select 1').then(
    () => true,
    () => false,
  )
}

describe.skipIf('skip' in binaries)(`startPostgresServer${'skip' in binaries ? ` (skipped: ${binaries.skip})` : ''}`, () => {
  const servers: PostgresServer[] = []
  afterAll(async () => {
    for (const server of servers) await server.stop()
  })

  it('starts separate servers on free ports, shuts one down and starts it again with its data, and removes it on stop', async () => {
    const [a, b] = await Promise.all([startPostgresServer(), startPostgresServer()])
    servers.push(a!, b!)
    expect(a!.port).not.toBe(b!.port)
    await query(a!.url, 'CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)')
    expect(await query(b!.url, "SELECT to_regclass('kept') AS t")).toEqual([{ t: null }])
    // The superuser is `postgres`; the server runs as a non-root OS user.
    expect(await query(a!.url, "SELECT current_user AS u, current_setting('data_directory') LIKE '%tenantry-pg-%' AS ours")).toEqual([{ u: 'postgres', ours: true }])

    await a!.shutDown()
    expect(await reachable(a!.url)).toBe(false)
    expect(await reachable(b!.url)).toBe(true)
    await a!.start()
    expect(await query(a!.url, 'SELECT v FROM kept')).toEqual([{ v: 42 }])

    await a!.stop()
    await a!.stop() // idempotent
    expect(await reachable(a!.url)).toBe(false)
    expect(existsSync(a!.directory)).toBe(false)
    await expect(a!.start()).rejects.toThrow(/removed/)
  })

  it('stops and removes a server its process left running, whether that process exits or is killed', async () => {
    const exited = await serverInChild('exit')
    await eventually(() => !existsSync(exited.directory), 'the exit hook removed the directory')
    expect(await reachable(exited.url)).toBe(false)

    const killed = await serverInChild('hang')
    expect(await reachable(killed.url)).toBe(true)
    killed.child.kill('SIGKILL')
    await eventually(() => !existsSync(killed.directory), 'the watchdog removed the directory')
    expect(await reachable(killed.url)).toBe(false)
  })
})
