import { Dexie, type DexieOptions } from 'dexie'
import type { Backend } from './backend.js'
import type { CollectionsDeclaration } from './declaration.js'
import { TenantryClientError, isTenantryClientError } from './errors.js'
import { isPassingFailure, tenantRequester } from './http.js'
import { remoteBackend, sendWrite, type RemoteBackendOptions, type WriteOp } from './remote.js'

/**
 * The offline queue (issue 10, go beyond): a signed-in client keeps working while the server is
 * out of reach. A write that finds no server (after the remote backend's own retries) is kept in
 * IndexedDB with its idempotency key, and every write after it queues behind it; once the
 * server answers again, the queue is replayed in order, each write under its own key, so each
 * applies exactly once even if an earlier attempt reached the server and only the answer was
 * lost. Reads go to the server as they are.
 *
 * A queued write rejects with `QUEUED` (it has not happened yet; it will): the app shows it as
 * pending (`status()`, `subscribe`). A write the server refuses on replay for good (a 4xx) is
 * set aside as failed, with its error, and the replay goes on.
 */

export interface QueuedBackendOptions<C extends CollectionsDeclaration> extends RemoteBackendOptions<C> {
  /** The IndexedDB database the queue is kept in (one per user and tenant is wise). @default 'tenantry-queue' */
  name?: string
  /** Longest wait between replay attempts while the server stays out of reach. @default 30000 */
  maxReplayDelayMs?: number
  /** Another IndexedDB (e.g. `fake-indexeddb`), as Dexie's `indexedDB` and `IDBKeyRange` options. */
  indexedDB?: { indexedDB: NonNullable<DexieOptions['indexedDB']>; IDBKeyRange: NonNullable<DexieOptions['IDBKeyRange']> }
}

/** A write waiting in the queue, or set aside. */
export interface QueuedWrite {
  seq: number
  key: string
  write: WriteOp
  queuedAt: string
  /** Set when the server refused it on replay: it stays aside, out of the queue. */
  failed?: { code: string; message: string; status: number }
}

export interface QueueStatus {
  /** `synced`: nothing waiting; `pending`: writes wait for the server. */
  state: 'synced' | 'pending'
  pending: QueuedWrite[]
  failed: QueuedWrite[]
}

/** The queued backend: a remote `Backend` whose writes wait in IndexedDB while the server is out of reach. */
export interface QueuedBackend<C extends CollectionsDeclaration = CollectionsDeclaration> extends Backend<C> {
  status(): Promise<QueueStatus>
  /** Calls `listener` after every change of the queue; returns the unsubscribe. */
  subscribe(listener: (status: QueueStatus) => void): () => void
  /** Replays the queue now; resolves when it is empty, or when the server is still out of reach. */
  flush(): Promise<QueueStatus>
  /** Drops the writes set aside as failed. */
  clearFailed(): Promise<void>
}

type Row = Record<string, unknown>

const STORE = 'writes'

/**
 * A remote backend with an offline queue.
 *
 * @example
 * const backend = queuedBackend({ collections, baseUrl, name: `queue-${userId}` })
 * backend.subscribe(({ state }) => badge.textContent = state)
 * try { await createClient({ backend }).collection('jobs').create(job) }
 * catch (e) { if (!isTenantryClientError(e, 'QUEUED')) throw e }
 */
export function queuedBackend<const C extends CollectionsDeclaration>(options: QueuedBackendOptions<C>): QueuedBackend<C> {
  const remote = remoteBackend(options)
  const send = tenantRequester(options)
  const name = options.name ?? 'tenantry-queue'
  const db = new Dexie(name, options.indexedDB ? { indexedDB: options.indexedDB.indexedDB, IDBKeyRange: options.indexedDB.IDBKeyRange } : {})
  db.version(1).stores({ [STORE]: '++seq' })
  const writes = db.table<QueuedWrite, number>(STORE)
  const listeners = new Set<(status: QueueStatus) => void>()
  const maxDelay = options.maxReplayDelayMs ?? 30_000
  let closed = false
  let replaying: Promise<QueueStatus> | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let delay = 1000

  const status = async (): Promise<QueueStatus> => {
    const all = await writes.orderBy('seq').toArray()
    const pending = all.filter((w) => !w.failed)
    return { state: pending.length ? 'pending' : 'synced', pending, failed: all.filter((w) => w.failed) }
  }
  const changed = async () => {
    if (!listeners.size) return
    const now = await status()
    for (const listener of listeners) listener(now)
  }
  const queued = (entry: QueuedWrite) =>
    Object.assign(new TenantryClientError('QUEUED', 'The server is out of reach: the write is queued and will be sent once it answers', 0), { queued: entry })

  /** Replays the queue in order until it is empty or the server is out of reach again. */
  const replay = async (): Promise<QueueStatus> => {
    for (;;) {
      if (closed) return status()
      const next = (await writes.orderBy('seq').filter((w) => !w.failed).first()) as QueuedWrite | undefined
      if (!next) {
        delay = 1000
        return status()
      }
      try {
        await sendWrite(send, next.write, { idempotencyKey: next.key })
        await writes.delete(next.seq)
      } catch (error) {
        if (isPassingFailure(error)) {
          schedule()
          return status()
        }
        const e = isTenantryClientError(error) ? error : new TenantryClientError('INTERNAL', String(error), 0)
        await writes.update(next.seq, { failed: { code: e.code, message: e.message, status: e.status } })
      }
      await changed()
    }
  }
  /** One replay at a time, in this tab and (through a Web Lock) across tabs. */
  const flush = (): Promise<QueueStatus> => {
    if (replaying) return replaying
    const locks = (globalThis as { navigator?: { locks?: { request<T>(name: string, callback: () => Promise<T>): Promise<T> } } }).navigator?.locks
    const run = locks ? locks.request(`tenantry-queue:${name}`, replay) : replay()
    replaying = run.finally(() => (replaying = undefined))
    return replaying
  }
  const schedule = () => {
    if (closed || timer) return
    timer = setTimeout(() => {
      timer = undefined
      void flush()
    }, delay)
    delay = Math.min(maxDelay, delay * 2)
  }
  const online = () => {
    delay = 1000
    void flush()
  }
  const target = globalThis as { addEventListener?: (type: string, listener: () => void) => void; removeEventListener?: (type: string, listener: () => void) => void }
  target.addEventListener?.('online', online)

  /** Sends `write`, or queues it when the server is out of reach or earlier writes still wait. */
  const write = async (op: WriteOp): Promise<unknown> => {
    const key = crypto.randomUUID()
    const enqueue = async () => {
      const entry: Omit<QueuedWrite, 'seq'> = { key, write: op, queuedAt: new Date().toISOString() }
      const seq = (await writes.add(entry as QueuedWrite)) as number
      await changed()
      schedule()
      return queued({ ...entry, seq })
    }
    // Order: nothing overtakes a write still waiting.
    if ((await writes.filter((w) => !w.failed).count()) > 0) throw await enqueue()
    try {
      return await sendWrite(send, op, { idempotencyKey: key })
    } catch (error) {
      if (isTenantryClientError(error, 'NETWORK_ERROR')) throw await enqueue()
      throw error
    }
  }

  // Writes left by an earlier page: replay them as soon as the queue opens.
  void flush().catch(() => {})

  return {
    ...remote,
    create: (collection, values) => write({ op: 'create', collection, values }) as Promise<Row>,
    update: (collection, id, changes) => write({ op: 'update', collection, id, changes }) as Promise<Row>,
    delete: async (collection, id) => {
      await write({ op: 'delete', collection, id })
    },
    bulkCreate: (collection, items) => write({ op: 'bulkCreate', collection, items }) as Promise<Row[]>,
    bulkDelete: (collection, ids) => write({ op: 'bulkDelete', collection, ids }) as Promise<number>,
    status,
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    flush,
    async clearFailed() {
      await writes.filter((w) => w.failed !== undefined).delete()
      await changed()
    },
    async close() {
      closed = true
      if (timer) clearTimeout(timer)
      target.removeEventListener?.('online', online)
      await replaying?.catch(() => {})
      db.close()
    },
  }
}
