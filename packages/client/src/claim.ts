import type { CollectionsDeclaration } from './declaration.js'
import { referenceOrder, resolveCollection } from './declaration.js'
import { TenantryClientError, isTenantryClientError } from './errors.js'
import { tenantRequester, type ServerTarget } from './http.js'
import { CLAIMS_STORE, type LocalBackend } from './local.js'

/**
 * Claim on first sign-in (issue 10): the anonymous user's local data (the local backend's
 * IndexedDB) moves into their tenant on the server, exactly once, whatever happens meanwhile.
 *
 * 1. Under a Web Lock named after the local database (two tabs make one claim: the second
 *    waits, then finds nothing left to claim and answers the first one's result), a claim
 *    record is written to IndexedDB BEFORE anything is sent: the claim id and the local ids
 *    being claimed, per collection.
 * 2. The rows go in chunks (`PUT …/claims/:id/chunks/:seq`), then one commit, which the server
 *    applies in one transaction and records under the claim id: a commit sent again answers the
 *    first result instead of writing twice.
 * 3. Only once the server confirms are exactly the claimed local rows and the record deleted,
 *    in one IndexedDB transaction; rows created locally during the claim stay.
 *
 * A tab closed, a network lost or a server killed at any step leaves the record behind; the
 * next call (`resumeClaim` on load) asks the server where the claim is: committed → clears the
 * local copy; otherwise sends what is missing and commits. Either way the data ends up on the
 * server once.
 */

export interface ClaimProgress {
  /** Rows sent so far (in chunks the server staged). */
  sent: number
  /** Rows in the claim. */
  total: number
}

export interface ClaimLocalDataOptions<C extends CollectionsDeclaration> extends ServerTarget {
  /** The local backend holding the anonymous data. */
  local: LocalBackend<C>
  /** Rows per chunk (all collections together). @default 500 */
  chunkSize?: number
  onProgress?: (progress: ClaimProgress) => void
  /** Stops the claim between requests; the record stays, and the next call resumes it. */
  signal?: AbortSignal
}

/** What a claim answers. */
export type ClaimOutcome =
  | {
      status: 'committed'
      claimId: string
      /** Rows inserted on the server, by collection. */
      counts: Record<string, number>
      /** By collection: local id → server id. */
      ids: Record<string, Record<string, string | number>>
    }
  /** Nothing local to claim; `previous` is the last claim this database made, if any (e.g. the other tab's). */
  | { status: 'nothing-to-claim'; previous?: ClaimOutcome & { status: 'committed' } }

/** The record of the claim in progress, in `CLAIMS_STORE` under `PENDING`. */
interface ClaimRecord {
  id: typeof PENDING
  claimId: string
  baseUrl: string
  tenant: string | null
  chunkSize: number
  /** Collections in reference order, each with the local ids claimed. */
  snapshot: Array<{ collection: string; ids: Array<string | number> }>
  createdAt: string
}

/** What the claim uses of `navigator.locks` (the Web Locks API). */
interface WebLocks {
  request<T>(name: string, options: { signal?: AbortSignal }, callback: () => Promise<T>): Promise<T>
}

const PENDING = 'pending'
const LAST = 'last'

type Committed = ClaimOutcome & { status: 'committed' }

/**
 * Moves the local backend's data into the server tenant (`baseUrl`, `tenant` or the active one),
 * or resumes the claim a closed tab left. Resolves once the server holds the data and the local
 * copy is gone; rejects (keeping the record, to resume later) when the server cannot be reached,
 * refuses the data, or `signal` aborts.
 *
 * @example
 * await auth.signIn.email({ email, password })
 * const outcome = await claimLocalData({ local, baseUrl: 'https://api.example.com', onProgress: ({ sent, total }) => show(sent / total) })
 */
export async function claimLocalData<C extends CollectionsDeclaration>(options: ClaimLocalDataOptions<C>): Promise<ClaimOutcome> {
  const locks = (globalThis as { navigator?: { locks?: WebLocks } }).navigator?.locks
  if (!locks) throw new TenantryClientError('UNSUPPORTED', 'This browser has no Web Locks (navigator.locks): a claim cannot be kept to one tab')
  return locks.request(`tenantry-claim:${options.local.name}`, options.signal ? { signal: options.signal } : {}, () => claimUnderLock(options))
}

/** Whether a claim was left unfinished (a closed tab, a lost network): call `resumeClaim` then. */
export async function hasPendingClaim(local: LocalBackend): Promise<boolean> {
  return (await local.dexie.table(CLAIMS_STORE).get(PENDING)) !== undefined
}

/**
 * Finishes a claim left unfinished, against the server and tenant it was started for; answers
 * `undefined` when there is none. Call it on load, once signed in.
 */
export async function resumeClaim<C extends CollectionsDeclaration>(
  options: Omit<ClaimLocalDataOptions<C>, 'baseUrl' | 'tenant'> & Partial<Pick<ClaimLocalDataOptions<C>, 'baseUrl' | 'tenant'>>,
): Promise<ClaimOutcome | undefined> {
  const record = (await options.local.dexie.table(CLAIMS_STORE).get(PENDING)) as ClaimRecord | undefined
  if (!record) return undefined
  return claimLocalData({ ...options, baseUrl: record.baseUrl, ...(record.tenant !== null ? { tenant: record.tenant } : {}) })
}

/**
 * Drops an unfinished claim's record, keeping the local data: for a claim the server refuses for
 * good (e.g. `CLAIM_INVALID_REFERENCE`), which resuming would only repeat. A later claim starts
 * afresh under a new id. Do not call it while the server may still commit the claim.
 */
export async function abandonClaim(local: LocalBackend): Promise<void> {
  await local.dexie.table(CLAIMS_STORE).delete(PENDING)
}

async function claimUnderLock<C extends CollectionsDeclaration>(options: ClaimLocalDataOptions<C>): Promise<ClaimOutcome> {
  const { local } = options
  const records = local.dexie.table(CLAIMS_STORE)
  let record = (await records.get(PENDING)) as ClaimRecord | undefined
  if (!record) {
    const snapshot = await snapshotOf(local)
    if (!snapshot.some((s) => s.ids.length)) {
      const previous = (await records.get(LAST)) as { outcome: Committed } | undefined
      return { status: 'nothing-to-claim', ...(previous ? { previous: previous.outcome } : {}) }
    }
    record = {
      id: PENDING,
      claimId: crypto.randomUUID(),
      baseUrl: options.baseUrl,
      tenant: options.tenant ?? null,
      chunkSize: Math.max(1, Math.min(options.chunkSize ?? 500, 1000)),
      snapshot,
      createdAt: new Date().toISOString(),
    }
    // Written before anything is sent: a claim the server may hold always has its record here.
    await records.put(record)
  }
  const send = tenantRequester({ ...options, baseUrl: record.baseUrl, ...(record.tenant !== null ? { tenant: record.tenant } : {}) })
  const base = `/claims/${record.claimId}`
  const signal = options.signal
  const chunks = chunksOf(record)
  const total = chunks.reduce((n, c) => n + c.length, 0)

  const status = await send<Committed | { status: 'pending'; chunks: number[] }>('GET', base, signal ? { signal } : {}).catch((error: unknown) => {
    if (isTenantryClientError(error, 'NOT_FOUND')) return { status: 'pending' as const, chunks: [] }
    throw error
  })
  let outcome: Committed
  if (status.status === 'committed') outcome = status
  else {
    const staged = new Set(status.chunks)
    const sendChunks = async (which: (seq: number) => boolean) => {
      let sent = 0
      for (let seq = 0; seq < chunks.length; seq++) {
        if (which(seq)) {
          const rows = await rowsOf(local, chunks[seq]!)
          await send('PUT', `${base}/chunks/${seq}`, { body: { rows }, ...(signal ? { signal } : {}) })
        }
        sent += chunks[seq]!.length
        options.onProgress?.({ sent, total })
      }
    }
    await sendChunks((seq) => !staged.has(seq))
    const commit = () => send<Committed>('POST', `${base}/commit`, { body: { chunks: chunks.length }, ...(signal ? { signal } : {}) })
    try {
      outcome = await commit()
    } catch (error) {
      // Staged chunks the server dropped meanwhile (abandoned for a day): send them all again, once.
      if (!isTenantryClientError(error, 'NOT_FOUND') && !isTenantryClientError(error, 'CLAIM_INCOMPLETE')) throw error
      await sendChunks(() => true)
      outcome = await commit()
    }
  }
  // Confirmed: exactly the claimed rows and the record go, together.
  const tables = record.snapshot.map((s) => local.dexie.table(s.collection))
  await local.dexie.transaction('rw', [...tables, records], async () => {
    for (const s of record.snapshot) await local.dexie.table(s.collection).bulkDelete(s.ids)
    await records.delete(PENDING)
    await records.put({ id: LAST, outcome })
  })
  return outcome
}

/** The local ids of every collection, collections in reference order (referenced ones first). */
async function snapshotOf(local: LocalBackend): Promise<ClaimRecord['snapshot']> {
  const names = referenceOrder(local.collections).order
  const out: ClaimRecord['snapshot'] = []
  for (const name of names) {
    const ids = (await local.dexie.table(name).toCollection().primaryKeys()) as Array<string | number>
    out.push({ collection: name, ids })
  }
  return out
}

/** The claim's chunks: `chunkSize` (collection, local id) pairs each, in snapshot order, the same on every resume. */
function chunksOf(record: ClaimRecord): Array<Array<{ collection: string; id: string | number }>> {
  const all = record.snapshot.flatMap((s) => s.ids.map((id) => ({ collection: s.collection, id })))
  const chunks: Array<Array<{ collection: string; id: string | number }>> = []
  for (let i = 0; i < all.length; i += record.chunkSize) chunks.push(all.slice(i, i + record.chunkSize))
  return chunks
}

/**
 * A chunk's rows as the server stages them: the local id, and the values a create takes (no
 * generated columns; reference columns keep the local id of the row they point to). A row
 * deleted locally since the snapshot is left out.
 */
async function rowsOf(local: LocalBackend, chunk: Array<{ collection: string; id: string | number }>) {
  const rows: Record<string, Array<{ localId: string | number; values: Record<string, unknown> }>> = {}
  const byCollection = new Map<string, Array<string | number>>()
  for (const { collection, id } of chunk) byCollection.set(collection, [...(byCollection.get(collection) ?? []), id])
  for (const [name, ids] of byCollection) {
    const resolved = resolveCollection(name, local.collections[name]!)
    const writable = Object.entries(resolved.columns).filter(([, c]) => !c.generated)
    const found = (await local.dexie.table(name).bulkGet(ids)) as Array<Record<string, unknown> | undefined>
    const list: Array<{ localId: string | number; values: Record<string, unknown> }> = []
    found.forEach((row, i) => {
      if (!row) return
      const values: Record<string, unknown> = {}
      // A null is sent only where the column takes one; elsewhere the server's default applies.
      for (const [column, c] of writable) if (row[column] !== undefined && (row[column] !== null || c.nullable)) values[column] = row[column]
      list.push({ localId: ids[i]!, values })
    })
    rows[name] = list
  }
  return rows
}
