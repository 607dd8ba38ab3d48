import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Catalog, UsageDelta } from '../catalog/catalog.js'
import { UsageMeter } from './usage-meter.js'

/** The one catalog method the meter writes through: records each call, or fails while `down`. */
function recordingCatalog() {
  const calls: UsageDelta[][] = []
  const state = { down: false }
  const catalog = {
    async addUsage(deltas: readonly UsageDelta[]) {
      if (state.down) throw new Error('catalog down')
      calls.push(deltas.map((d) => structuredClone(d)))
    },
  } as unknown as Catalog
  return { catalog, calls, state }
}

const byKey = (deltas: readonly UsageDelta[]) => Object.fromEntries(deltas.map((d) => [`${d.tenantId} ${d.day}`, d.counts]))

afterEach(() => {
  vi.useRealTimers()
})

describe('UsageMeter', () => {
  it('adds statements and requests per tenant per UTC day, and flushes each day under its own date', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(new Date('2026-12-03T23:59:59.500Z'))
    const { catalog, calls } = recordingCatalog()
    const meter = new UsageMeter(catalog, { flushIntervalMs: 3_600_000 })
    meter.statement('t_a', { rowsRead: 1, rowsWritten: 0, ms: 0.5 })
    meter.statement('t_a', { rowsRead: 0, rowsWritten: 3, ms: 1 })
    meter.record('t_a', { requests: 1 })
    meter.statement('t_b', { rowsRead: 7, rowsWritten: 0, ms: 2 })
    vi.setSystemTime(new Date('2026-12-04T00:00:00.100Z'))
    meter.statement('t_a', { rowsRead: 2, rowsWritten: 0, ms: 0.25 })

    await meter.close()
    expect(calls).toHaveLength(1)
    expect(byKey(calls[0]!)).toEqual({
      't_a 2026-12-03': { requests: 1, statements: 2, rowsRead: 1, rowsWritten: 3, execMs: 1.5 },
      't_b 2026-12-03': { requests: 0, statements: 1, rowsRead: 7, rowsWritten: 0, execMs: 2 },
      't_a 2026-12-04': { requests: 0, statements: 1, rowsRead: 2, rowsWritten: 0, execMs: 0.25 },
    })
    expect(meter.totals().get('t_a')).toEqual({ requests: 1, statements: 3, rowsRead: 3, rowsWritten: 3, execMs: 1.75 })
  })

  it('keeps what a failed flush could not write and adds it to what is counted meanwhile', async () => {
    const { catalog, calls, state } = recordingCatalog()
    const meter = new UsageMeter(catalog, { flushIntervalMs: 3_600_000 })
    meter.statement('t_a', { rowsRead: 1, rowsWritten: 0, ms: 1 })
    state.down = true
    await meter.flush()
    expect(calls).toHaveLength(0)

    state.down = false
    meter.statement('t_a', { rowsRead: 4, rowsWritten: 0, ms: 1 })
    await meter.flush()
    expect(calls).toHaveLength(1)
    expect(calls[0]).toHaveLength(1)
    expect(calls[0]![0]!.counts).toEqual({ requests: 0, statements: 2, rowsRead: 5, rowsWritten: 0, execMs: 2 })

    await meter.flush() // nothing left: nothing written twice
    expect(calls).toHaveLength(1)
    await meter.close()
  })
})
