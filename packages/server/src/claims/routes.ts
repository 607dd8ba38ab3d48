import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import {
  applyClaim,
  ClaimStore,
  claimProblems,
  Collection,
  collectionsInReferenceOrder,
  constraintViolation,
  findLedgerEntry,
  LEDGER_CLAIM_PREFIX,
  isTenantryError,
  recordLedgerEntry,
  type ClaimCollection,
  type ClaimResult,
  type ClaimRows,
} from 'tenantry'
import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { noQuery } from '../schemas.js'
import { assertWritable, inTenant } from '../tenants/resolve-tenant.js'
import { chunkBody, chunkParams, claimParams, claimStatusResponse, commitBody, committedResponse, stagedResponse } from './schemas.js'

/** How often (at most) a process sweeps abandoned chunks, on a claim request. */
const PRUNE_INTERVAL_MS = 60_000

/**
 * Claim on first sign-in (issue 10): the browser's anonymous local data moves into a tenant.
 *
 * - `PUT …/claims/:claimId/chunks/:seq` stages one chunk in the catalog (`ClaimStore`), each
 *   row validated at once with its collection's create schema: a bad row is a 400 naming the
 *   collection, the local id and the field, and nothing of the chunk is staged.
 * - `POST …/claims/:claimId/commit` inserts every staged row in ONE transaction of the tenant's
 *   database, references remapped from local to server ids, and records the answer in the
 *   tenant's write ledger under `claim:<claimId>` in the same transaction. A retry answers the
 *   recorded result and writes nothing, also once the staged chunks are gone.
 * - `GET …/claims/:claimId` answers the committed result, or the chunks staged so far.
 *
 * A claim belongs to the tenant and to who stages it (a user, or a writable token): anyone
 * else gets 404 as if it did not exist. The commit runs through `tenantry.bounded` (off this
 * event loop on SQLite) under `server.claims.commitTimeoutMs`.
 */
export function claimRoutes(app: ServerInstance, { tenantry, config }: FeatureOptions): void {
  const settings = config.claims
  const store = new ClaimStore(tenantry.catalog)
  const tags = ['claims']
  const collections = new Map(Object.entries(config.collections).map(([name, c]) => [name, new Collection(name, c)]))
  const ordered: ClaimCollection[] = collectionsInReferenceOrder(config.collections)
    .map((name) => collections.get(name)!)
    .map((c) => ({
      name: c.name,
      table: c.table,
      primaryKey: c.primaryKey,
      integerKey: c.config.columns[c.primaryKey]!.type === 'integer',
      generatedKey: c.config.columns[c.primaryKey]!.generated,
      references: referencesOf(c),
      toDb: (values: Record<string, unknown>) => c.toDb(values),
    }))
  const notFound = (claimId: string) => new HttpError('NOT_FOUND', `No claim ${JSON.stringify(claimId)} of yours in this tenant`)
  const ledgerKey = (claimId: string) => `${LEDGER_CLAIM_PREFIX}${claimId}`

  let lastPrune = 0
  /** Deletes abandoned chunks now and then, bounded, never failing the request that pays for it. */
  const pruneNowAndThen = (request: FastifyRequest) => {
    if (Date.now() - lastPrune < PRUNE_INTERVAL_MS) return
    lastPrune = Date.now()
    store.pruneAbandoned(settings.abandonAfterMs, 200).catch((error: unknown) => request.log.warn({ err: error }, 'Pruning abandoned claim chunks failed'))
  }

  /** The committed answer recorded for the claim, if any; a claim someone else committed is a 404. */
  const committed = async (request: FastifyRequest, owner: string, claimId: string): Promise<ClaimResult & { claimId: string; status: 'committed' } | undefined> => {
    const entry = await inTenant(tenantry, request, () => findLedgerEntry(tenantry.db() as unknown as Kysely<any>, ledgerKey(claimId)))
    if (!entry) return undefined
    if (entry.requestHash !== owner) throw notFound(claimId)
    return entry.response as ClaimResult & { claimId: string; status: 'committed' }
  }

  app.put(
    '/claims/:claimId/chunks/:seq',
    {
      bodyLimit: settings.maxChunkBytes,
      schema: {
        tags,
        summary: `Stage one chunk of a claim (at most ${settings.maxRowsPerChunk} rows); sending a seq again replaces it`,
        params: chunkParams,
        querystring: noQuery,
        body: chunkBody([...collections.keys()]),
        response: { 200: stagedResponse },
      },
    },
    async (request) => {
      assertWritable(request)
      const owner = ownerOf(request)
      const { claimId, seq } = request.params as { claimId: string; seq: number }
      const body = request.body as { rows: ClaimRows }
      const rows: ClaimRows = {}
      let count = 0
      for (const [name, list] of Object.entries(body.rows)) {
        if (!list) continue
        count += list.length
        if (count > settings.maxRowsPerChunk) {
          throw new HttpError('CLAIM_TOO_LARGE', `A chunk holds at most ${settings.maxRowsPerChunk} rows; send smaller chunks`)
        }
        const create = collections.get(name)!.schemas.create
        rows[name] = list.map((row) => {
          const parsed = create.safeParse(row.values)
          if (!parsed.success) {
            const issue = parsed.error.issues[0]!
            const keys = (issue as { keys?: unknown }).keys
            const field = Array.isArray(keys) && keys.length ? keys.join(', ') : issue.path.join('.') || '(row)'
            throw new HttpError('VALIDATION_FAILED', `body.rows.${name}[localId ${JSON.stringify(row.localId)}].${field}: ${issue.message}`)
          }
          return { localId: row.localId, values: parsed.data as Record<string, unknown> }
        })
      }
      const tenantId = request.tenant!.id
      const staged = await store.stage(tenantId, owner, claimId, seq, rows, settings.maxRowsPerClaim)
      if (staged.outcome === 'foreign') throw notFound(claimId)
      if (staged.outcome === 'too-large') {
        throw new HttpError('CLAIM_TOO_LARGE', `A claim holds at most ${settings.maxRowsPerClaim} rows; this chunk would bring it to ${staged.totalRows}`)
      }
      pruneNowAndThen(request)
      return { claimId, seq, rows: count, totalRows: staged.totalRows }
    },
  )

  app.post(
    '/claims/:claimId/commit',
    {
      schema: {
        tags,
        summary: 'Commit a claim: every staged row in one transaction, references remapped; a retry answers the same',
        params: claimParams,
        querystring: noQuery,
        body: commitBody,
        response: { 200: committedResponse },
      },
    },
    async (request, reply) => {
      assertWritable(request)
      const owner = ownerOf(request)
      const tenant = request.tenant!
      const { claimId } = request.params as { claimId: string }
      const { chunks: expected } = request.body as { chunks: number }
      const done = await committed(request, owner, claimId)
      if (done) {
        await store.discard(tenant.id, owner, claimId)
        return done
      }
      const chunks = await store.chunks(tenant.id, owner, claimId)
      if (!chunks.length) throw notFound(claimId)
      const extra = chunks.filter((c) => c.seq >= expected).map((c) => c.seq)
      if (extra.length) throw new HttpError('VALIDATION_FAILED', `body.chunks: ${expected}, but chunks ${extra.join(', ')} are staged too`)
      const have = new Set(chunks.map((c) => c.seq))
      const missing = Array.from({ length: expected }, (_, i) => i).filter((seq) => !have.has(seq))
      if (missing.length) {
        const shown = missing.slice(0, 50).join(', ') + (missing.length > 50 ? `, … (${missing.length} in all)` : '')
        throw new HttpError('CLAIM_INCOMPLETE', `Chunks not staged: ${shown}`)
      }

      const rows: ClaimRows = {}
      for (const chunk of chunks) for (const [name, list] of Object.entries(chunk.rows)) (rows[name] ??= []).push(...list)
      const problems = claimProblems(ordered, rows)
      if (problems.length) {
        throw new HttpError(
          'CLAIM_INVALID_REFERENCE',
          problems.map((p) => `${p.collection}[localId ${JSON.stringify(p.localId)}]${p.column ? `.${p.column}` : ''}: ${p.message}`).join('; '),
        )
      }
      await tenantry.assertStorageQuota(tenant.id)
      const engine = (await tenantry.dataSources.engine((await tenantry.router.resolve({ id: tenant.id })).placement.dataSourceId)).name

      let answer: ClaimResult & { claimId: string; status: 'committed' }
      try {
        answer = await inTenant(tenantry, request, () =>
          tenantry.bounded(
            (db) => {
              const apply = async (trx: Kysely<any>) => {
                const result = { claimId, status: 'committed' as const, ...(await applyClaim(trx, ordered, rows, { integerKeys: engine === 'sqlite' ? 'max' : 'sequence' })) }
                await recordLedgerEntry(trx, { key: ledgerKey(claimId), requestHash: owner, status: 200, response: result })
                return result
              }
              // On Postgres `bounded` runs `fn` in its own transaction already.
              return db.isTransaction ? apply(db) : db.transaction().execute(apply)
            },
            { statementTimeoutMs: settings.commitTimeoutMs, transactionTimeoutMs: settings.commitTimeoutMs },
          ),
        )
      } catch (error) {
        // The same claim committed meanwhile by another request (two tabs, a retry racing the first try).
        if (isTenantryError(error, 'IDEMPOTENCY_KEY_IN_USE')) {
          const winner = await committed(request, owner, claimId)
          if (winner) return winner
        }
        retryLater(error, reply)
        return constraintViolation(error)
      }
      await store.discard(tenant.id, owner, claimId)
      await tenantry.catalog.audit({ tenantId: tenant.id, action: 'claim.committed', actor: owner, details: { claimId, counts: answer.counts } })
      return answer
    },
  )

  app.get(
    '/claims/:claimId',
    { schema: { tags, summary: 'A claim: its committed result, or the chunks staged so far', params: claimParams, querystring: noQuery, response: { 200: claimStatusResponse } } },
    async (request) => {
      const owner = ownerOf(request)
      const { claimId } = request.params as { claimId: string }
      const done = await committed(request, owner, claimId)
      if (done) return done
      const chunks = await store.seqs(request.tenant!.id, owner, claimId)
      if (!chunks.length) throw notFound(claimId)
      return { claimId, status: 'pending' as const, chunks }
    },
  )
}

/** Who a claim belongs to: the signed-in user, or the token. */
function ownerOf(request: FastifyRequest): string {
  const principal = request.principal
  if (!principal) throw new HttpError('UNAUTHENTICATED')
  return principal.kind === 'user' ? `user:${principal.userId}` : `token:${principal.tokenId}`
}

/** A collection's reference columns: column → referenced collection (`references` in its declaration). */
function referencesOf(collection: Collection): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, column] of Object.entries(collection.config.columns)) if (column.references) out[name] = column.references
  return out
}

/** A lock held elsewhere or every executor busy: 503 with Retry-After, as the data API answers. */
function retryLater(error: unknown, reply: FastifyReply): void {
  if (isTenantryError(error, 'DATABASE_BUSY') || isTenantryError(error, 'CONCURRENCY_LIMITED')) {
    const seconds = error.details?.retryAfterSeconds
    void reply.header('retry-after', String(typeof seconds === 'number' ? seconds : 1))
    throw error
  }
}
