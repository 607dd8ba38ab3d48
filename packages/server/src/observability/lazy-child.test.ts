import { Writable } from 'node:stream'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { lazyChild } from './lazy-child.js'

/** A pino logger at `level` writing its lines into `lines`, with `child` counted. */
function logger(level: string) {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    },
  })
  const root = pino({ level }, stream)
  let children = 0
  const child = root.child
  // Children inherit this (pino's children are made with Object.create), so it must call on `this`.
  root.child = function (this: typeof root, ...args: Parameters<typeof child>) {
    children++
    return child.apply(this, args)
  } as typeof root.child
  return { root, lines, children: () => children }
}

describe('lazyChild', () => {
  it('makes no pino child while nothing at an enabled level is written', () => {
    const { root, lines, children } = logger('warn')
    const log = lazyChild(root, { reqId: 'r1' })
    log.info({ a: 1 }, 'dropped')
    log.debug('dropped too')
    const nested = log.child({ tenantId: 't1' })
    nested.info('dropped as well')
    expect(children()).toBe(0)
    expect(lines).toEqual([])
    expect(log.level).toBe('warn')
  })

  it('writes the lines the real child would, with every binding, nested', async () => {
    const { root, lines } = logger('info')
    const log = lazyChild(root, { reqId: 'r1' })
    const nested = lazyChild(log, { tenantId: 't1' })
    nested.info({ status: 200 }, 'request done')
    nested.warn('careful')
    log.error('outer')
    await new Promise((resolve) => setImmediate(resolve))
    expect(lines.map(({ reqId, tenantId, status, msg }) => ({ reqId, tenantId, status, msg }))).toEqual([
      { reqId: 'r1', tenantId: 't1', status: 200, msg: 'request done' },
      { reqId: 'r1', tenantId: 't1', status: undefined, msg: 'careful' },
      { reqId: 'r1', tenantId: undefined, status: undefined, msg: 'outer' },
    ])
  })

  it('follows a level set on it', async () => {
    const { root, lines } = logger('warn')
    const log = lazyChild(root, { reqId: 'r2' })
    log.level = 'debug'
    log.debug('now written')
    await new Promise((resolve) => setImmediate(resolve))
    expect(lines).toEqual([expect.objectContaining({ reqId: 'r2', msg: 'now written' })])
    expect(root.level).toBe('warn')
  })
})
