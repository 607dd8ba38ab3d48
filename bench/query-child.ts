// The plain baselines in a process that never touches AsyncLocalStorage. On Node 20 the first
// `AsyncLocalStorage#run` installs promise hooks for the whole process, which taxes every await
// afterwards, so the parent's own plain-Kysely row pays that tax. The parent drives this worker
// over IPC, one round at a time, so its rows interleave with the parent's variants.
import { openBaselines } from './query-baselines.js'

export type ChildRequest = { variant: 'plain' | 'raw'; ops: number } | { close: true }
export type ChildReply = { ready: true } | { ms: number }

const [file, ids] = process.argv.slice(2)
if (!file || !ids || !process.send) throw new Error('usage: fork query-child.ts <file> <id,id,…> with an IPC channel')
const send = (reply: ChildReply) => process.send!(reply)
const baselines = openBaselines(file, ids.split(',').map(Number))

process.on('message', async (request: ChildRequest) => {
  if ('close' in request) {
    await baselines.close()
    process.disconnect()
    return
  }
  const variant = request.variant === 'plain' ? baselines.plain : baselines.raw
  const started = performance.now()
  await variant.run(request.ops)
  send({ ms: performance.now() - started })
})
send({ ready: true })
