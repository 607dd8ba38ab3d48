import { isTenantryError, type RawSessionOptions, type RawSessions, type SqliteRawSession, type Tenantry, type TenantRecord } from 'tenantry'
import { HttpError } from '../errors.js'
import type { AdmittedTenant, Principal } from '../principal.js'
import type { SqlOverHttpConfig } from '../server-config.js'
import { sqlLimitsOver } from '../rate-limits/tenant-limits.js'
import type { StreamState } from './hrana.js'

export type TokenPrincipal = Extract<Principal, { kind: 'token' }>

/** One open stream's place under the limits, taken before its session opens. */
interface StreamSlot {
  readonly tokenId: string
  readonly tenantId: string
}

/** A Hrana stream held by either transport: HTTP (continued by batons) or a WebSocket (by stream id). */
export interface OpenStream extends StreamState {
  readonly slot: StreamSlot
  readonly tokenId: string
  /** HTTP only: closes the stream when its baton is not used in time. */
  timer: NodeJS.Timeout | undefined
}

export interface StreamLimits {
  maxStreams: number
  maxPerToken: number
  maxPerTenant: number
  maxRows?: number | undefined
}

/**
 * The streams of both transports, under one set of limits: open streams overall, per tenant
 * and per token, whether HTTP batons or WebSocket stream ids hold them, so a tenant's
 * WebSocket connections count against the same share as its pipelines. Each stream is a raw
 * session in the engine's executor processes, under the tenant's deadlines and statement share.
 */
export class StreamPool {
  /** Every open stream, idle or running. */
  readonly #live = new Set<OpenStream>()
  /** What the limits count: open streams, and streams being opened. */
  readonly #slots = new Set<StreamSlot>()
  /** Engines whose raw sessions this server opened: their executors stop with it. */
  readonly #engines = new Set<RawSessions>()

  constructor(
    private readonly tenantry: Tenantry,
    private readonly config: SqlOverHttpConfig,
    private readonly limits: StreamLimits,
  ) {}

  /**
   * Opens a stream on the token's tenant, or throws `RATE_LIMITED` past a limit.
   * `sqls` is the stored SQL texts the stream reads: its own over HTTP, its connection's over a WebSocket.
   */
  async open(principal: TokenPrincipal, sqls: Map<number, string> = new Map()): Promise<OpenStream> {
    const tenant = await this.tenantry.router.resolve({ id: principal.tenantId })
    // The tenant's own limits (catalog, cached a few seconds) over the config's by slug.
    const own = sqlLimitsOver(this.config.tenants[tenant.slug], await this.tenantry.limits.of(tenant.id))
    const count = (key: keyof StreamSlot, value: string) => [...this.#slots].filter((s) => s[key] === value).length
    if (
      this.#slots.size >= this.limits.maxStreams ||
      count('tokenId', principal.tokenId) >= this.limits.maxPerToken ||
      count('tenantId', tenant.id) >= (own?.maxStreams ?? this.limits.maxPerTenant)
    ) {
      throw new HttpError('RATE_LIMITED', 'Too many open SQL streams; close transactions you no longer use')
    }
    // Taken before the first await, so that concurrent opens cannot all pass the check.
    const slot: StreamSlot = { tokenId: principal.tokenId, tenantId: tenant.id }
    this.#slots.add(slot)
    let opened: Awaited<ReturnType<typeof openSession>>
    try {
      opened = await openSession(this.tenantry, tenant, principal, {
        ...(own?.statementTimeoutMs ? { statementTimeoutMs: own.statementTimeoutMs } : {}),
        ...(own?.transactionTimeoutMs ? { transactionTimeoutMs: own.transactionTimeoutMs } : {}),
        ...(own?.maxStatements ? { maxConcurrentStatements: own.maxStatements } : {}),
        ...(this.limits.maxRows ? { maxRows: this.limits.maxRows } : {}),
      })
    } catch (error) {
      this.#slots.delete(slot)
      throw error
    }
    this.#engines.add(opened.sessions)
    const stream: OpenStream = { session: opened.session, sqls, closed: false, slot, tokenId: principal.tokenId, timer: undefined }
    this.#live.add(stream)
    return stream
  }

  /** Closes the stream's session, rolling back a transaction it left open, and frees its place. */
  async close(stream: OpenStream): Promise<void> {
    // Either transport may close a stream twice (its connection ended while a request failed): once is enough.
    if (!this.#live.delete(stream)) return
    this.#slots.delete(stream.slot)
    clearTimeout(stream.timer)
    stream.closed = true
    await stream.session.close()
  }

  /** At shutdown: every stream closed, then the executor processes stopped (they start again on demand). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#live].map((stream) => this.close(stream)))
    await Promise.all([...this.#engines].map((sessions) => sessions.close?.()))
  }
}

/** The executor's per-tenant share answers as every other "too many" does: 429 RATE_LIMITED. */
export function translate(error: unknown): unknown {
  if (isTenantryError(error, 'CONCURRENCY_LIMITED')) return new HttpError('RATE_LIMITED', error.message, { cause: error })
  return error
}

/** A raw session on the token's tenant, after checking the engine offers raw sessions for its placement. */
async function openSession(
  tenantry: Tenantry,
  tenant: TenantRecord,
  principal: TokenPrincipal,
  limits: Omit<RawSessionOptions, 'readOnly'>,
): Promise<{ session: SqliteRawSession; sessions: RawSessions }> {
  const engine = await tenantry.dataSources.engine(tenant.placement.dataSourceId)
  // Only where the database itself confines raw SQL (the tenant's own SQLite file): the engine says where.
  const sessions = engine.rawSession
  if (!sessions?.isolations.includes(tenant.placement.isolation)) {
    throw new HttpError(
      'SQL_UNAVAILABLE',
      `SQL-over-HTTP is not offered for tenants with ${tenant.placement.isolation} isolation on ${engine.name}${sessions ? `, only ${sessions.isolations.join(' and ')} isolation` : ''}`,
    )
  }
  const placement = { tenantId: tenant.id, isolation: tenant.placement.isolation, locator: tenant.placement.locator }
  // Maintenance mode (tenantry tenant maintenance --read-only): the session opens read-only, so writes are refused.
  const session = await sessions.open(placement, { ...limits, readOnly: principal.readOnly || Boolean(tenant.maintenance) })
  if (session.dialect !== 'sqlite') {
    await session.close()
    throw new HttpError('SQL_UNAVAILABLE', `SQL-over-HTTP speaks SQLite; this tenant's engine speaks ${String(session.dialect)}`)
  }
  return { session, sessions }
}

/** The tenant a verified token admits its requests to. */
export async function tokenTenant(tenantry: Tenantry, principal: TokenPrincipal): Promise<AdmittedTenant> {
  const tenant = await tenantry.router.resolve({ id: principal.tenantId })
  return { id: tenant.id, slug: tenant.slug, role: 'token', readOnly: principal.readOnly }
}
