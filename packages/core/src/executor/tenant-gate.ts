import { TenantryError } from '../errors.js'

interface Waiter {
  resolve(): void
  timer: NodeJS.Timeout
}

/**
 * Lets at most `limit` calls of one tenant through at once, the others waiting their turn in
 * order, for at most `waitMs` before `CONCURRENCY_LIMITED`. `tenantry.bounded` on SQLite passes
 * through it before it takes executor processes: a tenant's burst of data API requests queues
 * for its share of the executor (which keeps the other tenants served) instead of being
 * refused at once, as the executor refuses a statement past the share.
 */
export class TenantGate {
  readonly #running = new Map<string, number>()
  readonly #waiting = new Map<string, Waiter[]>()

  constructor(readonly waitMs: number) {}

  /** Waits for a place; resolves to the function that gives it back (call it exactly once). */
  async enter(tenantId: string, limit: number): Promise<() => void> {
    const running = this.#running.get(tenantId) ?? 0
    if (running < limit && !this.#waiting.get(tenantId)?.length) {
      this.#running.set(tenantId, running + 1)
      return this.#leave(tenantId)
    }
    await new Promise<void>((resolve, reject) => {
      const queue = this.#waiting.get(tenantId) ?? []
      this.#waiting.set(tenantId, queue)
      const waiter: Waiter = {
        // The place is handed over by `#leave`: the count stays as it is.
        resolve,
        timer: setTimeout(() => {
          queue.splice(queue.indexOf(waiter), 1)
          if (!queue.length) this.#waiting.delete(tenantId)
          reject(
            new TenantryError('CONCURRENCY_LIMITED', `This tenant already runs ${limit} queries at once, its share; retry when one ends`, {
              details: { retryAfterSeconds: 1 },
            }),
          )
        }, this.waitMs),
      }
      queue.push(waiter)
    })
    return this.#leave(tenantId)
  }

  #leave(tenantId: string): () => void {
    let left = false
    return () => {
      if (left) return
      left = true
      const queue = this.#waiting.get(tenantId)
      const next = queue?.shift()
      if (queue && !queue.length) this.#waiting.delete(tenantId)
      if (next) {
        clearTimeout(next.timer)
        next.resolve()
        return
      }
      const running = (this.#running.get(tenantId) ?? 1) - 1
      if (running > 0) this.#running.set(tenantId, running)
      else this.#running.delete(tenantId)
    }
  }
}
