import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { Catalog } from '../catalog/catalog.js'
import { TenantryError } from '../errors.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import { SecretBox } from './secret-box.js'
import { tenantKeyPurpose } from '../services/secrets/tenant-secrets.js'

/**
 * The secret key is a deployment secret: every process on one catalog must use the same one,
 * or the secrets sealed in the catalog (BYOD credentials, the derivation root) do not open.
 * `TENANTRY_SECRET_KEY` sets it (production: from the secret store, on every host); without
 * it, `<home>/secret.key` holds it, created only while the catalog holds no sealed secret
 * (a second host never silently makes its own). A start whose key cannot open what the
 * catalog holds is refused, naming `TENANTRY_SECRET_KEY`.
 *
 * Rotation (`rotateSecretKey`) re-seals everything in one catalog transaction. Crash safety:
 * with a key file, the new key is first written beside it (`secret.key.new`, fsynced), the
 * catalog is then re-sealed in one transaction, and the new file finally renamed over the
 * old. Until the transaction commits the old key opens everything and a leftover `.new` is
 * discarded at the next open; after it, the next open finds that only `.new` opens the
 * catalog and finishes the rename. With `TENANTRY_SECRET_KEY`, the new key is handed to the
 * caller (printed) before the transaction: a crash after the commit cannot lose it.
 */

/** The environment variable that holds the deployment's secret key (32 bytes, base64 or hex). */
export const SECRET_KEY_ENV = 'TENANTRY_SECRET_KEY'
/** The key file under the home, used when `TENANTRY_SECRET_KEY` is unset. */
export const SECRET_KEY_FILE = 'secret.key'
/** A rotation's new key, written before the catalog is re-sealed. */
const PENDING_SUFFIX = '.new'
/** The `sealed_values` row holding what `derive` starts from, once a rotation kept it. */
const DERIVATION_ROOT = 'derivation-root'

interface SealedEntry {
  /** For messages: `data source "eu_1"`. */
  label: string
  /** The associated data it is bound to. */
  purpose: string
  sealed: string
  kind: 'data-source' | 'value' | 'tenant-key'
  id: string
}

/** Where the key comes from. */
export type SecretKeySource = { kind: 'env' } | { kind: 'file'; path: string }

export function secretKeySource(home: string, env: NodeJS.ProcessEnv = process.env): SecretKeySource {
  return env[SECRET_KEY_ENV] ? { kind: 'env' } : { kind: 'file', path: join(home, SECRET_KEY_FILE) }
}

async function sealedEntries(catalog: Catalog): Promise<SealedEntry[]> {
  const sources = await catalog.db.selectFrom('data_sources').select(['id', 'secret']).where('secret', 'is not', null).orderBy('id').execute()
  // A catalog not migrated yet (`migrate --dry-run` opens it as it is) has no `sealed_values`
  // (nor `tenant_keys`): nothing sealed there.
  const values = await readIfExists(catalog, 'sealed_values', () => catalog.db.selectFrom('sealed_values').select(['name', 'sealed']).orderBy('name').execute())
  // Tenants' data keys (services/secrets): sealed by the master key, re-sealed by a rotation; the values they seal are not touched.
  const tenantKeys = await readIfExists(catalog, 'tenant_keys', () => catalog.db.selectFrom('tenant_keys').select(['tenant_id', 'sealed']).orderBy('tenant_id').execute())
  return [
    // `data-source:<id>`: what every engine binds a data source's credentials to (catalog-schema.ts).
    ...sources.map((s) => ({ label: `data source "${s.id}"`, purpose: `data-source:${s.id}`, sealed: s.secret!, kind: 'data-source' as const, id: s.id })),
    ...values.map((v) => ({ label: `sealed value "${v.name}"`, purpose: `sealed-value:${v.name}`, sealed: v.sealed, kind: 'value' as const, id: v.name })),
    ...tenantKeys.map((k) => ({ label: `tenant key "${k.tenant_id}"`, purpose: tenantKeyPurpose(k.tenant_id), sealed: k.sealed, kind: 'tenant-key' as const, id: k.tenant_id })),
  ]
}

/** The rows `read` returns, or none when `table` does not exist yet (a catalog not migrated). */
async function readIfExists<T>(catalog: Catalog, table: string, read: () => Promise<T[]>): Promise<T[]> {
  return read().catch(async (error: unknown) => {
    if ((await catalog.db.introspection.getTables()).some((t) => t.name === table && (!t.schema || t.schema === 'public'))) throw error
    return []
  })
}

/** The entries the box cannot open (AES-GCM's tag does not verify). */
function unopenable(box: SecretBox, entries: readonly SealedEntry[]): SealedEntry[] {
  return entries.filter((entry) => {
    try {
      box.open(entry.sealed, entry.purpose)
      return false
    } catch {
      return true
    }
  })
}

/**
 * The entry to name when the key is not the deployment's, else `undefined`. A wrong key opens
 * none of the sealed secrets (or not the derivation root, which every derived password needs);
 * a key that opens some of them is the right one, and the others were moved or damaged in the
 * catalog: they are refused when used, and `logger` hears of them now.
 */
function wrongKey(box: SecretBox, entries: readonly SealedEntry[], logger?: Logger): SealedEntry | undefined {
  const failed = unopenable(box, entries)
  if (failed.length === 0) return undefined
  const root = failed.find((e) => e.kind === 'value' && e.id === DERIVATION_ROOT)
  if (failed.length === entries.length || root) return root ?? failed[0]
  logger?.warn({ secrets: failed.map((e) => e.label) }, 'Some sealed secrets in the catalog do not open with the secret key (moved or damaged); they are refused when used')
  return undefined
}

function readKeyFile(path: string): Buffer {
  return SecretBox.decodeKey(readFileSync(path, 'utf8'), path)
}

/**
 * The deployment's secret box, checked against the catalog (which must be migrated): throws
 * `INVALID_CONFIG` naming `TENANTRY_SECRET_KEY` when the catalog holds sealed secrets that the
 * key cannot open, or when there is no key for them. Finishes or discards a rotation a crash
 * cut short (see the module comment).
 */
export async function openSecretBox(catalog: Catalog, home: string, env: NodeJS.ProcessEnv = process.env, logger: Logger = SILENT_LOGGER): Promise<SecretBox> {
  const entries = await sealedEntries(catalog)
  const source = secretKeySource(home, env)
  let box: SecretBox
  if (source.kind === 'env') {
    box = new SecretBox(SecretBox.decodeKey(env[SECRET_KEY_ENV]!, SECRET_KEY_ENV))
    const failed = wrongKey(box, entries, logger)
    if (failed) {
      throw new TenantryError(
        'INVALID_CONFIG',
        `${SECRET_KEY_ENV} does not open the secrets sealed in the catalog (${failed.label}): it is not the key they were sealed with. ` +
          `Set ${SECRET_KEY_ENV} to this deployment's secret key, the same on every host.`,
      )
    }
  } else {
    finishRotation(source.path, entries)
    if (!existsSync(source.path)) {
      if (entries.length > 0) {
        throw new TenantryError(
          'INVALID_CONFIG',
          `No secret key, and the catalog holds ${entries.length} sealed secret(s) (${entries[0]!.label}): a new key would open none of them. ` +
            `Set ${SECRET_KEY_ENV} to this deployment's secret key (or restore ${source.path}), the same on every host.`,
        )
      }
      // Nothing sealed yet: the key file is created when the first secret is sealed.
      return SecretBox.fromEnvironment(source.path, {}, { create: true })
    }
    box = new SecretBox(readKeyFile(source.path))
    const failed = wrongKey(box, entries, logger)
    if (failed) {
      throw new TenantryError(
        'INVALID_CONFIG',
        `The secret key in ${source.path} does not open the secrets sealed in the catalog (${failed.label}): it is not the key they were sealed with (this host has a key of its own). ` +
          `Set ${SECRET_KEY_ENV} to this deployment's secret key (the key file of the host that sealed them), the same on every host.`,
      )
    }
  }
  const root = entries.find((e) => e.kind === 'value' && e.id === DERIVATION_ROOT)
  if (root) box.useDerivationRoot(Buffer.from(box.open(root.sealed, root.purpose), 'base64'))
  return box
}

/** Discards a rotation's new key file that never committed, or completes one that did. */
function finishRotation(path: string, entries: readonly SealedEntry[]): void {
  const pending = path + PENDING_SUFFIX
  if (!existsSync(pending)) return
  if (existsSync(path) && !wrongKey(new SecretBox(readKeyFile(path)), entries)) {
    rmSync(pending, { force: true }) // the catalog still opens with the old key: the rotation never committed
  } else if (!wrongKey(new SecretBox(readKeyFile(pending)), entries)) {
    renameSync(pending, path) // the catalog was re-sealed with the new key: finish saving it
  }
}

export interface RotateSecretKeyOptions {
  /**
   * With `TENANTRY_SECRET_KEY`: called with the new key (base64) before the catalog is
   * re-sealed, to show it once; it must be saved in the secret store.
   */
  onNewKey?: (key: string) => void
  /** Called after the catalog committed and before the key file is replaced. For crash tests. @internal */
  beforeSave?: () => void
}

export interface RotateSecretKeyResult {
  source: SecretKeySource
  /** How many sealed secrets were re-sealed. */
  resealed: number
}

/**
 * Re-seals every secret in the catalog with a new random key, in one transaction, and saves
 * the key (see the module comment for the order and its crash safety). What `derive` gives
 * does not change: the derivation root is kept (sealed under the new key). Processes still
 * running with the old key must be restarted with the new one.
 */
export async function rotateSecretKey(catalog: Catalog, home: string, env: NodeJS.ProcessEnv = process.env, options: RotateSecretKeyOptions = {}): Promise<RotateSecretKeyResult> {
  const box = await openSecretBox(catalog, home, env)
  const source = secretKeySource(home, env)
  const entries = await sealedEntries(catalog)
  const root = box.derivationRoot()
  const key = SecretBox.generateKey()
  const next = new SecretBox(Buffer.from(key, 'base64'))
  const resealed = entries
    .filter((e) => !(e.kind === 'value' && e.id === DERIVATION_ROOT))
    .map((e) => ({ ...e, next: next.seal(box.open(e.sealed, e.purpose), e.purpose) }))
  const sealedRoot = next.seal(root.toString('base64'), `sealed-value:${DERIVATION_ROOT}`)

  const pending = source.kind === 'file' ? source.path + PENDING_SUFFIX : undefined
  if (pending) writeDurably(pending, `${key}\n`)
  else options.onNewKey?.(key)
  try {
    await catalog.db.transaction().execute(async (trx) => {
      for (const entry of resealed) {
        const result =
          entry.kind === 'data-source'
            ? await trx.updateTable('data_sources').set({ secret: entry.next }).where('id', '=', entry.id).where('secret', '=', entry.sealed).executeTakeFirst()
            : entry.kind === 'tenant-key'
              ? await trx.updateTable('tenant_keys').set({ sealed: entry.next }).where('tenant_id', '=', entry.id).where('sealed', '=', entry.sealed).executeTakeFirst()
              : await trx.updateTable('sealed_values').set({ sealed: entry.next, updated_at: new Date().toISOString() }).where('name', '=', entry.id).where('sealed', '=', entry.sealed).executeTakeFirst()
        if (Number(result.numUpdatedRows) !== 1) throw changedMeanwhile(entry.label)
      }
      // A secret sealed by another process since the read would stay under the old key.
      const sealedNow = await trx.selectFrom('data_sources').select((eb) => eb.fn.countAll<number | string>().as('n')).where('secret', 'is not', null).executeTakeFirstOrThrow()
      if (Number(sealedNow.n) !== resealed.filter((e) => e.kind === 'data-source').length) throw changedMeanwhile('a data source')
      // Likewise a tenant's first secret, which made its data key under the old key.
      const keysNow = await readIfExists(catalog, 'tenant_keys', () => trx.selectFrom('tenant_keys').select((eb) => eb.fn.countAll<number | string>().as('n')).execute())
      if (Number(keysNow[0]?.n ?? 0) !== resealed.filter((e) => e.kind === 'tenant-key').length) throw changedMeanwhile('a tenant key')
      await trx
        .insertInto('sealed_values')
        .values({ name: DERIVATION_ROOT, sealed: sealedRoot, updated_at: new Date().toISOString() })
        .onConflict((oc) => oc.column('name').doUpdateSet({ sealed: sealedRoot, updated_at: new Date().toISOString() }))
        .execute()
    })
  } catch (error) {
    if (pending) rmSync(pending, { force: true })
    throw error
  }
  options.beforeSave?.()
  if (source.kind === 'file') renameSync(pending!, source.path)
  return { source, resealed: resealed.length + 1 }
}

function changedMeanwhile(label: string): TenantryError {
  return new TenantryError('INVALID_TRANSITION', `The catalog's sealed secrets changed during the rotation (${label}); nothing was changed, run it again`)
}

/** Writes a file (mode 0600) and flushes it to disk before returning. */
function writeDurably(path: string, text: string): void {
  const fd = openSync(path, 'w', 0o600)
  try {
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
