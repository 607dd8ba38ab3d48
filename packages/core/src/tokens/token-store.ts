import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Selectable } from 'kysely'
import { TenantryError } from '../errors.js'
import type { Catalog } from '../catalog/catalog.js'
import type { TokensTable } from '../catalog/catalog-schema.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import { assertTokenQuota, type Quotas } from '../quotas/quotas.js'

/** Every integration token starts with this, so scanners and humans recognise it. */
export const TOKEN_PREFIX = 'tnt_'

/** `tnt_<16 base-32 id>_<43 base64url = 32 random bytes>`. */
export const TOKEN_PATTERN = /^tnt_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$/

/** `last_used_at` is written at most this often per token, so verifying stays a read. */
export const LAST_USED_GRANULARITY_MS = 60_000

const TOKEN_ID_PATTERN = /^[a-z2-7]{16}$/
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'
const SECRET_BYTES = 32
/** Characters of the secret kept in `prefix`: 24 of its 256 bits, enough to tell tokens apart. */
const PREFIX_SECRET_CHARS = 4
const MAX_NAME_LENGTH = 100
/** A hash that matches no secret, compared against when the id is unknown so both paths do the same work. */
const DUMMY_HASH = sha256('tenantry-no-such-token')

/** A token as listings show it. Never carries the secret or its hash. */
export interface TokenRecord {
  id: string
  tenantId: string
  name: string
  /** The start of the token (`tnt_<id>_xxxx`), to recognise it. */
  prefix: string
  readOnly: boolean
  createdAt: string
  expiresAt: string | null
  revokedAt: string | null
  lastUsedAt: string | null
  createdBy: string
}

export interface CreateTokenOptions {
  /** Read-only tokens can never change data or schema. */
  readOnly: boolean
  /**
   * Lifetime from now: duration text (`30d`, `12h`, `90m`, `45s`, `2w`; see `parseDuration`)
   * or milliseconds. None means the token lives until revoked. At most 100 years.
   * @example { readOnly: true, expiresIn: '30d' }
   */
  expiresIn?: string | number
  /** A label for listings. @default 'token' */
  name?: string
  /** Who asked, for the audit log. @default 'system' */
  createdBy?: string
}

/**
 * Integration tokens: created for one tenant, shown once, stored only as a hash,
 * optionally expiring, revocable one by one.
 *
 * Why plain SHA-256 and not a password hash (scrypt, argon2): the secret is 256 bits
 * from the OS CSPRNG, so there is no dictionary to guess from and a slow hash would
 * add nothing but latency to every request. A stolen catalog still yields no usable token.
 */
export interface TokenStoreOptions {
  /** Hears of errors a verify survives (the last-use write). @default SILENT_LOGGER */
  logger?: Logger
  /** The tenant's `tokens` quota is checked on create. @default no quota */
  quotas?: Pick<Quotas, 'of'>
}

export class TokenStore {
  readonly #catalog: Catalog
  readonly #logger: Logger
  readonly #quotas: TokenStoreOptions['quotas']

  constructor(catalog: Catalog, options: TokenStoreOptions = {}) {
    this.#catalog = catalog
    this.#logger = options.logger ?? SILENT_LOGGER
    this.#quotas = options.quotas
  }

  /**
   * Creates a token for the live tenant `slug`. Returns the token (the only time it is
   * ever available) and its record. Throws `TENANT_NOT_FOUND`, `INVALID_OPTION`.
   */
  async create(slug: string, options: CreateTokenOptions): Promise<{ token: string; record: TokenRecord }> {
    const name = options.name ?? 'token'
    if (typeof name !== 'string' || name.trim() === '' || name.length > MAX_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(name)) {
      throw new TenantryError('INVALID_OPTION', `Token name must be 1-${MAX_NAME_LENGTH} printable characters`)
    }
    const expiresInMs = lifetimeMs(options.expiresIn)
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant || tenant.status === 'deleting' || tenant.status === 'deleted') {
      throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    }
    const quota = (await this.#quotas?.of(tenant.id))?.tokens ?? null
    const id = newTokenId()
    const secret = randomBytes(SECRET_BYTES).toString('base64url')
    const token = `${TOKEN_PREFIX}${id}_${secret}`
    const createdAt = new Date()
    const row: Selectable<TokensTable> = {
      id,
      tenant_id: tenant.id,
      name,
      prefix: `${TOKEN_PREFIX}${id}_${secret.slice(0, PREFIX_SECRET_CHARS)}`,
      secret_hash: sha256(secret).toString('hex'),
      read_only: options.readOnly ? 1 : 0,
      created_at: createdAt.toISOString(),
      expires_at: expiresInMs === undefined ? null : new Date(createdAt.getTime() + expiresInMs).toISOString(),
      revoked_at: null,
      last_used_at: null,
      created_by: options.createdBy ?? 'system',
    }
    // Counted and inserted in one transaction (serialized on a SQLite catalog; on Postgres two
    // creates at the same instant may both pass), so the quota holds under concurrent creates.
    await this.#catalog.db.transaction().execute(async (trx) => {
      if (quota !== null) {
        const at = createdAt.toISOString()
        const { n } = await trx
          .selectFrom('tokens')
          .select((eb) => eb.fn.countAll<number | string>().as('n'))
          .where('tenant_id', '=', tenant.id)
          .where('revoked_at', 'is', null)
          .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', at)]))
          .executeTakeFirstOrThrow()
        assertTokenQuota(Number(n), quota)
      }
      await trx.insertInto('tokens').values(row).execute()
    })
    const record = toRecord(row)
    await this.#catalog.audit({
      tenantId: tenant.id,
      action: 'token.created',
      actor: record.createdBy,
      details: { tokenId: id, name, readOnly: record.readOnly, expiresAt: record.expiresAt },
    })
    return { token, record }
  }

  /** The tokens of tenant `slug`, oldest first, revoked ones included. Throws `TENANT_NOT_FOUND`. */
  async list(slug: string): Promise<TokenRecord[]> {
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    const rows = await this.#catalog.db
      .selectFrom('tokens')
      .selectAll()
      .where('tenant_id', '=', tenant.id)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
    return rows.map(toRecord)
  }

  /** One token's record, or undefined. */
  async find(id: string): Promise<TokenRecord | undefined> {
    if (!TOKEN_ID_PATTERN.test(id)) return undefined
    const row = await this.#catalog.db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toRecord(row)
  }

  /**
   * Revokes token `id` (its id, as listings show it) for good. Revoking a revoked token
   * changes nothing. Throws `TOKEN_NOT_FOUND`.
   */
  async revoke(id: string, options: { actor?: string } = {}): Promise<TokenRecord> {
    const existing = await this.find(id)
    if (!existing) throw new TenantryError('TOKEN_NOT_FOUND', `Token ${JSON.stringify(id)} not found`)
    if (existing.revokedAt) return existing
    const revokedAt = new Date().toISOString()
    await this.#catalog.db
      .updateTable('tokens')
      .set({ revoked_at: revokedAt })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .execute()
    await this.#catalog.audit({
      tenantId: existing.tenantId,
      action: 'token.revoked',
      actor: options.actor ?? 'system',
      details: { tokenId: id, name: existing.name },
    })
    return (await this.find(id)) ?? { ...existing, revokedAt }
  }

  /**
   * Revokes every live token of tenant `tenantId` that `createdBy` created (as `create`
   * recorded it, e.g. `user:<id>`), each with its own audit entry. Used when the creator
   * loses the right to manage the tenant's tokens: their tokens must not outlive it.
   * Returns the records it revoked (none is not an error).
   */
  async revokeCreatedBy(
    tenantId: string,
    createdBy: string,
    options: { actor?: string; reason?: string } = {},
  ): Promise<TokenRecord[]> {
    const live = await this.#catalog.db
      .selectFrom('tokens')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('created_by', '=', createdBy)
      .where('revoked_at', 'is', null)
      .execute()
    if (live.length === 0) return []
    const revokedAt = new Date().toISOString()
    await this.#catalog.db
      .updateTable('tokens')
      .set({ revoked_at: revokedAt })
      .where('id', 'in', live.map((row) => row.id))
      .where('revoked_at', 'is', null)
      .execute()
    for (const row of live) {
      await this.#catalog.audit({
        tenantId,
        action: 'token.revoked',
        actor: options.actor ?? 'system',
        details: { tokenId: row.id, name: row.name, ...(options.reason ? { reason: options.reason } : {}) },
      })
    }
    return live.map((row) => ({ ...toRecord(row), revokedAt }))
  }

  /**
   * The record of a valid token, or undefined: malformed, unknown, wrong secret, expired,
   * revoked, or its tenant is not `ready`. The secret is compared in constant time, and an
   * unknown id costs the same hash-and-compare as a known one.
   */
  async verify(token: string): Promise<TokenRecord | undefined> {
    if (typeof token !== 'string') return undefined
    const match = TOKEN_PATTERN.exec(token)
    if (!match) return undefined
    const [, id, secret] = match as unknown as [string, string, string]
    const row = await this.#catalog.db
      .selectFrom('tokens')
      .innerJoin('tenants', 'tenants.id', 'tokens.tenant_id')
      .selectAll('tokens')
      .select(['tenants.status as tenant_status', 'tenants.purged_at as tenant_purged_at'])
      .where('tokens.id', '=', id)
      .executeTakeFirst()
    const presented = sha256(secret)
    const stored = row ? Buffer.from(row.secret_hash, 'hex') : DUMMY_HASH
    const secretMatches = stored.length === presented.length && timingSafeEqual(stored, presented)
    if (!row || !secretMatches) return undefined
    const now = Date.now()
    if (row.revoked_at !== null) return undefined
    if (row.expires_at !== null && Date.parse(row.expires_at) <= now) return undefined
    if (row.tenant_status !== 'ready' || row.tenant_purged_at !== null) return undefined

    const record = toRecord(row)
    if (record.lastUsedAt === null || now - Date.parse(record.lastUsedAt) >= LAST_USED_GRANULARITY_MS) {
      const at = new Date(now).toISOString()
      // Conditional, so concurrent requests write it once; a failed write must not fail the request.
      await this.#catalog.db
        .updateTable('tokens')
        .set({ last_used_at: at })
        .where('id', '=', id)
        .where((eb) =>
          eb.or([
            eb('last_used_at', 'is', null),
            eb('last_used_at', '<=', new Date(now - LAST_USED_GRANULARITY_MS).toISOString()),
          ]),
        )
        .execute()
        .catch((err: unknown) =>
          this.#logger.warn({ err, tenantId: row.tenant_id, tokenId: id }, "Recording a token's last use failed; the request goes on"),
        )
      record.lastUsedAt = at
    }
    return record
  }
}

/**
 * Parses a duration like `30d`, `12h`, `45m`, `90s` or `2w` into milliseconds.
 * Returns undefined for anything else.
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d{1,6})([smhdw])$/.exec(text.trim())
  if (!match) return undefined
  const n = Number(match[1])
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[match[2] as 's' | 'm' | 'h' | 'd' | 'w']
  return n > 0 ? n * unit : undefined
}

const MAX_LIFETIME_MS = 100 * 365 * 86_400_000

/** `expiresIn` in milliseconds, or undefined for no expiry. Throws `INVALID_OPTION`. */
function lifetimeMs(expiresIn: string | number | undefined): number | undefined {
  if (expiresIn === undefined) return undefined
  const ms = typeof expiresIn === 'string' ? parseDuration(expiresIn) : expiresIn
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0 || ms > MAX_LIFETIME_MS) {
    throw new TenantryError(
      'INVALID_OPTION',
      `Invalid expiresIn ${JSON.stringify(expiresIn)}: use a duration like 30d, 12h or 90m, or milliseconds, of at most 100 years`,
    )
  }
  return ms
}

function newTokenId(): string {
  let id = ''
  for (const byte of randomBytes(16)) id += BASE32[byte & 31]
  return id
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

function toRecord(row: Selectable<TokensTable>): TokenRecord {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    prefix: row.prefix,
    readOnly: Number(row.read_only) === 1,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    createdBy: row.created_by,
  }
}
