import { execFileSync } from 'node:child_process'
import { connect } from 'node:net'

/** The Redis tests use. Override with TENANTRY_TEST_REDIS_URL. */
export const TEST_REDIS_URL = process.env.TENANTRY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** Whether a Redis server answers PING at `url`, within 2 s. Raw RESP, so core needs no Redis client. */
function answersPing(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect(Number(port || 6379), hostname.replace(/^\[|\]$/g, ''))
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2_000, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    let reply = ''
    socket.on('data', (chunk) => {
      reply += chunk.toString()
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
  })
}

/** Starts the machine's Redis the way the machine notes do, when it is installed but stopped. */
function tryStartLocalRedis(url: string): void {
  const { hostname, port } = new URL(url)
  if (!['127.0.0.1', 'localhost'].includes(hostname)) return
  try {
    execFileSync('redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '--port', port || '6379', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    })
  } catch {
    // not installed, or not startable here: the PING below decides
  }
}

/**
 * Finds Redis, starting a local one if it is installed but down. Returns a reason string when
 * it is unavailable, for `describe.skipIf`. Under CI (`CI=true`) a missing Redis throws: a run
 * that needed it must fail, never skip silently.
 *
 * @example
 * const redis = await findRedis()
 * describe.skipIf('skip' in redis)('limits across processes', () => { … })
 */
export async function findRedis(url = TEST_REDIS_URL): Promise<{ url: string } | { skip: string }> {
  if (await answersPing(url)) return { url }
  tryStartLocalRedis(url)
  for (let i = 0; i < 20; i++) {
    if (await answersPing(url)) return { url }
    await new Promise((r) => setTimeout(r, 250))
  }
  const reason = `Redis is not reachable at ${url.replace(/\/\/[^@]*@/, '//')}`
  if (process.env.CI) throw new Error(`${reason}; CI requires it`)
  return { skip: reason }
}
