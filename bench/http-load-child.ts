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
}
export type LoadReply = { ready: true } | { ms: number; requests: number; bytes: number } | { error: string }

const agents = new Map<number, Agent>()

function once(agent: Agent, job: LoadRequest): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(job.url, { method: job.method, headers: job.headers, agent }, (res) => {
      let bytes = 0
      res.on('data', (chunk: Buffer) => (bytes += chunk.length))
      res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error(`HTTP ${res.statusCode} from ${job.method} ${job.url}`))))
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
  let left = job.requests
  let bytes = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: job.connections }, async () => {
      while (left > 0) {
        left--
        bytes += await once(agent, job)
      }
    }),
  )
  return { ms: performance.now() - started, requests: job.requests, bytes }
}

process.on('message', (message: LoadRequest | { close: true }) => {
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
