import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { currentScope, currentTenant, requireTenant, settledPromise, withTenant } from './context.js'
import { forEachBounded } from './migrations/fan-out.js'

const a = { id: 'taaaaaaaaaaaaaaaaaaa', slug: 'alpha' }
const b = { id: 'tbbbbbbbbbbbbbbbbbbb', slug: 'beta' }

describe('tenant context', () => {
  it('is empty outside withTenant, and requireTenant fails closed', () => {
    expect(currentTenant()).toBeUndefined()
    expect(() => requireTenant()).toThrowError(expect.objectContaining({ name: 'NoTenantError', code: 'NO_TENANT' }))
  })

  it('survives awaits, timers, immediates, nextTicks and event emitters', async () => {
    const seen: Array<string | undefined> = []
    const emitter = new EventEmitter()
    await withTenant(a, async () => {
      await Promise.resolve()
      seen.push(currentTenant()?.slug)
      await new Promise<void>((r) => setTimeout(() => (seen.push(currentTenant()?.slug), r()), 5))
      await new Promise<void>((r) => setImmediate(() => (seen.push(currentTenant()?.slug), r())))
      await new Promise<void>((r) => process.nextTick(() => (seen.push(currentTenant()?.slug), r())))
      emitter.on('x', () => seen.push(currentTenant()?.slug))
      emitter.emit('x')
    })
    expect(seen).toEqual(['alpha', 'alpha', 'alpha', 'alpha', 'alpha'])
    expect(currentTenant()).toBeUndefined()
  })

  it('keeps interleaved calls for different tenants apart, inside promise pools', async () => {
    const leaks: string[] = []
    const run = (tenant: typeof a) =>
      withTenant(tenant, () =>
        forEachBounded(Array.from({ length: 50 }, (_, i) => i), 3, async (i) => {
          await new Promise((r) => setTimeout(r, i % 3))
          if (currentTenant()?.id !== tenant.id) leaks.push(`${tenant.slug} saw ${currentTenant()?.slug}`)
        }),
      )
    await Promise.all([run(a), run(b), run(a), run(b)])
    expect(leaks).toEqual([])
  })

  it('nests, restoring the outer tenant afterwards', async () => {
    await withTenant(a, async () => {
      await withTenant(b, async () => expect(currentTenant()?.slug).toBe('beta'))
      expect(currentTenant()?.slug).toBe('alpha')
    })
  })

  it('releases leases taken in the call when it settles, even when it throws', async () => {
    const released: string[] = []
    await expect(
      withTenant(a, async () => {
        currentScope()!.leases.push(() => released.push('first'), () => released.push('second'))
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(released).toEqual(['second', 'first'])
  })

  it('releases at once when fn returns a promise that settled as it was made (a prepared statement on SQLite)', async () => {
    const released: string[] = []
    const pending = withTenant(a, () => {
      currentScope()!.leases.push(() => released.push('handle'))
      return settledPromise(7)
    })
    expect(released).toEqual(['handle']) // before anything awaits
    await expect(pending).resolves.toBe(7)

    // Any other promise holds the leases until it settles.
    let resolve!: (value: number) => void
    const later = withTenant(a, () => {
      currentScope()!.leases.push(() => released.push('later'))
      return new Promise<number>((r) => (resolve = r))
    })
    await Promise.resolve()
    expect(released).toEqual(['handle'])
    resolve(8)
    await expect(later).resolves.toBe(8)
    expect(released).toEqual(['handle', 'later'])
  })
})
