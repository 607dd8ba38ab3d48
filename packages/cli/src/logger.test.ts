import { describe, expect, it } from 'vitest'
import { createCliLogger } from './logger.js'

function capture(json: boolean) {
  const lines: string[] = []
  return { lines, logger: createCliLogger((text) => void lines.push(text), { json }) }
}

describe('createCliLogger', () => {
  it('writes a warning or an error as one safe line, with the error and the facts', () => {
    const { lines, logger } = capture(false)
    const err = new Error('first line\nsecond \u001b[31mline')
    logger.warn({ err, tenantId: 'tabc', tenantIds: ['t1', 't2'], absent: undefined }, 'Closing a handle failed')
    logger.error({ tenantId: 'tabc' }, 'Something broke')
    logger.info({ tenantId: 'tabc' }, 'not shown')
    logger.debug({}, 'not shown either')
    expect(lines).toEqual([
      'tenantry: warning: Closing a handle failed: first line second \\u001b[31mline (tenantId=tabc tenantIds=["t1","t2"])\n',
      'tenantry: error: Something broke (tenantId=tabc)\n',
    ])
  })

  it('writes one JSON object per line under --json', () => {
    const { lines, logger } = capture(true)
    const err = Object.assign(new Error('refused'), { code: 'SQLITE_BUSY' })
    logger.warn({ err, tenantId: 'tabc', count: 3n }, 'Heartbeat failed')
    logger.error({ err: 'plain text' }, 'Odd error')
    expect(lines.map((line) => JSON.parse(line) as unknown)).toEqual([
      { level: 'warn', message: 'Heartbeat failed', tenantId: 'tabc', count: '3', err: { type: 'Error', message: 'refused', code: 'SQLITE_BUSY' } },
      { level: 'error', message: 'Odd error', err: 'plain text' },
    ])
    expect(lines.every((line) => line.endsWith('\n') && !line.slice(0, -1).includes('\n'))).toBe(true)
  })
})
