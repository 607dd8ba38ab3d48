import type { Catalog } from '../catalog/catalog.js'

/**
 * Staged chunks of claims (issue 10, claim on first sign-in): a browser sends its local data in
 * chunks, which wait in the catalog until the claim commits in the tenant's own database in one
 * transaction (`applyClaim`). The catalog holds them because it is the one database every
 * server process shares and it outlives any request; it never holds them longer than the claim
 * is pending: they are deleted at commit, and abandoned ones by `pruneAbandoned`.
 *
 * A chunk is bound to its tenant and to who staged it (`owner`, e.g. `user:<id>`): every read and
 * write here names both, so another user or tenant never sees nor replaces it.
 */

/** Rows of one chunk: by collection, each with the id it had locally and its (validated) values. */
export type ClaimRows = Record<string, Array<{ localId: string | number; values: Record<string, unknown> }>>

/** One staged chunk. */
export interface StagedChunk {
  seq: number
  rows: ClaimRows
  rowCount: number
}

/** What `stage` found and did. */
export type StageResult =
  | { outcome: 'staged'; totalRows: number }
  /** Another owner already stages chunks under this claim id in this tenant: the caller answers as if nothing were there. */
  | { outcome: 'foreign' }
  /** The claim would hold more than `maxRows`: nothing was staged. */
  | { outcome: 'too-large'; totalRows: number }

export class ClaimStore {
  constructor(readonly catalog: Catalog) {}

  /**
   * Stages chunk `seq` of claim `claimId` (replacing one staged under the same seq), unless the
   * claim belongs to another owner, or the claim's rows would pass `maxRows` with it.
   */
  async stage(tenantId: string, owner: string, claimId: string, seq: number, rows: ClaimRows, maxRows: number): Promise<StageResult> {
    const rowCount = Object.values(rows).reduce((n, list) => n + list.length, 0)
    return this.catalog.db.transaction().execute(async (trx) => {
      const others = await trx
        .selectFrom('claim_chunks')
        .select(['owner', 'seq', 'row_count'])
        .where('tenant_id', '=', tenantId)
        .where('claim_id', '=', claimId)
        .execute()
      if (others.some((c) => c.owner !== owner)) return { outcome: 'foreign' } as const
      const totalRows = others.filter((c) => Number(c.seq) !== seq).reduce((n, c) => n + Number(c.row_count), 0) + rowCount
      if (totalRows > maxRows) return { outcome: 'too-large', totalRows } as const
      await trx.deleteFrom('claim_chunks').where('tenant_id', '=', tenantId).where('claim_id', '=', claimId).where('seq', '=', seq).execute()
      await trx
        .insertInto('claim_chunks')
        .values({ tenant_id: tenantId, claim_id: claimId, seq, owner, rows: JSON.stringify(rows), row_count: rowCount, created_at: new Date().toISOString() })
        .execute()
      return { outcome: 'staged', totalRows } as const
    })
  }

  /** The seqs staged for the owner's claim, ascending (none for a claim of another owner). */
  async seqs(tenantId: string, owner: string, claimId: string): Promise<number[]> {
    const rows = await this.catalog.db
      .selectFrom('claim_chunks')
      .select('seq')
      .where('tenant_id', '=', tenantId)
      .where('claim_id', '=', claimId)
      .where('owner', '=', owner)
      .orderBy('seq')
      .execute()
    return rows.map((r) => Number(r.seq))
  }

  /** The owner's staged chunks of the claim, by seq. */
  async chunks(tenantId: string, owner: string, claimId: string): Promise<StagedChunk[]> {
    const rows = await this.catalog.db
      .selectFrom('claim_chunks')
      .select(['seq', 'rows', 'row_count'])
      .where('tenant_id', '=', tenantId)
      .where('claim_id', '=', claimId)
      .where('owner', '=', owner)
      .orderBy('seq')
      .execute()
    return rows.map((r) => ({ seq: Number(r.seq), rows: JSON.parse(r.rows) as ClaimRows, rowCount: Number(r.row_count) }))
  }

  /** Deletes the owner's staged chunks of the claim (after its commit). */
  async discard(tenantId: string, owner: string, claimId: string): Promise<void> {
    await this.catalog.db.deleteFrom('claim_chunks').where('tenant_id', '=', tenantId).where('claim_id', '=', claimId).where('owner', '=', owner).execute()
  }

  /**
   * Deletes chunks staged more than `olderThanMs` ago, at most `limit` of them (bounded work,
   * safe to call on a request path); returns how many. A claim resumed after that starts over.
   */
  async pruneAbandoned(olderThanMs: number, limit = 500): Promise<number> {
    const cutoff = new Date(Date.now() - olderThanMs).toISOString()
    const old = await this.catalog.db
      .selectFrom('claim_chunks')
      .select(['tenant_id', 'claim_id', 'seq'])
      .where('created_at', '<', cutoff)
      .limit(limit)
      .execute()
    let deleted = 0
    for (const c of old) {
      const result = await this.catalog.db
        .deleteFrom('claim_chunks')
        .where('tenant_id', '=', c.tenant_id)
        .where('claim_id', '=', c.claim_id)
        .where('seq', '=', c.seq)
        .where('created_at', '<', cutoff)
        .executeTakeFirst()
      deleted += Number(result.numDeletedRows)
    }
    return deleted
  }
}
