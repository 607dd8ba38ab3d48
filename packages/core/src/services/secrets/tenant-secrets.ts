import { randomBytes } from 'node:crypto'
import type { Catalog } from '../../catalog/catalog.js'
import { TenantryError } from '../../errors.js'
import { SecretBox } from '../../secrets/secret-box.js'
import { scopeTenant, type TenantService } from '../scope.js'

/** A tenant's secret as listings show it: never its value. */
export interface SecretRecord {
  name: string
  createdAt: string
  updatedAt: string
  /** Who set it first / last (`user:<id>`, `cli:<os user>`, `system`). */
  createdBy: string
  updatedBy: string
}

export interface SecretWriteOptions {
  /** Who acts, for the record and the audit log. @default 'system' */
  actor?: string
}

/** What a secret's name may be: `STRIPE_SECRET_KEY`, `resend.api-key`. */
export const SECRET_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,127}$/
/** Largest value, in bytes (UTF-8). */
export const SECRET_MAX_BYTES = 64 * 1024

/** What a tenant's data key is bound to under the master key. */
export function tenantKeyPurpose(tenantId: string): string {
  return `tenant-key:${tenantId}`
}

/** What a secret's value is bound to under the tenant's data key: the tenant and the name (a tenant id holds no `:`). */
export function tenantSecretPurpose(tenantId: string, name: string): string {
  return `tenant-secret:${tenantId}:${name}`
}

/**
 * `tenantry.secrets`: a tenant's own integration credentials (seed 002's per-tenant Stripe and
 * Resend keys), in the catalog, never in clear.
 *
 * Envelope encryption. Each tenant has a **data key** (32 random bytes, made with its first
 * secret), kept in the catalog (`tenant_keys`) sealed by the deployment's master key
 * (`TENANTRY_SECRET_KEY`, the `SecretBox`) and bound to the tenant id. Each value is sealed
 * with the tenant's data key, AES-256-GCM, bound to the tenant id and the secret's name: a
 * ciphertext copied to another tenant's row or another name fails to open.
 * - **Master-key rotation** (`tenantry secret-key rotate`) re-seals the data keys only; the
 *   values, sealed with the data keys, are not touched.
 * - **Crypto-shredding**: purging a tenant deletes its data key with its secrets, so no copy of
 *   its ciphertexts opens again. A catalog backup taken before the purge still holds the data
 *   key sealed by the master key of that time: rotate the master key after purges (and keep no
 *   old master key) to shred those copies too.
 *
 * `get` is for server-side code: no route or command ever answers with a value.
 */
export class TenantSecrets implements TenantService {
  readonly name = 'secrets'
  readonly #catalog: Catalog
  readonly #master: () => SecretBox

  constructor(catalog: Catalog, master: () => SecretBox) {
    this.#catalog = catalog
    this.#master = master
  }

  /** Sets (creates or replaces) the secret `name` of the tenant in context. */
  async set(name: string, value: string, options: SecretWriteOptions = {}): Promise<SecretRecord> {
    const { id } = scopeTenant('secrets')
    checkName(name)
    if (typeof value !== 'string' || value.length === 0 || Buffer.byteLength(value) > SECRET_MAX_BYTES) {
      throw new TenantryError('INVALID_OPTION', `A secret's value is a non-empty string of at most ${SECRET_MAX_BYTES} bytes`)
    }
    const actor = options.actor ?? 'system'
    const sealed = (await this.#dataKey(id, true))!.seal(value, tenantSecretPurpose(id, name))
    const at = new Date().toISOString()
    // One statement, so two processes setting the same new name at once both succeed (the last wins).
    const row = await this.#catalog.db
      .insertInto('tenant_secrets')
      .values({ tenant_id: id, name, sealed, created_at: at, updated_at: at, created_by: actor, updated_by: actor })
      .onConflict((oc) => oc.columns(['tenant_id', 'name']).doUpdateSet({ sealed, updated_at: at, updated_by: actor }))
      .returning(['created_at', 'created_by'])
      .executeTakeFirstOrThrow()
    const created = row.created_at === at && row.created_by === actor
    await this.#catalog.audit({ tenantId: id, action: created ? 'secret.created' : 'secret.updated', actor, details: { name } })
    return (await this.#records(id, name))[0]!
  }

  /** The value of the secret `name`, or `undefined`. Server-side code only. Throws `INVALID_CONFIG` when the stored value does not open (moved or damaged). */
  async get(name: string): Promise<string | undefined> {
    const { id } = scopeTenant('secrets')
    checkName(name)
    const row = await this.#catalog.db
      .selectFrom('tenant_secrets')
      .select('sealed')
      .where('tenant_id', '=', id)
      .where('name', '=', name)
      .executeTakeFirst()
    if (!row) return undefined
    const key = await this.#dataKey(id, false)
    if (!key) throw new TenantryError('INVALID_CONFIG', `Tenant ${id} has a secret but no data key: it cannot be opened`)
    return key.open(row.sealed, tenantSecretPurpose(id, name))
  }

  /** Names and dates of the tenant's secrets, by name. */
  async list(): Promise<SecretRecord[]> {
    const { id } = scopeTenant('secrets')
    return this.#records(id)
  }

  /** Removes the secret `name`; whether there was one. */
  async delete(name: string, options: SecretWriteOptions = {}): Promise<boolean> {
    const { id } = scopeTenant('secrets')
    checkName(name)
    const result = await this.#catalog.db.deleteFrom('tenant_secrets').where('tenant_id', '=', id).where('name', '=', name).executeTakeFirst()
    const removed = Number(result.numDeletedRows) > 0
    if (removed) await this.#catalog.audit({ tenantId: id, action: 'secret.deleted', actor: options.actor ?? 'system', details: { name } })
    return removed
  }

  /** Deletes the tenant's secrets and its data key (crypto-shredding), in one transaction. */
  async purgeTenant(tenantId: string): Promise<{ secrets: number; dataKeyDestroyed: boolean }> {
    return this.#catalog.db.transaction().execute(async (trx) => {
      const secrets = await trx.deleteFrom('tenant_secrets').where('tenant_id', '=', tenantId).executeTakeFirst()
      const key = await trx.deleteFrom('tenant_keys').where('tenant_id', '=', tenantId).executeTakeFirst()
      return { secrets: Number(secrets.numDeletedRows), dataKeyDestroyed: Number(key.numDeletedRows) > 0 }
    })
  }

  async close(): Promise<void> {}

  /** The tenant's data key as a box; made (once, whoever races) when `create` and missing. */
  async #dataKey(tenantId: string, create: boolean): Promise<SecretBox | undefined> {
    const read = () => this.#catalog.db.selectFrom('tenant_keys').select('sealed').where('tenant_id', '=', tenantId).executeTakeFirst()
    let row = await read()
    if (!row && create) {
      const sealed = this.#master().seal(randomBytes(32).toString('base64'), tenantKeyPurpose(tenantId))
      await this.#catalog.db
        .insertInto('tenant_keys')
        .values({ tenant_id: tenantId, sealed, created_at: new Date().toISOString() })
        .onConflict((oc) => oc.column('tenant_id').doNothing())
        .execute()
      row = await read()
    }
    if (!row) return undefined
    return new SecretBox(Buffer.from(this.#master().open(row.sealed, tenantKeyPurpose(tenantId)), 'base64'))
  }

  async #records(tenantId: string, name?: string): Promise<SecretRecord[]> {
    let query = this.#catalog.db
      .selectFrom('tenant_secrets')
      .select(['name', 'created_at', 'updated_at', 'created_by', 'updated_by'])
      .where('tenant_id', '=', tenantId)
      .orderBy('name')
    if (name !== undefined) query = query.where('name', '=', name)
    return (await query.execute()).map((r) => ({ name: r.name, createdAt: r.created_at, updatedAt: r.updated_at, createdBy: r.created_by, updatedBy: r.updated_by }))
  }
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !SECRET_NAME_PATTERN.test(name)) {
    throw new TenantryError('INVALID_OPTION', `Invalid secret name ${JSON.stringify(name)}: use 1-128 of A-Z, a-z, 0-9, "_", "." and "-", starting with a letter`)
  }
}
