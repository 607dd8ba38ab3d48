// A load generator in its own process, so it does not share the server's JS thread: `connections`
// keep-alive sockets (node:http Agent, maxSockets = connections), one request loop per socket, no
// pipelining. The parent sends one round at a time over IPC; this process times it and answers.
import { Agent, request } from 'node:http'

export interface LoadRequest {
  url: string
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string
  requests: number
  connections: number
  /**
   * Time every request and answer the times (ms), for percentiles, with when each was sent (ms
   * from the round's start, in the same order), for a latency-over-time series. @default false
   */
  latencies?: boolean
  /** Count any answer, not only 200 (an attacker's requests are refused by design). @default false */
  anyStatus?: boolean
}
export type LoadReply =
  | { ready: true }
  | { ms: number; requests: number; bytes: number; latenciesMs?: number[]; sentAtMs?: number[]; statuses: Record<string, number> }
  | { error: string }

const agents = new Map<number, Agent>()
/** Set by a `stop` message: the running round ends after the requests in flight, and answers. */
let stopping = false

function once(agent: Agent, job: LoadRequest, statuses: Record<string, number>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(job.url, { method: job.method, headers: job.headers, agent }, (res) => {
      let bytes = 0
      const status = String(res.statusCode)
      statuses[status] = (statuses[status] ?? 0) + 1
      res.on('data', (chunk: Buffer) => (bytes += chunk.length))
      res.on('end', () =>
        res.statusCode === 200 || job.anyStatus ? resolve(bytes) : reject(new Error(`HTTP ${res.statusCode} from ${job.method} ${job.url}`)),
      )
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(job.body)
  })
}

async function run(job: LoadRequest): Promise<LoadReply> {
  let agent = agents.get(job.connections)
  if (!agent) {
    agent = new Agent({ keepAlive: true, maxSockets: job.connections })
    agents.set(job.connections, agent)
  }
  stopping = false
  let left = job.requests
  let bytes = 0
  const statuses: Record<string, number> = {}
  const latenciesMs: number[] = []
  const sentAtMs: number[] = []
  const started = performance.now()
  await Promise.all(
    Array.from({ length: job.connections }, async () => {
      while (left > 0 && !stopping) {
        left--
        const sent = performance.now()
        bytes += await once(agent, job, statuses)
        if (job.latencies) {
          latenciesMs.push(performance.now() - sent)
          sentAtMs.push(sent - started)
        }
      }
    }),
  )
  return { ms: performance.now() - started, requests: job.requests - Math.max(0, left), bytes, statuses, ...(job.latencies ? { latenciesMs, sentAtMs } : {}) }
}

process.on('message', (message: LoadRequest | { close: true } | { stop: true }) => {
  if ('stop' in message) {
    stopping = true
    return
  }
  if ('close' in message) {
    for (const agent of agents.values()) agent.destroy()
    process.disconnect()
    return
  }
  run(message).then(
    (reply) => process.send!(reply),
    (error: unknown) => process.send!({ error: error instanceof Error ? error.message : String(error) } satisfies LoadReply),
  )
})
process.send!({ ready: true } satisfies LoadReply)
