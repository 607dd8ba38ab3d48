// The parent's side of http-load-child.ts: one load-generating process, one round at a time.
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { repoRoot } from './harness.js'
import type { LoadReply, LoadRequest } from './http-load-child.js'

export type LoadResult = Extract<LoadReply, { ms: number }>

export interface LoadClient {
  /** Runs one round; rejects when a request fails (unless `anyStatus`) or the process exits. */
  run(request: LoadRequest): Promise<LoadResult>
  /** Ends the running round after the requests in flight; its `run` then resolves. */
  stop(): void
  close(): Promise<void>
}

/** Forks a load generator and waits until it is ready. */
export async function startLoadClient(): Promise<LoadClient> {
  const child: ChildProcess = fork(join(repoRoot, 'bench/http-load-child.ts'), [], { cwd: repoRoot, execArgv: ['--import', 'tsx'] })
  let pending: { resolve(reply: LoadReply): void; reject(error: Error): void } | undefined
  child.on('message', (reply: LoadReply) => pending?.resolve(reply))
  child.on('exit', (code) => pending?.reject(new Error(`load child exited with ${String(code)}`)))
  const next = () => new Promise<LoadReply>((resolve, reject) => (pending = { resolve, reject }))
  await next()
  return {
    async run(request) {
      const reply = next()
      child.send(request)
      const answer = await reply
      if ('error' in answer) throw new Error(answer.error)
      if (!('ms' in answer)) throw new Error('load child: unexpected reply')
      return answer
    },
    stop() {
      child.send({ stop: true })
    },
    async close() {
      if (!child.connected) return
      child.send({ close: true })
      await once(child, 'exit')
    },
  }
}

/** Asks `url` once before timing starts: a target that does not answer 200 with `expected` in its body fails the group. */
export async function expectAnswer(name: string, url: string, init: RequestInit, expected: string): Promise<void> {
  const response = await fetch(url, init)
  const text = await response.text()
  if (response.status !== 200 || !text.includes(expected)) throw new Error(`${name}: ${response.status} ${text.slice(0, 200)}`)
}
