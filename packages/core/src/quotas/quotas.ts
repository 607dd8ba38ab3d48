import { z } from 'zod'
import type { Catalog, TenantRecord } from '../catalog/catalog.js'
import type { TenantStorage } from '../engines/engine.js'
import { TenantryError } from '../errors.js'

/**
 * What one tenant may use. `null` means unlimited. Each has a default in the config
 * (`quotas`), which a tenant's own settings (the catalog's `tenant_settings`) override.
 */
export interface TenantQuotas {
  /**
   * Bytes of storage. On SQLite the database itself refuses a write past it (`max_page_count`);
   * on Postgres the server's data API checks a measured size before each write (see `Quotas.assertStorage`).
   */
  storageBytes: number | null
  /** Live (not revoked, not expired) integration tokens. */
  tokens: number | null
  /** Rows in one bulk create or bulk delete request of the data API. */
  bulkRows: number | null
  /** Bytes of the tenant's files (`tenantry.files`); an upload that would pass it keeps nothing. */
  fileBytes: number | null
}

export type TenantQuotaName = keyof TenantQuotas
export const TENANT_QUOTA_NAMES: readonly TenantQuotaName[] = ['storageBytes', 'tokens', 'bulkRows', 'fileBytes']

/** The config's `quotas`: defaults for every tenant, and limits that are not per tenant. */
export interface QuotasConfig extends Partial<TenantQuotas> {
  /** Organizations (tenants) one user may own, their personal tenant included. `null`: unlimited. @default 10 */
  organizationsPerUser?: number | null
  /** Where storage is checked rather than enforced (Postgres), a tenant's size is measured at most this often. @default 30000 */
  storageCheckIntervalMs?: number
}

export interface ResolvedQuotasConfig {
  defaults: TenantQuotas
  organizationsPerUser: number | null
  storageCheckIntervalMs: number
}

export const DEFAULT_QUOTAS: Readonly<TenantQuotas> = { storageBytes: 1024 ** 3, tokens: 100, bulkRows: 500, fileBytes: 1024 ** 3 }
export const DEFAULT_ORGANIZATIONS_PER_USER = 10

const limit = z.number().int().min(0).nullable()
const overridesSchema = z.strictObject({ storageBytes: limit.optional(), tokens: limit.optional(), bulkRows: limit.optional(), fileBytes: limit.optional() })
const configSchema = z.strictObject({
  storageBytes: limit.optional(),
  tokens: limit.optional(),
  bulkRows: limit.optional(),
  fileBytes: limit.optional(),
  organizationsPerUser: z.number().int().min(1).nullable().optional(),
  storageCheckIntervalMs: z.number().int().positive().optional(),
})

/** Checks the config's `quotas` (unknown fields refused by name) and applies the defaults. Throws `INVALID_CONFIG`. */
export function resolveQuotasConfig(input: unknown): ResolvedQuotasConfig {
  const parsed = configSchema.safeParse(input ?? {})
  if (!parsed.success) throw new TenantryError('INVALID_CONFIG', `quotas: ${describeIssues(parsed.error)}`)
  const q = parsed.data
  return {
    defaults: {
      storageBytes: q.storageBytes === undefined ? DEFAULT_QUOTAS.storageBytes : q.storageBytes,
      tokens: q.tokens === undefined ? DEFAULT_QUOTAS.tokens : q.tokens,
      bulkRows: q.bulkRows === undefined ? DEFAULT_QUOTAS.bulkRows : q.bulkRows,
      fileBytes: q.fileBytes === undefined ? DEFAULT_QUOTAS.fileBytes : q.fileBytes,
    },
    organizationsPerUser: q.organizationsPerUser === undefined ? DEFAULT_ORGANIZATIONS_PER_USER : q.organizationsPerUser,
    storageCheckIntervalMs: q.storageCheckIntervalMs ?? 30_000,
  }
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.join('.') || '(root)'
      if (issue.code === 'unrecognized_keys') return `${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`
      return `${where}: ${issue.message}`
    })
    .join('; ')
}

const UNITS: Record<string, number> = { b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3, tb: 1024 ** 4, tib: 1024 ** 4 }

/**
 * `1GB`, `500 MB`, `1.5GiB`, `4096` (bytes) → bytes. KB, MB, GB and TB are binary (1 KB =
 * 1024 bytes), as SQLite and Postgres count. Throws `INVALID_OPTION` naming the input.
 */
export function parseBytes(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  const factor = match ? UNITS[(match[2] || 'b').toLowerCase()] : undefined
  if (!match || factor === undefined) {
    throw new TenantryError('INVALID_OPTION', `Invalid size ${JSON.stringify(text)}: use a number with B, KB, MB, GB or TB, e.g. 500MB`)
  }
  const bytes = Math.floor(Number(match[1]) * factor)
  if (!Number.isSafeInteger(bytes)) throw new TenantryError('INVALID_OPTION', `Size ${JSON.stringify(text)} is too large`)
  return bytes
}

/** Bytes for people: `1.5 GB`, `512 KB`, `12 B` (binary units, as `parseBytes` reads them). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value : Number(value.toFixed(value < 10 ? 2 : 1))} ${units[unit]}`
}

/** A tenant's quotas: what applies, what the tenant's own settings say, and the config's defaults. */
export interface QuotaView {
  tenantId: string
  slug: string
  /** What applies: the overrides over the defaults. */
  quotas: TenantQuotas
  /** The tenant's own values; a quota absent here follows the default. */
  overrides: Partial<TenantQuotas>
  defaults: TenantQuotas
}

/** Changes to a tenant's quotas: a number, `null` (unlimited), or `'default'` (follow the config again). */
export type QuotaChanges = Partial<Record<TenantQuotaName, number | null | 'default'>>

export interface SetQuotasOptions {
  /** Who asked, for the audit log. @default 'system' */
  actor?: string
  /** Quotas absent from `changes` follow the defaults again (a PUT), instead of staying as they are. @default false */
  replace?: boolean
}

/** How long a tenant's quotas are trusted in memory: a change made by another process applies within this. */
const CACHE_MS = 5_000

/**
 * Per-tenant quotas: read (defaults + the tenant's settings), changed (audited), and checked.
 * A change made here applies at once in this process (`onChange` drops cached handles); other
 * processes hear of it on the catalog's change feed (`forget`), with the cache's TTL as a safety net.
 */
export class Quotas {
  readonly defaults: Readonly<TenantQuotas>
  /** Organizations one user may own (not a per-tenant quota). */
  readonly organizationsPerUser: number | null
  readonly #catalog: Catalog
  readonly #onChange: (tenantId: string) => void
  readonly #storageCheckIntervalMs: number
  readonly #cache = new Map<string, { quotas: TenantQuotas; expiresAt: number }>()
  readonly #sizes = new Map<string, { bytes: Promise<number>; measuredAt: number }>()

  constructor(catalog: Catalog, config: ResolvedQuotasConfig, onChange: (tenantId: string) => void = () => {}) {
    this.#catalog = catalog
    this.defaults = Object.freeze({ ...config.defaults })
    this.organizationsPerUser = config.organizationsPerUser
    this.#storageCheckIntervalMs = config.storageCheckIntervalMs
    this.#onChange = onChange
  }

  /** The quotas of the live tenant `slug`. Throws `TENANT_NOT_FOUND`. */
  async get(slug: string): Promise<QuotaView> {
    const tenant = await this.#tenant(slug)
    return this.#view(tenant, await this.#overrides(tenant.id))
  }

  /**
   * Changes the quotas of the live tenant `slug`, e.g. `set('acme', { storageBytes: 2 * 1024 ** 3, tokens: 'default' })`.
   * Throws `TENANT_NOT_FOUND`, or `INVALID_OPTION` naming a bad value.
   */
  async set(slug: string, changes: QuotaChanges, options: SetQuotasOptions = {}): Promise<QuotaView> {
    const tenant = await this.#tenant(slug)
    for (const [name, value] of Object.entries(changes ?? {})) {
      if (!TENANT_QUOTA_NAMES.includes(name as TenantQuotaName)) {
        throw new TenantryError('INVALID_OPTION', `Unknown quota ${JSON.stringify(name)}: use ${TENANT_QUOTA_NAMES.join(', ')}`)
      }
      if (value !== null && value !== 'default' && !(Number.isSafeInteger(value) && (value as number) >= 0)) {
        throw new TenantryError('INVALID_OPTION', `Quota ${name} must be a whole number of at least 0, null (unlimited) or "default", not ${JSON.stringify(value)}`)
      }
    }
    const settings = (await this.#catalog.tenantSettings(tenant.id)) ?? {}
    const overrides: Partial<TenantQuotas> = options.replace ? {} : parseOverrides(settings.quotas)
    for (const name of TENANT_QUOTA_NAMES) {
      const value = changes[name]
      if (value === undefined) continue
      if (value === 'default') delete overrides[name]
      else overrides[name] = value
    }
    await this.#catalog.setTenantSettings(tenant.id, { ...settings, quotas: overrides }, options.actor)
    await this.#catalog.audit({ tenantId: tenant.id, action: 'quotas.set', actor: options.actor ?? 'system', details: { quotas: overrides } })
    this.#cache.delete(tenant.id)
    this.#sizes.delete(tenant.id)
    this.#onChange(tenant.id)
    return this.#view(tenant, overrides)
  }

  /** Drops what is cached of the tenant's quotas (every tenant's without an id): the catalog changed elsewhere. */
  forget(tenantId?: string): void {
    if (tenantId === undefined) {
      this.#cache.clear()
      this.#sizes.clear()
    } else {
      this.#cache.delete(tenantId)
      this.#sizes.delete(tenantId)
    }
  }

  /** The quotas that apply to the tenant with this id (cached for a few seconds). */
  async of(tenantId: string): Promise<TenantQuotas> {
    const cached = this.#cache.get(tenantId)
    if (cached && cached.expiresAt > Date.now()) return cached.quotas
    const quotas = { ...this.defaults, ...(await this.#overrides(tenantId)) }
    this.#cache.set(tenantId, { quotas, expiresAt: Date.now() + CACHE_MS })
    return quotas
  }

  /** Refuses a bulk request of more rows than the tenant's `bulkRows` with `QUOTA_EXCEEDED`. */
  async assertBulkRows(tenantId: string, rows: number): Promise<void> {
    const { bulkRows } = await this.of(tenantId)
    if (bulkRows !== null && rows > bulkRows) {
      throw new TenantryError('QUOTA_EXCEEDED', `This tenant may send at most ${bulkRows} rows per bulk request; this one has ${rows}`, {
        details: { quota: 'bulkRows', limit: bulkRows },
      })
    }
  }


  /**
   * Refuses a write with `QUOTA_EXCEEDED` when the tenant's storage is at or past its quota,
   * where the engine does not enforce the quota itself (Postgres). The size is measured at most
   * every `storageCheckIntervalMs` per tenant, so a burst of writes may pass the quota by what
   * that interval lets through: checked, not enforced.
   */
  async assertStorage(tenant: TenantRecord, storage: TenantStorage | undefined): Promise<void> {
    if (!storage || storage.enforced) return
    const { storageBytes } = await this.of(tenant.id)
    if (storageBytes === null) return
    let entry = this.#sizes.get(tenant.id)
    if (!entry || Date.now() - entry.measuredAt > this.#storageCheckIntervalMs) {
      const bytes = storage.size({ tenantId: tenant.id, ...tenant.placement })
      entry = { bytes, measuredAt: Date.now() }
      this.#sizes.set(tenant.id, entry)
      bytes.catch(() => this.#sizes.delete(tenant.id))
    }
    const bytes = await entry.bytes
    if (bytes >= storageBytes) {
      throw new TenantryError('QUOTA_EXCEEDED', `The tenant uses ${formatBytes(bytes)} of its ${formatBytes(storageBytes)} storage quota; delete data or ask for more`, {
        details: { quota: 'storageBytes', limit: storageBytes, used: bytes },
      })
    }
  }

  async #tenant(slug: string): Promise<TenantRecord> {
    const tenant = typeof slug === 'string' ? await this.#catalog.findTenantBySlug(slug) : undefined
    if (!tenant || tenant.status === 'deleted' || tenant.status === 'deleting') {
      throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${String(slug)}" not found`)
    }
    return tenant
  }

  async #overrides(tenantId: string): Promise<Partial<TenantQuotas>> {
    return parseOverrides((await this.#catalog.tenantSettings(tenantId))?.quotas)
  }

  #view(tenant: TenantRecord, overrides: Partial<TenantQuotas>): QuotaView {
    return { tenantId: tenant.id, slug: tenant.slug, quotas: { ...this.defaults, ...overrides }, overrides, defaults: { ...this.defaults } }
  }
}

/** Refuses one more token when the tenant has `limit` live ones already, with `QUOTA_EXCEEDED`. */
export function assertTokenQuota(live: number, limit: number | null): void {
  if (limit !== null && live >= limit) {
    throw new TenantryError('QUOTA_EXCEEDED', `This tenant has ${live} live tokens and its quota is ${limit}: revoke one first`, {
      details: { quota: 'tokens', limit },
    })
  }
}

/** The stored overrides; a document that does not parse (written by a newer version?) counts as none. */
function parseOverrides(value: unknown): Partial<TenantQuotas> {
  const parsed = overridesSchema.safeParse(value ?? {})
  if (!parsed.success) return {}
  const out: Partial<TenantQuotas> = {}
  for (const name of TENANT_QUOTA_NAMES) if (parsed.data[name] !== undefined) out[name] = parsed.data[name]
  return out
}
