import { AsyncLocalStorage } from 'node:async_hooks'
import { NoTenantError } from './errors.js'

/** The tenant a piece of code runs for. `id` is the opaque catalog id; `slug` is for humans and logs. */
export interface TenantRef {
  readonly id: string
  readonly slug: string
}

/**
 * What `withTenant` stores for the duration of a call. `leases` are resources (open
 * database handles) taken inside the call and released when the call settles, so a
 * handle is never closed under code that still holds it.
 */
export interface TenantScope {
  readonly tenant: TenantRef
  /** Released in reverse order when the call that created this scope settles. */
  readonly leases: Array<() => void>
  /** State the router keeps for this call: the resolved placement, then the handle once taken. */
  route?: unknown
}

const storage = new AsyncLocalStorage<TenantScope>()

/**
 * Runs `fn` with `tenant` as the current tenant. The context follows every await,
 * timer and callback started inside `fn` (AsyncLocalStorage), and ends with it.
 *
 * This is the low-level form; `Tenantry#withTenant` resolves a slug or id through
 * the catalog, checks the tenant is ready, and then calls this.
 */
export function withTenant<T>(tenant: TenantRef, fn: () => T | Promise<T>, route?: unknown): Promise<T> {
  const scope: TenantScope = { tenant: { id: tenant.id, slug: tenant.slug }, leases: [], route }
  let result: T | Promise<T>
  try {
    result = storage.run(scope, fn)
  } catch (error) {
    release(scope)
    return Promise.reject(error)
  }
  if (!(result instanceof Promise)) {
    release(scope)
    return Promise.resolve(result)
  }
  if ((result as Partial<Settled>)[SETTLED] === true) {
    release(scope)
    return result
  }
  // One `then` rather than an async function's await and finally: every promise costs more
  // once AsyncLocalStorage is on (Node 20's promise hooks), and this runs on every request.
  return result.then(
    (value) => {
      release(scope)
      return value
    },
    (error: unknown) => {
      release(scope)
      throw error
    },
  )
}

/** Marks a promise made by `settledPromise` (a WeakSet of them costs more than the hop it saves). */
const SETTLED = Symbol('settled')
interface Settled {
  [SETTLED]: true
}

/**
 * A promise already resolved with `value`, for work that finished before it returned (a
 * prepared statement on SQLite). When `fn` returns one, `withTenant` releases its leases at
 * once and returns it as it is, rather than waiting one more promise hop for it to settle:
 * every hop costs more while AsyncLocalStorage is on.
 */
export function settledPromise<T>(value: T): Promise<T> {
  const promise = Promise.resolve(value) as Promise<T> & Settled
  promise[SETTLED] = true
  return promise
}

/** Releases the leases a call took, newest first. */
function release(scope: TenantScope): void {
  for (let i = scope.leases.length - 1; i >= 0; i--) scope.leases[i]!()
  scope.leases.length = 0
}

/** The current tenant, or `undefined` outside any `withTenant` call. */
export function currentTenant(): TenantRef | undefined {
  return storage.getStore()?.tenant
}

/** The current tenant, or a `NoTenantError`: the fail-closed form every data access uses. */
export function requireTenant(): TenantRef {
  const scope = storage.getStore()
  if (!scope) throw new NoTenantError()
  return scope.tenant
}

/** @internal The whole scope, for the router's leases. */
export function currentScope(): TenantScope | undefined {
  return storage.getStore()
}
